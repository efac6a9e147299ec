"""Run the simulator and ``remediator serve`` as separate processes (crash and
SIGTERM tests). Every wait is bounded."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "proc-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SimProc:
    def __init__(self, tmp: Path, seed: str | None = None) -> None:
        self.kubeconfig = str(tmp / "sim.kubeconfig")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(tmp / "sim.log", "wb")  # noqa: SIM115
        extra: list[str] = []
        if seed is not None:
            (tmp / "seed.yaml").write_text(seed)
            extra = ["--seed", str(tmp / "seed.yaml")]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "remediator.simulator", "--listen",
             f"127.0.0.1:{self.port}", "--kubeconfig-out", self.kubeconfig, *extra],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    async def ready(self, http: aiohttp.ClientSession) -> None:
        await wait_http(http, f"{self.url}/healthz", self.proc)
        deadline = time.monotonic() + 10
        while not await asyncio.to_thread(os.path.exists, self.kubeconfig):
            assert time.monotonic() < deadline, "no kubeconfig written"
            await asyncio.sleep(0.05)

    async def get(self, http: aiohttp.ClientSession, path: str) -> dict[str, Any]:
        text = await asyncio.to_thread(Path(self.kubeconfig).read_text)
        token = yaml.safe_load(text)["users"][0]["user"]["token"]
        async with http.get(f"{self.url}{path}",
                            headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
            data: dict[str, Any] = await r.json()
            return data

    async def pods(self, http: aiohttp.ClientSession, ns: str) -> list[str]:
        listing = await self.get(http, f"/api/v1/namespaces/{ns}/pods")
        return sorted(p["metadata"]["name"] for p in listing["items"])

    async def calls(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        async with http.get(f"{self.url}/sim/v1/calls") as r:
            return list((await r.json())["calls"])

    async def deployment(self, http: aiohttp.ClientSession, ns: str, name: str
                         ) -> dict[str, Any]:
        text = await asyncio.to_thread(Path(self.kubeconfig).read_text)
        token = yaml.safe_load(text)["users"][0]["user"]["token"]
        async with http.get(f"{self.url}/apis/apps/v1/namespaces/{ns}/deployments/{name}",
                            headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
            data: dict[str, Any] = await r.json()
            return data

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class DaemonProc:
    def __init__(self, tmp: Path, config: dict[str, Any], name: str = "daemon") -> None:
        self.port = free_port()
        config = {**config, "server": {**config.get("server", {}),
                                       "listen": f"127.0.0.1:{self.port}",
                                       "auth": {"token": TOKEN}}}
        cfg = tmp / f"{name}.yaml"
        cfg.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "remediator.cli", "serve", "--config", str(cfg)],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    async def ready(self, http: aiohttp.ClientSession) -> None:
        await wait_http(http, f"{self.url}/readyz", self.proc, self.log_path)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, limit: float) -> int:
        try:
            return self.proc.wait(limit)
        finally:
            self.log.close()

    def ensure_dead(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if not self.log.closed:
            self.log.close()

    async def get(self, http: aiohttp.ClientSession, path: str) -> Any:
        async with http.get(f"{self.url}{path}", headers=AUTH) as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def wait_http(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes],
                    log: Path | None = None, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        if proc.poll() is not None:
            tail = (await asyncio.to_thread(log.read_text))[-3000:] if log else ""
            raise AssertionError(f"process exited {proc.returncode}: {tail}")
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as r:
                if r.status == 200:
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not ready within {limit}s")
        await asyncio.sleep(0.1)


def daemon_config(tmp: Path, kubeconfig: str, playbooks: str, *, grace: float = 10.0
                  ) -> dict[str, Any]:
    pb_dir = tmp / "playbooks"
    pb_dir.mkdir(exist_ok=True)
    (pb_dir / "crash.yaml").write_text(playbooks)
    return {
        "server": {"shutdown_grace": grace},
        "store": {"path": str(tmp / "remediator.db")},
        "playbooks": [str(pb_dir)],
        "kubernetes": {"mode": "kubeconfig", "kubeconfig": kubeconfig},
        "engine": {"retry_base": 0.2, "retry_max": 1.0, "lock_retry_interval": 0.5,
                   "call_timeout": 10.0},
        "notify": {"console": False},
        "log": {"level": "INFO"},
    }
