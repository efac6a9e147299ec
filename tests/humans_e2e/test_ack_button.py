"""The Acknowledge button on the escalation message, through the whole daemon: the
reply carries the button (value: the incident id); forged, stale and replayed clicks
get 401, a user not on the allow-list 403 (journaled), a click on another message 403;
an allowed click acknowledges the incident and the message loses its button."""

from __future__ import annotations

import time
from typing import Any

import pytest

from remediator.model.incident import IncidentState
from remediator.notify.interactions import slack_signature
from remediator.testing.fake_slack import SlackMessage

from .harness import ALICE, EVE, Stack, alert, click, playbook, verified

pytestmark = pytest.mark.timeout(60)

PB = playbook(
    steps=f"""
    - name: scale out
      action: kubernetes.scale
      with: {{factor: 2, max_replicas: 20}}
      verify: {verified("scaled_ok")}
""",
    escalate="""
    - action: jira.incident
      with: {project: OPS, issue_type: Incident, priority: High}
""")


def ack_button(message: SlackMessage) -> dict[str, str] | None:
    for block in message.blocks or []:
        if block.get("type") == "actions":
            for element in block["elements"]:
                if element["action_id"] == "remediator_ack":
                    return dict(element)
    return None


async def escalated(stack: Stack, settings: dict[str, Any] | None = None
                    ) -> tuple[str, SlackMessage]:
    """The incident escalated by PB, and its one reply with an Acknowledge button."""
    await stack.start(PB, settings=settings)
    await stack.post([alert()])

    async def gave_up() -> bool:
        views = await stack.incidents()
        return bool(views) and views[0].state == IncidentState.ESCALATED
    await stack.until(gave_up, "the escalation", advance=30.0)
    await stack.settle()
    inc = await stack.incident()
    [root] = stack.slack.roots("#ops-alerts")
    replies = [m for m in stack.slack.replies("#ops-alerts", root.ts) if ack_button(m)]
    assert len(replies) == 1, [m.text for m in stack.slack.replies("#ops-alerts", root.ts)]
    return inc.id, replies[0]


async def test_acknowledge_button(stack: Stack) -> None:
    incident_id, message = await escalated(stack)
    button = ack_button(message)
    assert button is not None
    assert button["value"] == incident_id
    body = click(incident_id, action="remediator_ack", channel=message.channel,
                 message_ts=message.ts)
    now = int(time.time())
    for signature in (slack_signature("not-the-secret", str(now), body), ""):
        assert (await stack.interact(body, timestamp=now, signature=signature))[0] == 401
    assert (await stack.interact(body, timestamp=now - 301))[0] == 401
    status, reply = await stack.interact(click(incident_id, action="remediator_ack",
                                               user=EVE, channel=message.channel,
                                               message_ts=message.ts))
    assert status == 403, reply
    elsewhere = click(incident_id, action="remediator_ack", channel=message.channel,
                      message_ts="1700000099.000099")
    status, reply = await stack.interact(elsewhere)
    assert status == 403, reply
    assert "not the escalation message" in reply["text"], reply
    inc = await stack.incident()
    assert "ack" not in inc.context
    refused = [e.message for e in inc.timeline if e.kind == "ack"]
    assert len(refused) == 2, refused
    assert f"({EVE}) (via slack) refused: not on the allow-list" in refused[0], refused

    ts = int(time.time())
    status, reply = await stack.interact(body, timestamp=ts)
    assert status == 200, reply
    assert reply["text"] == f"acknowledged by {ALICE.lower()} ({ALICE})"
    assert (await stack.interact(body, timestamp=ts))[0] == 401          # the replay
    await stack.drained()
    inc = await stack.incident()
    assert inc.context["ack"]["by"] == f"{ALICE.lower()} ({ALICE})"
    assert inc.context["ack"]["via"] == "slack"
    edited = stack.slack.message(message.channel, message.ts)
    assert edited is not None
    assert ack_button(edited) is None
    assert f"Acknowledged by <@{ALICE}>" in edited.text


async def test_acknowledgers_are_their_own_allow_list(stack: Stack) -> None:
    """``slack.acknowledgers`` replaces the approvers for the Acknowledge button: EVE,
    who may not approve, may acknowledge; ALICE, an approver not on it, may not."""
    incident_id, message = await escalated(stack, {"slack": {"acknowledgers": [EVE]}})
    status, reply = await stack.interact(click(incident_id, action="remediator_ack", user=ALICE,
                                               channel=message.channel,
                                               message_ts=message.ts))
    assert status == 403, reply
    refused = [e.message for e in (await stack.incident()).timeline if e.kind == "ack"]
    assert f"({ALICE}) (via slack) refused: not on the allow-list" in refused[0], refused
    status, reply = await stack.interact(click(incident_id, action="remediator_ack", user=EVE,
                                               channel=message.channel,
                                               message_ts=message.ts))
    assert status == 200, reply
    assert (await stack.incident()).context["ack"]["by"] == f"{EVE.lower()} ({EVE})"
