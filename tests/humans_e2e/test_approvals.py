"""A step with ``approval:`` through the whole daemon: the incident waits, Slack shows
Approve/Reject with the approval id, a signed click from an allowed user resumes the
step; forged, stale, replayed, unlisted and second clicks change nothing; rejection
and expiry escalate."""

from __future__ import annotations

import time

import pytest

from remediator.model.incident import IncidentState, StepStatus

from .harness import ALICE, EVE, SCALE, Stack, alert, click, playbook, verified

pytestmark = pytest.mark.timeout(60)

APPROVAL_PB = playbook(
    steps=f"""
    - name: scale out
      action: kubernetes.scale
      with: {{factor: 2, max_replicas: 20}}
      approval: {{slack: {{channel: "#oncall"}}, ttl: 15m}}
      verify: {verified("scaled_ok")}
""",
    escalate="""
    - action: jira.incident
      with: {project: OPS, issue_type: Incident, priority: High}
""")


async def awaiting(stack: Stack) -> str:
    """Post the alert; wait for the approval request in Slack; return the approval id."""
    await stack.start(APPROVAL_PB)
    stack.prom.holding = {"scaled_ok"}
    await stack.post([alert()])

    async def asked() -> bool:
        return bool(stack.slack.roots("#oncall"))
    await stack.until(asked, "the approval request in #oncall")
    inc = await stack.incident()
    assert inc.state == IncidentState.AWAITING_APPROVAL
    approval = inc.context["approval"]
    assert approval["channel"] == "#oncall" and approval["decision"] is None
    [request] = stack.slack.roots("#oncall")
    buttons = next(b for b in request.blocks if b["type"] == "actions")["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("remediator_approve", approval["id"]), ("remediator_reject", approval["id"])]
    assert stack.writes() == []
    return str(approval["id"])


async def test_an_allowed_click_resumes_the_step(stack: Stack) -> None:
    approval_id = await awaiting(stack)
    status, body = await stack.interact(click(approval_id))
    assert status == 200, body
    assert body["text"].startswith("approved by")
    await stack.settle()

    inc = await stack.incident()
    assert inc.state == IncidentState.RECOVERED, inc.summary
    assert [s.status for s in inc.steps] == [StepStatus.SUCCEEDED]
    assert [(w["method"], w["path"]) for w in stack.writes()] == [("PATCH", SCALE)]
    decided = [e for e in inc.timeline if e.kind == "approval" and "approved by" in e.message]
    assert len(decided) == 1
    assert ALICE in decided[0].message
    assert inc.context["approval"]["decision"] == "approved"
    assert ALICE in inc.context["approval"]["by"]
    [request] = stack.slack.roots("#oncall")
    assert request.text.startswith(":white_check_mark: Approval for *scale out*: approved by "
                                   f"<@{ALICE}>")
    assert all(b["type"] != "actions" for b in request.blocks)
    assert stack.jira.issues == {}
