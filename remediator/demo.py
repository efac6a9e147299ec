"""``remediator demo``: a scripted tour of one real incident.

It starts the daemon in-process on the simulated cluster (SQLite in a temporary
directory, console notifications), ships a bad rollout of ``prod/api``, posts an
Alertmanager webhook to the daemon over HTTP exactly as Alertmanager would,
and lets the playbook work: a restart does not help (the new pods never become
ready), the rollback does. Then it prints the incident's timeline from the API.
Takes about half a minute of wall-clock time.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from remediator.app import Daemon, setup_logging
from remediator.dryrun import render_incident
from remediator.model.alerts import fingerprint
from remediator.settings import Settings, load_settings

PLAYBOOK = """\
apiVersion: remediator/v1
kind: Playbook
metadata:
  name: demo-bad-rollout
  description: A rollout went bad. Restart first; if the rollout still does not
    complete, roll back to the previous revision.
spec:
  match:
    - alertname="DemoHighErrorRate"
  target:
    kind: Deployment
    namespace: "{{ labels.namespace }}"
    name: "{{ labels.deployment }}"
  guards: {cooldown: 10m, max_runs_per_hour: 3}
  steps:
    - name: restart
      action: kubernetes.restart
      with: {reason: "{{ labels.alertname }}"}
      verify: {rollout: complete, timeout: 8s, interval: 1s}
    - name: roll back
      action: kubernetes.rollback
      verify: {rollout: complete, timeout: 60s, interval: 1s}
  escalate:
    - action: slack.notify
      with: {text: "{{ labels.alertname }}: automation could not fix {{ target.name }}"}
"""


def _say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def _demo_settings(workdir: Path) -> Settings:
    (workdir / "playbooks").mkdir(exist_ok=True)
    (workdir / "playbooks" / "demo.yaml").write_text(PLAYBOOK, encoding="utf-8")
    return load_settings(None, {
        "server": {"listen": "127.0.0.1:0"},
        "store": {"path": str(workdir / "remediator.db")},
        "playbooks": [str(workdir / "playbooks")],
        "kubernetes": {"mode": "simulator"},
        "engine": {"retry_base": 1.0},
        "log": {"level": "WARNING", "format": "text"},
    })


async def _ship_bad_rollout(http: aiohttp.ClientSession, sim_url: str, token: str) -> None:
    _say("shipping a bad rollout: prod/api → image example/api:2.0.0-bad")
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "api", "image": "example/api:2.0.0-bad"}]}}}}
    async with http.patch(
            f"{sim_url}/apis/apps/v1/namespaces/prod/deployments/api", json=patch,
            headers={"Authorization": f"Bearer {token}",
                     "Content-Type": "application/merge-patch+json"}) as resp:
        resp.raise_for_status()


def _webhook() -> dict[str, Any]:
    """What Alertmanager would post for the demo's alert."""
    labels = {"alertname": "DemoHighErrorRate", "namespace": "prod",
              "deployment": "api", "severity": "critical"}
    return {
        "version": "4", "groupKey": '{}:{alertname="DemoHighErrorRate"}',
        "truncatedAlerts": 0, "status": "firing", "receiver": "remediator",
        "groupLabels": {"alertname": "DemoHighErrorRate"}, "commonLabels": labels,
        "commonAnnotations": {}, "externalURL": "http://alertmanager.example:9093",
        "alerts": [{
            "status": "firing", "labels": labels,
            "annotations": {"summary": "5xx ratio above 5% on prod/api"},
            "startsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph",
            "fingerprint": fingerprint(labels)}]}


async def _first_incident_closed(http: aiohttp.ClientSession, url: str
                                 ) -> dict[str, Any] | None:
    """Poll (at most two minutes) until the first incident leaves its working states."""
    incidents: list[dict[str, Any]] = []
    for _ in range(120):
        await asyncio.sleep(1)
        async with http.get(f"{url}/api/v1/incidents") as resp:
            incidents = (await resp.json())["incidents"]
        if incidents and incidents[0]["state"] not in ("open", "remediating"):
            break
    if not incidents:
        return None
    async with http.get(f"{url}/api/v1/incidents/{incidents[0]['id']}") as resp:
        incident: dict[str, Any] = await resp.json()
    return incident


async def run_demo(keep: str | None = None) -> int:
    workdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="remediator-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = _demo_settings(workdir)
    setup_logging("WARNING", "text")
    daemon = Daemon(settings)
    _say("starting remediator on the simulated cluster")
    url = await daemon.start()
    sim = daemon.simulator
    print(f"remediator at {url}; simulated Kubernetes API at {sim.url}")
    try:
        async with aiohttp.ClientSession() as http:
            await _ship_bad_rollout(http, sim.url, sim.token)
            await asyncio.sleep(2)
            _say("Alertmanager posts the webhook: POST /api/v1/alerts")
            async with http.post(f"{url}/api/v1/alerts", json=_webhook()) as resp:
                print(resp.status, json.dumps(await resp.json()))
            _say("the playbook works (console notifications below)")
            incident = await _first_incident_closed(http, url)
            if incident is None:
                print("no incident was opened")
                return 1
            _say("the incident's timeline (GET /api/v1/incidents/{id})")
            print(render_incident(incident))
            _say(f"the incident in the web console: {url}/incidents/{incident['id']}")
            return 0 if incident["state"] == "recovered" else 1
    finally:
        await daemon.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
