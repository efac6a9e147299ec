"""A real daemon (simulated cluster, SQLite, its own event loop on a thread) and a
headless Chromium driven by selenium (Debian's chromium and chromium-driver). The
tests are skipped where those binaries are missing; scripts/test installs them."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from remediator.app import Daemon
from remediator.model.alerts import fingerprint
from remediator.settings import load_settings

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TOKENS = {"vera": "viewer-token-browser", "otto": "operator-token-browser",
          "am": "webhook-token-browser"}
PLAYBOOKS = """\
apiVersion: remediator/v1
kind: Playbook
metadata: {name: restart-api, description: Restart a Deployment whose error rate is high.}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
  steps:
    - {name: settle, action: wait, with: {duration: 3s}}
    - name: restart
      action: kubernetes.restart
      verify: {rollout: complete, timeout: 60s, interval: 1s}
---
apiVersion: remediator/v1
kind: Playbook
metadata: {name: gated-restart}
spec:
  match: ['alertname="NeedsApproval"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
  steps:
    - name: restart
      action: kubernetes.restart
      approval: {slack: {channel: "#ops"}, ttl: 10m}
      verify: {rollout: complete, timeout: 60s, interval: 1s}
"""

if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    pytest.skip("chromium and chromium-driver are not installed (scripts/test installs them)",
                allow_module_level=True)


class Running:
    """The daemon on a thread of its own: its event loop runs while selenium blocks."""

    def __init__(self, workdir: Path) -> None:
        (workdir / "playbooks").mkdir()
        (workdir / "playbooks" / "pb.yaml").write_text(PLAYBOOKS, encoding="utf-8")
        users = []
        for name, role in (("vera", "viewer"), ("otto", "operator"), ("am", "webhook")):
            (workdir / f"{name}.token").write_text(TOKENS[name] + "\n", encoding="utf-8")
            users.append({"name": name, "role": role, "token_file": str(workdir / f"{name}.token")})
        self.settings = load_settings(None, {
            "server": {"listen": "127.0.0.1:0", "auth": {"users": users}},
            "store": {"path": str(workdir / "remediator.db")},
            "playbooks": [str(workdir / "playbooks")],
            "kubernetes": {"mode": "simulator"},
            "alertmanager_external_url": "http://alertmanager.example:9093",
            "notify": {"console": False},
            "log": {"level": "WARNING", "format": "text"}})
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.daemon = Daemon(self.settings)
        self.url = ""

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.url = self.call(self.daemon.start())

    def stop(self) -> None:
        self.call(self.daemon.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def alert(self, alertname: str, **extra: str) -> None:
        """Post what Alertmanager would for one firing alert on prod/api."""
        labels = {"alertname": alertname, "namespace": "prod", "deployment": "api", **extra}
        body = {"version": "4", "groupKey": "{}", "truncatedAlerts": 0, "status": "firing",
                "receiver": "remediator", "groupLabels": {}, "commonLabels": labels,
                "commonAnnotations": {}, "externalURL": "http://alertmanager.example:9093",
                "alerts": [{"status": "firing", "labels": labels,
                            "annotations": {"summary": "5xx ratio above 5% on prod/api",
                                            "runbook_url": "https://runbooks.example/api"},
                            "startsAt": datetime.now(UTC).isoformat(),
                            "endsAt": "0001-01-01T00:00:00Z",
                            "generatorURL": "http://prometheus.example:9090/graph",
                            "fingerprint": fingerprint(labels)}]}
        request = urllib.request.Request(
            f"{self.url}/api/v1/alerts", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {TOKENS['am']}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = Running(tmp_path_factory.mktemp("console-daemon"))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1360,1000", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(90)
    yield driver
    driver.quit()
