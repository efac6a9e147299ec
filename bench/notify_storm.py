"""Notification storm: 10,000 alerts → how many Slack calls, and how long an unrelated
approval waits to be posted.

In process, real parts: the engine on durable SQLite, the Slack sink on the real
slack_sdk client against the fake Slack server (``remediator.testing.fake_slack``),
the real clock (Slack's rate limits are real seconds). Two storm playbooks, 5,000
alerts each, posted in webhooks of 100:

* ``storm-targetless``: no target, no ``group_by`` (one incident per alert), escalates
  with ``slack.notify``;
* ``storm-targeted``: one Deployment per alert (5,000 targets), one ``wait`` step, then
  the same escalation;

then one alert for ``unrelated``, whose only step needs an approval in ``#oncall``. The
figures: the time from that alert's webhook to its approval request in Slack (target
< 2 s), Slack calls during the run (``--seconds``, default 60) and events still
undelivered at its end.

    .venv/bin/python bench/notify_storm.py [--alerts 10000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from remediator.actions import registry
from remediator.adapters.slack import SlackChat
from remediator.clock import SystemClock
from remediator.engine.core import Engine
from remediator.engine.ports import Ports
from remediator.loader import load
from remediator.model.alerts import WebhookPayload, fingerprint
from remediator.notify.slack import SlackSink
from remediator.settings import EngineSettings
from remediator.store.sqlite import SqliteStore
from remediator.testing.fake_slack import FakeSlack

PLAYBOOKS = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: storm-targetless}
spec:
  match: ['alertname="TargetlessStorm"']
  escalate:
    - action: slack.notify
      with: {text: "{{ labels.instance }} needs a look"}
  notify: {slack: {channel: "#ops-alerts"}}
---
apiVersion: remediator/v1
kind: Playbook
metadata: {name: storm-targeted}
spec:
  match: ['alertname="TargetedStorm"']
  target: {kind: Deployment, namespace: shop, name: "{{ labels.deployment }}"}
  steps:
    - {name: settle, action: wait, with: {duration: 1s}}
  escalate:
    - action: slack.notify
      with: {text: "{{ target.name }} needs a look"}
  notify: {slack: {channel: "#ops-alerts"}}
---
apiVersion: remediator/v1
kind: Playbook
metadata: {name: unrelated}
spec:
  match: ['alertname="Unrelated"']
  target: {kind: Deployment, namespace: prod, name: api}
  steps:
    - name: risky
      action: wait
      with: {duration: 1s}
      approval: {slack: {channel: "#oncall"}, ttl: 15m}
  notify: {slack: {channel: "#general"}}
"""


def alert(labels: dict[str, str]) -> dict[str, Any]:
    return {"status": "firing", "labels": labels, "annotations": {},
            "startsAt": datetime.now(UTC).isoformat(), "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "", "fingerprint": fingerprint(labels)}


def payload(alerts: list[dict[str, Any]]) -> WebhookPayload:
    return WebhookPayload.model_validate({
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "remediator", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://am", "alerts": alerts})


def storm(n: int) -> list[list[dict[str, Any]]]:
    half = n // 2
    alerts = [alert({"alertname": "TargetlessStorm", "instance": f"node-{i:05d}"})
              for i in range(half)]
    alerts += [alert({"alertname": "TargetedStorm", "deployment": f"svc-{i:05d}"})
               for i in range(n - half)]
    return [alerts[i:i + 100] for i in range(0, len(alerts), 100)]


def slack_sink(chat: SlackChat) -> SlackSink:
    """The sink as the daemon makes it: paced on the real clock where it can be."""
    sink = SlackSink(chat, "#ops-alerts")
    use_clock = getattr(sink, "use_clock", None)      # absent before flow control
    if use_clock is not None:
        use_clock(SystemClock())
    return sink


def approval_posted(slack: FakeSlack) -> bool:
    return any(m.blocks and "approval" in json.dumps(m.blocks)
               for m in slack.roots("#oncall"))


async def run(n: int, seconds: float) -> dict[str, Any]:
    slack = FakeSlack()
    await slack.start()
    chat = SlackChat(slack.token, base_url=slack.base_url, timeout=10)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "r.db", synchronous="NORMAL")
        await store.open()
        engine = Engine(store=store, playbooks=load(PLAYBOOKS), clock=SystemClock(),
                        catalogue=registry, settings=EngineSettings(), ports=Ports(chat=chat),
                        sinks=[slack_sink(chat)])
        await engine.start()
        t0 = time.perf_counter()
        for batch in storm(n):
            await engine.intake.receive(payload(batch))
        posted = time.perf_counter() - t0
        t_ask = time.perf_counter()
        await engine.intake.receive(payload([alert({"alertname": "Unrelated"})]))
        approval = None
        while time.perf_counter() - t0 < seconds:
            if approval is None and approval_posted(slack):
                approval = time.perf_counter() - t_ask
            await asyncio.sleep(0.05)
        calls = len(slack.calls)
        backlog = len(await store.undelivered_events("slack", 1_000_000))
        incidents = len(await store.list_incidents(limit=100_000))
        await engine.stop(grace=1.0)
        await store.close()
    await chat.close()
    await slack.stop()
    return {"alerts": n, "incidents": incidents, "alerts_posted_s": round(posted, 2),
            "approval_posted_s": None if approval is None else round(approval, 2),
            "slack_calls": calls, "run_s": seconds, "undelivered_events": backlog}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.alerts, args.seconds)), indent=2))


if __name__ == "__main__":
    main()
