"""A step with ``approval:`` through the whole daemon: the incident waits, Slack shows
Approve/Reject with the approval id, a signed click from an allowed user resumes the
step; forged, stale, replayed, unlisted and second clicks change nothing; rejection
and expiry escalate."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from remediator.model.incident import IncidentState, StepStatus
from remediator.notify.interactions import slack_signature

from .harness import ALICE, EVE, SCALE, SIGNING_SECRET, Stack, alert, click, playbook, verified

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
    assert approval["channel"] == "#oncall"
    assert approval["decision"] is None
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


async def test_forged_stale_replayed_unlisted_and_second_clicks_change_nothing(
        stack: Stack) -> None:
    approval_id = await awaiting(stack)
    body = click(approval_id)
    now = int(time.time())

    async def unchanged() -> None:
        inc = await stack.incident()
        assert inc.state == IncidentState.AWAITING_APPROVAL
        assert inc.context["approval"]["decision"] is None
        assert stack.writes() == []

    # forged: signed with another secret / a made-up signature / no signature at all
    forged = slack_signature("not-the-secret", str(now), body)
    for signature in (forged, "v0=" + "0" * 64, ""):
        status, _ = await stack.interact(body, timestamp=now, signature=signature)
        assert status == 401
    # tampered: a valid signature of another body
    status, _ = await stack.interact(click(approval_id, action="remediator_reject"),
                                     timestamp=now,
                                     signature=slack_signature(SIGNING_SECRET, str(now), body))
    assert status == 401
    # stale: correctly signed, but more than five minutes old (or ahead)
    for offset in (-301, -3600, 301):
        status, reply = await stack.interact(body, timestamp=now + offset)
        assert status == 401, reply
    # not on the allow-list: 403
    status, reply = await stack.interact(click(approval_id, user=EVE))
    assert status == 403, reply
    # an unknown approval id: 404
    status, _ = await stack.interact(click("apr-doesnotexist"))
    assert status == 404
    await unchanged()

    # the real click, then the very same request again (a replay inside the window)
    ts = int(time.time())
    status, _ = await stack.interact(body, timestamp=ts)
    assert status == 200
    status, reply = await stack.interact(body, timestamp=ts)
    assert status == 401
    assert "replay" in reply["error"]
    # a second, fresh click after the decision: already answered, no second action
    status, reply = await stack.interact(click(approval_id, action="remediator_reject"))
    assert status == 200
    assert "already answered" in reply["text"]
    await stack.settle()
    inc = await stack.incident()
    assert inc.state == IncidentState.RECOVERED
    assert inc.context["approval"]["decision"] == "approved"
    assert len(stack.writes(SCALE)) == 1
    assert len([e for e in inc.timeline if "approved by" in e.message]) == 1


async def test_reject_escalates_without_acting(stack: Stack) -> None:
    approval_id = await awaiting(stack)
    status, body = await stack.interact(click(approval_id, action="remediator_reject"))
    assert status == 200, body
    await stack.settle()
    inc = await stack.incident()
    assert inc.state == IncidentState.ESCALATED
    assert "rejected by" in inc.summary
    assert ALICE in inc.summary
    assert stack.writes() == []
    [request] = stack.slack.roots("#oncall")
    assert request.text.startswith(f":no_entry: Approval for *scale out*: rejected by <@{ALICE}>")
    [ticket] = stack.jira.issues.values()
    assert inc.context["jira"]["key"] == ticket.key


async def test_ttl_expiry_escalates(stack: Stack) -> None:
    approval_id = await awaiting(stack)

    async def escalated() -> bool:
        return (await stack.incident()).state == IncidentState.ESCALATED
    await stack.clock.advance(14 * 60)
    inc = await stack.incident()
    assert inc.state == IncidentState.AWAITING_APPROVAL     # not yet
    await stack.until(escalated, "expiry after 15m", advance=30)
    await stack.settle()
    inc = await stack.incident()
    assert "expired unanswered" in inc.summary
    assert inc.context["approval"]["decision"] == "expired"
    assert stack.writes() == []
    [request] = stack.slack.roots("#oncall")
    assert request.text.startswith(":hourglass: Approval for *scale out*: expired")
    assert all(b["type"] != "actions" for b in request.blocks)
    # a click after the expiry is too late
    status, reply = await stack.interact(click(approval_id))
    assert status == 200
    assert "expired" in reply["text"]
    await stack.settle()
    assert stack.writes() == []


async def test_a_click_after_the_ttl_is_too_late_even_before_the_engine_notices(
        stack: Stack) -> None:
    approval_id = await awaiting(stack)
    # Time passes the TTL without waking the waiting incident (it polls every few
    # seconds, possibly on another replica): the click lands in that gap.
    stack.clock._now += timedelta(minutes=16)
    status, reply = await stack.interact(click(approval_id))
    assert status == 200
    assert "expired" in reply["text"]
    await stack.settle()
    inc = await stack.incident()
    assert inc.state == IncidentState.ESCALATED
    assert inc.context["approval"]["decision"] == "expired"
    assert stack.writes() == []


async def test_a_click_on_another_message_or_as_a_group_id_changes_nothing(
        stack: Stack) -> None:
    approval_id = await awaiting(stack)
    for body in (click(approval_id, message_ts="1700000099.000099"),     # a forwarded copy
                 click(approval_id, channel="C0001OPSALE")):              # another channel
        status, reply = await stack.interact(body)
        assert status == 403, reply
        assert reply["response_type"] == "ephemeral"
        assert "not the approval request remediator posted" in reply["text"]
    inc = await stack.incident()
    assert inc.state == IncidentState.AWAITING_APPROVAL
    assert inc.context["approval"]["decision"] is None
    status, reply = await stack.interact(click(approval_id))          # the real one still works
    assert status == 200, reply


async def test_a_click_before_the_post_is_recorded_waits_for_the_record(stack: Stack) -> None:
    """Slack shows the request as soon as it has it; remediator stores where it posted it
    only once Slack's answer is back. A click in between is decided, not refused."""
    await stack.start(APPROVAL_PB)
    stack.prom.holding = {"scaled_ok"}
    stack.slack.hold("#oncall")
    await stack.post([alert()])

    async def shown() -> bool:
        return bool(stack.slack.roots("#oncall"))
    await stack.until(shown, "the approval request in #oncall (its answer held)")
    [request] = stack.slack.roots("#oncall")
    approval_id = next(b for b in request.blocks if b["type"] == "actions")["elements"][0]["value"]
    clicking = asyncio.ensure_future(stack.interact(click(approval_id)))
    try:
        done, _ = await asyncio.wait({clicking}, timeout=0.3)
        assert not done, clicking.result()    # not refused while the record is on its way
    finally:
        stack.slack.release()
    status, body = await clicking
    assert status == 200, body
    assert body["text"].startswith("approved by")
    await stack.settle()
    inc = await stack.incident()
    assert inc.state == IncidentState.RECOVERED, inc.summary
    assert len(stack.writes(SCALE)) == 1
