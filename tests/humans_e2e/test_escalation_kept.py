"""An escalation is never lost: ``slack.notify`` with no thread yet and no playbook channel
ends up in the thread made in ``slack.default_channel`` (it failed permanently before, and
the text was lost), and a 64 KiB label value in the escalation's templates is truncated
with a visible marker (the render failed before, and with it the escalation)."""

from __future__ import annotations

from typing import Any

import pytest

from remediator.model.alerts import fingerprint
from remediator.model.incident import IncidentState, StepStatus

from .harness import T0, ZERO, Stack, iso

pytestmark = pytest.mark.timeout(60)

PLAYBOOK = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: no-channel}
spec:
  match: ['alertname="Weird"']
  escalate:
    - action: jira.incident
      with: {project: OPS, issue_type: Task, summary: "weird {{ labels.blob }}"}
    - action: slack.notify
      with: {text: "blob was {{ labels.blob }}"}
"""


def weird(blob: str) -> dict[str, Any]:
    labels = {"alertname": "Weird", "blob": blob}
    return {"status": "firing", "labels": labels, "annotations": {}, "startsAt": iso(T0),
            "endsAt": ZERO, "generatorURL": "http://prom/graph",
            "fingerprint": fingerprint(labels)}


async def test_notify_without_thread_or_channel_lands_in_the_default_channel_truncated(
        stack: Stack) -> None:
    await stack.start(PLAYBOOK, settings={"slack": {"default_channel": "#ops-alerts"}})
    await stack.post([weird("x" * 65_536)])

    async def done() -> bool:
        views = await stack.incidents()
        return bool(views) and views[0].context.get("escalation") == "done"
    await stack.until(done, "the escalation", advance=5)
    await stack.settle()

    view = await stack.incident()
    assert view.state == IncidentState.ESCALATED
    assert [s.status for s in view.steps] == [StepStatus.SUCCEEDED] * 2, \
        [s.error for s in view.steps]
    [root] = stack.slack.roots("#ops-alerts")                # one thread, made by the sink
    replies = [m.text for m in stack.slack.replies(root.channel, root.ts)]
    [notified] = [r for r in replies if r.startswith("blob was ")]
    assert notified.endswith("… [truncated 61,440 characters]")
    assert len(notified) < 4200      # 4,096 of the label, cut with a marker
    [issue] = stack.jira.issues.values()
    assert "[truncated" in issue.fields["description"]
    assert len(issue.fields["description"]) < 32_767
