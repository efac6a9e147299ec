"""Grouping through the whole daemon: the shipped ``disk-space-jira`` playbook (no target,
``group_by: []``) turns 50 alerts for 50 nodes into one incident, one Jira ticket and one
Slack thread, as its description says (it made 50 of each before ``group_by``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from remediator.model.alerts import fingerprint
from remediator.model.incident import IncidentState

from .harness import T0, ZERO, Stack, iso

pytestmark = pytest.mark.timeout(90)

SHIPPED = Path(__file__).resolve().parents[2] / "playbooks" / "disk-space-jira.yaml"


def disk_alert(node: int) -> dict[str, Any]:
    labels = {"alertname": "NodeFilesystemSpaceFillingUp", "instance": f"node-{node}:9100",
              "mountpoint": "/var", "severity": "warning"}
    return {"status": "firing", "labels": labels, "annotations": {"summary": "filling up"},
            "startsAt": iso(T0), "endsAt": ZERO, "generatorURL": "http://prom/graph",
            "fingerprint": fingerprint(labels)}


async def test_fifty_nodes_make_one_incident_one_ticket_one_thread(stack: Stack) -> None:
    text = SHIPPED.read_text(encoding="utf-8").replace("#infra-alerts", "#ops-alerts")
    await stack.start(text)
    for first in range(0, 50, 10):                      # five webhooks of ten nodes
        await stack.post([disk_alert(n) for n in range(first, first + 10)])

    async def escalated() -> bool:
        views = await stack.incidents()
        return bool(views) and all(v.state == IncidentState.ESCALATED
                                   and v.context.get("escalation") == "done" for v in views)
    await stack.until(escalated, "the escalation", advance=5)
    await stack.settle()

    view = await stack.incident()                       # exactly one
    assert view.key == "disk-space-jira/group/{}"
    assert view.alert_count == 50
    assert len(stack.jira.issues) == 1
    assert len(stack.slack.roots("#ops-alerts")) == 1
