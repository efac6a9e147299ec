"""A step whose ``approvers`` is a Slack user group id (``S…``), through the whole
daemon: the interactions route resolves the group with ``usergroups.users.list``
(the real slack_sdk against the fake Slack), caches its members for 60 s, lets a
member approve, refuses a non-member (403), and answers 503 — approving nothing —
when Slack cannot say who is in the group."""

from __future__ import annotations

import asyncio

import pytest

from remediator.model.incident import IncidentState, StepStatus

from .harness import ALICE, EVE, SCALE, Stack, alert, click, playbook, verified

pytestmark = pytest.mark.timeout(60)

BOB = "U0BOB"                   # only in the group, not on any list by id
GROUP = "S0ONCALL"
LOOKUP = "usergroups.users.list"

GROUP_PB = playbook(
    steps=f"""
    - name: scale out
      action: kubernetes.scale
      with: {{factor: 2, max_replicas: 20}}
      approval: {{slack: {{channel: "#oncall"}}, ttl: 15m, approvers: ["{GROUP}"]}}
      verify: {verified("scaled_ok")}
""",
    escalate="""
    - action: jira.incident
      with: {project: OPS, issue_type: Incident, priority: High}
""")


async def awaiting(stack: Stack) -> str:
    """Start with the group approval playbook, post the alert, return the approval id."""
    stack.slack.groups[GROUP] = [BOB, "U0CAROL"]
    await stack.start(GROUP_PB)             # config approvers: ALICE (the step overrides)
    stack.prom.holding = {"scaled_ok"}
    await stack.post([alert()])

    async def asked() -> bool:
        return bool(stack.slack.roots("#oncall"))
    await stack.until(asked, "the approval request in #oncall")
    inc = await stack.incident()
    assert inc.state == IncidentState.AWAITING_APPROVAL
    assert stack.slack.call_count(LOOKUP) == 0          # nobody clicked yet
    return str(inc.context["approval"]["id"])


async def unchanged(stack: Stack) -> None:
    inc = await stack.incident()
    assert inc.state == IncidentState.AWAITING_APPROVAL
    assert inc.context["approval"]["decision"] is None
    assert stack.writes() == []


async def test_a_group_member_approves_and_the_step_runs(stack: Stack) -> None:
    approval_id = await awaiting(stack)
    status, body = await stack.interact(click(approval_id, user=BOB))
    assert status == 200, body
    assert body["text"].startswith("approved by")
    await stack.settle()
    inc = await stack.incident()
    assert inc.state == IncidentState.RECOVERED, inc.summary
    assert [s.status for s in inc.steps] == [StepStatus.SUCCEEDED]
    assert [(w["method"], w["path"]) for w in stack.writes()] == [("PATCH", SCALE)]
    assert inc.context["approval"]["decision"] == "approved"
    assert BOB in inc.context["approval"]["by"]
    [(_, args)] = [c for c in stack.slack.calls if c[0] == LOOKUP]
    assert args["usergroup"] == GROUP


async def test_a_non_member_is_refused_and_nothing_changes(stack: Stack) -> None:
    approval_id = await awaiting(stack)
    for user in (EVE, ALICE):           # ALICE is on the config's list, not the step's
        for action in ("remediator_approve", "remediator_reject"):
            status, reply = await stack.interact(click(approval_id, user=user, action=action))
            assert status == 403, reply
            assert user in reply["error"]
    await unchanged(stack)
    await stack.drained()
    await unchanged(stack)
    assert stack.jira.issues == {}


async def test_slack_failing_on_the_lookup_is_503_and_approves_nothing(stack: Stack) -> None:
    approval_id = await awaiting(stack)
    stack.slack.fail(times=1, status=503, method=LOOKUP)
    status, reply = await stack.interact(click(approval_id, user=BOB))
    assert status == 503, reply
    assert "user group" in reply["error"]
    assert GROUP in reply["detail"]["groups"]
    # Slack says the group does not exist: still no answer we can trust
    members = stack.slack.groups.pop(GROUP)
    status, reply = await stack.interact(click(approval_id, user=BOB))
    assert status == 503, reply
    assert "no_such_subteam" in reply["detail"]["groups"][GROUP]
    await unchanged(stack)
    await stack.drained()
    await unchanged(stack)

    # A failure is not cached: once Slack answers, the member's click goes through.
    stack.slack.groups[GROUP] = members
    status, reply = await stack.interact(click(approval_id, user=BOB))
    assert status == 200, reply
    await stack.settle()
    assert (await stack.incident()).state == IncidentState.RECOVERED
    assert stack.slack.call_count(LOOKUP) == 3


async def test_clicks_within_60s_share_one_lookup(stack: Stack) -> None:
    approval_id = await awaiting(stack)
    # a burst: concurrent clicks wait for the same lookup
    results = await asyncio.gather(*(stack.interact(click(approval_id, user=EVE))
                                     for _ in range(3)))
    assert [status for status, _ in results] == [403, 403, 403]
    assert stack.slack.call_count(LOOKUP) == 1
    await stack.clock.advance(59)
    status, reply = await stack.interact(click(approval_id, user=BOB))
    assert status == 200, reply
    assert stack.slack.call_count(LOOKUP) == 1
    await stack.settle()
    # past 60 s the members are looked up again (a membership change shows up)
    await stack.clock.advance(2)
    stack.slack.groups[GROUP] = ["U0CAROL"]
    status, reply = await stack.interact(click(approval_id, user=BOB))
    assert status == 403, reply
    assert stack.slack.call_count(LOOKUP) == 2
    inc = await stack.incident()
    assert inc.state == IncidentState.RECOVERED
    assert len(stack.writes(SCALE)) == 1
