"""Dependency health with the real Prometheus binary: the daemon (in process) sees it
down, up when it starts, and down again when it stops; ``/readyz`` stays ready
throughout and says so, and ``remediator_dependency_up`` follows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from remediator.app import Daemon
from remediator.settings import load_settings

from .harness import Proc, free_port, require_binaries, wait_ready

pytestmark = pytest.mark.e2e

PLAYBOOK = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: verify}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: prod, name: api}
  steps:
    - name: wait
      action: wait
      with: {duration: 1m}
      verify: {promql: 'up == 1', timeout: 5m}
"""


async def _readyz(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(f"{url}/readyz") as resp:
        return resp.status, await resp.json()


async def _gauge(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    return next((line.rsplit(" ", 1)[1] for line in text.splitlines()
                 if line.startswith('remediator_dependency_up{dependency="prometheus"}')), "")


async def _until(check: Callable[[], Any], what: str, limit: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)             # a real process: real time


async def test_readyz_and_the_gauge_follow_a_real_prometheus(tmp_path: Path) -> None:
    binary = require_binaries("prometheus")["prometheus"]
    port = free_port()
    prom_url = f"http://127.0.0.1:{port}"
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "verify.yaml").write_text(PLAYBOOK)
    (tmp_path / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
    settings = load_settings(None, {
        "server": {"listen": "127.0.0.1:0"}, "store": {"path": str(tmp_path / "r.db")},
        "playbooks": [str(tmp_path / "playbooks")], "kubernetes": {"mode": "none"},
        "prometheus": {"url": prom_url}, "notify": {"console": False},
        "health": {"probe_interval": 0.2, "probe_timeout": 2.0}})
    daemon = Daemon(settings)
    prom = Proc("prometheus", [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                               f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{port}"],
                tmp_path / "prometheus.log")
    url = await daemon.start()
    try:
        async with aiohttp.ClientSession() as http:
            async def prometheus_is(state: str) -> dict[str, Any] | None:
                status, body = await _readyz(http, url)
                assert status == 200, body                 # never fatal
                dep: dict[str, Any] = body["dependencies"]["prometheus"]
                return dep if dep["state"] == state else None

            down = await _until(lambda: prometheus_is("down"), "prometheus down")
            assert "probe:" in down["last_error"]
            assert down["last_success"] is None
            assert await _gauge(http, url) == "0.0"
            prom.start()
            await asyncio.to_thread(wait_ready, prom, f"{prom_url}/-/ready")
            up = await _until(lambda: prometheus_is("up"), "prometheus up")
            assert up["last_success"] is not None
            assert await _gauge(http, url) == "1.0"
            prom.stop()
            again = await _until(lambda: prometheus_is("down"), "prometheus down again")
            assert again["last_success"] >= up["last_success"]
            assert await _gauge(http, url) == "0.0"
            _, body = await _readyz(http, url)
            assert body["ready"] is True
            assert body["dependencies"]["store"]["state"] == "up"
            assert body["dependencies"]["cluster"]["state"] == "not configured"
    finally:
        prom.stop()
        await daemon.stop()
