"""Capture real Alertmanager webhook bodies as test fixtures.

Starts the real ``prometheus-alertmanager`` binary on a free 127.0.0.1 port with
one webhook receiver pointing at a tiny local aiohttp server, posts two alerts
through Alertmanager's API v2 (``POST /api/v2/alerts``), waits for the firing
notification (``group_wait: 1s``), then posts the same alerts with ``endsAt`` in
the past and waits for the resolved notification. The bodies are written, exactly
as received, to::

    am-<version>-firing.json     the first (firing) notification
    am-<version>-resolved.json   the resolved notification

Usage (from the project root)::

    .venv/bin/python tests/data/webhooks/capture.py [--binary /usr/bin/prometheus-alertmanager]
                                                     [--out tests/data/webhooks]

The tests check ``remediator.model.alerts.fingerprint`` against the fingerprints
Alertmanager computed in these files, so re-run this after an Alertmanager upgrade.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import ClientSession, web

CONFIG = """\
route:
  receiver: remediator
  group_by: [alertname, namespace]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: remediator
    webhook_configs:
      - url: http://127.0.0.1:{hook_port}/api/v1/alerts
        send_resolved: true
"""

LABELS = [
    {"alertname": "HighErrorRate", "namespace": "shop", "deployment": "api",
     "severity": "critical", "job": "api", "instance": "10.0.0.7:8080"},
    {"alertname": "HighErrorRate", "namespace": "shop", "deployment": "checkout",
     "severity": "page", "job": "checkout", "instance": "10.0.0.9:8080"},
    # non-ASCII and punctuation in values, a leading underscore in a name: the fingerprint
    # hashes UTF-8 bytes, so these catch encoding mistakes
    {"alertname": "HighErrorRate", "namespace": "shop", "deployment": "search",
     "severity": "critical", "team": "équipe ☃", "path": "/a b\"c\\d\n", "_x": ""},
]
ANNOTATIONS = {"summary": "5xx ratio above 5% for 5m",
               "runbook_url": "https://runbooks.example/HighErrorRate"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def capture(am_port: int, hook_port: int) -> tuple[bytes, bytes]:
    """Drive a running Alertmanager; return the firing and the resolved webhook bodies."""
    bodies: asyncio.Queue[bytes] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await bodies.put(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/api/v1/alerts", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    base = f"http://127.0.0.1:{am_port}"
    try:
        async with ClientSession() as http:
            for _ in range(100):
                with contextlib.suppress(OSError):
                    async with http.get(f"{base}/-/ready") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("alertmanager did not become ready")

            now = datetime.now(UTC)
            starts = (now - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
            alerts = [{"labels": labels, "annotations": ANNOTATIONS, "startsAt": starts,
                       "generatorURL": "http://prometheus:9090/graph?g0.expr=job%3Ahttp_errors"
                                       "%3Aratio5m+%3E+0.05"}
                      for labels in LABELS]
            async with http.post(f"{base}/api/v2/alerts", json=alerts) as resp:
                resp.raise_for_status()
            firing = await asyncio.wait_for(bodies.get(), 30)

            ends = (now - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
            for alert in alerts:
                alert["endsAt"] = ends
            async with http.post(f"{base}/api/v2/alerts", json=alerts) as resp:
                resp.raise_for_status()
            while True:
                resolved = await asyncio.wait_for(bodies.get(), 30)
                if json.loads(resolved)["status"] == "resolved":
                    return firing, resolved
    finally:
        await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="/usr/bin/prometheus-alertmanager")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()

    version = subprocess.run([args.binary, "--version"], capture_output=True, text=True,
                             check=True)
    m = re.search(r"version (\d+\.\d+)", version.stdout + version.stderr)
    tag = m.group(1) if m else "unknown"
    hook_port, am_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp, "alertmanager.yml")
        cfg.write_text(CONFIG.format(hook_port=hook_port))
        proc = subprocess.Popen(
            [args.binary, f"--config.file={cfg}", f"--storage.path={tmp}",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            firing, resolved = asyncio.run(capture(am_port, hook_port))
        finally:
            proc.terminate()
            proc.wait(10)

    for name, body in (("firing", firing), ("resolved", resolved)):
        path = args.out / f"am-{tag}-{name}.json"
        path.write_bytes(body)
        print(f"wrote {path} ({len(body)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
