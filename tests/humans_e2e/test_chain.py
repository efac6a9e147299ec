"""Escalation policies on a fake clock, through the whole daemon and a fake Slack: a
three-level policy pages level 1 (and reminds it), then level 2 after ``ack_within``,
then level 3, then starts over ``repeat`` times; an acknowledgement from a level-2 page
stops it; a restart mid-chain neither skips nor repeats a level."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from remediator.model.incident import IncidentState

from .harness import ALICE, Stack, alert, click

pytestmark = pytest.mark.timeout(60)

BOB, SRE = "U0BOB", "S0SRE"
POLICY: dict[str, Any] = {"primary": {"repeat": 1, "levels": [
    {"targets": {"slack_users": [ALICE], "slack_channel": "#oncall"},
     "ack_within": "5m", "reminders": ["2m"]},
    {"targets": {"slack_groups": [SRE], "slack_channel": "#oncall"}, "ack_within": "10m"},
    {"targets": {"slack_users": [BOB], "slack_channel": "#oncall"}, "ack_within": "10m"},
]}}
SETTINGS = {"escalation": {"policies": POLICY, "tick": "1d"}}     # ticks driven by the test

PB = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: api-errors}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}",
           name: "{{ labels.deployment }}"}
  escalate:
    - policy: primary
  notify: {slack: {channel: "#ops-alerts"}}
"""


def pages(stack: Stack) -> list[str]:
    """Who each page in #oncall was for, in order (with 'reminder' marked)."""
    out = []
    for m in stack.slack.roots("#oncall"):
        who = next(w for w in (ALICE, SRE, BOB) if w in m.text)
        out.append(who + ("+r" if "reminder" in m.text else ""))
    return out


async def escalated(stack: Stack) -> str:
    await stack.start(PB, settings=SETTINGS)
    await stack.post([alert()])

    async def handed_over() -> bool:
        views = await stack.incidents()
        return bool(views) and views[0].state == IncidentState.ESCALATED \
            and views[0].context.get("escalation") == "done"
    await stack.until(handed_over, "the escalation")
    return (await stack.incident()).id


async def at(stack: Stack, minutes: float) -> None:
    """Move the clock to ``minutes`` after the escalation started, and fire what is due."""
    start = stack.start_time
    target = start + timedelta(minutes=minutes)
    await stack.clock.advance(max(0.0, (target - stack.clock.now()).total_seconds()))
    await stack.engine.chains.tick()


async def test_levels_reminders_and_repeat_in_order(stack: Stack) -> None:
    await escalated(stack)
    stack.start_time = stack.clock.now()
    await at(stack, 0)
    assert pages(stack) == [ALICE]
    await at(stack, 1.9)
    assert pages(stack) == [ALICE]
    await at(stack, 2)
    assert pages(stack) == [ALICE, ALICE + "+r"]
    await at(stack, 4.9)
    assert pages(stack) == [ALICE, ALICE + "+r"]
    await at(stack, 5)
    assert pages(stack) == [ALICE, ALICE + "+r", SRE]
    await at(stack, 15)
    assert pages(stack)[-1] == BOB
    await at(stack, 25)
    assert pages(stack)[-1] == ALICE                    # round 2
    await at(stack, 60)
    assert pages(stack) == [ALICE, ALICE + "+r", SRE, BOB] * 2    # due ones fired in order
    await at(stack, 600)
    assert len(pages(stack)) == 8                       # repeat: 1 → two rounds, then done
    inc = await stack.incident()
    notes = [e.message for e in inc.timeline if e.kind == "escalate" and "policy" in e.message]
    assert notes[-1] == ("escalation policy 'primary': every level was paged and nobody "
                         "acknowledged")
    assert await stack.engine.store.get_timer(inc.id) is None


async def test_an_ack_from_a_level_two_page_stops_the_chain(stack: Stack) -> None:
    incident_id = await escalated(stack)
    stack.start_time = stack.clock.now()
    await at(stack, 0)
    await at(stack, 5)
    assert pages(stack) == [ALICE, ALICE + "+r", SRE]
    page = stack.slack.roots("#oncall")[-1]
    assert any(b["type"] == "actions" for b in page.blocks)
    status, reply = await stack.interact(click(incident_id, action="remediator_ack",
                                               channel=page.channel, message_ts=page.ts))
    assert status == 200, reply
    await at(stack, 15)
    await at(stack, 120)
    assert pages(stack) == [ALICE, ALICE + "+r", SRE]
    inc = await stack.incident()
    assert inc.context["ack"]["via"] == "slack"
    stopped = [e.message for e in inc.timeline if "stopped" in e.message]
    assert stopped == [f"escalation policy 'primary' stopped: acknowledged by "
                       f"{ALICE.lower()} ({ALICE})"]
    assert await stack.engine.store.get_timer(incident_id) is None


async def test_a_restart_mid_chain_resumes_exactly(stack: Stack) -> None:
    await escalated(stack)
    stack.start_time = stack.clock.now()
    await at(stack, 0)
    await at(stack, 5)
    assert pages(stack) == [ALICE, ALICE + "+r", SRE]
    await stack.restart(PB, settings=SETTINGS)
    await at(stack, 5)                       # nothing due again: level 2 is not repeated
    assert pages(stack) == [ALICE, ALICE + "+r", SRE]
    await at(stack, 14.9)
    assert pages(stack) == [ALICE, ALICE + "+r", SRE]
    await at(stack, 15)                      # level 3 on time: not skipped
    assert pages(stack) == [ALICE, ALICE + "+r", SRE, BOB]


async def test_a_release_pages_the_chain_again_from_level_one(stack: Stack) -> None:
    incident_id = await escalated(stack)
    stack.start_time = stack.clock.now()
    await at(stack, 0)
    await stack.engine.acknowledge(incident_id, "alice")
    await at(stack, 30)
    assert pages(stack) == [ALICE]                       # stopped by the ack
    await stack.engine.release(incident_id, "alice")
    await at(stack, 30)
    assert pages(stack) == [ALICE, ALICE]                # level 1 again, at once
    await at(stack, 35)
    assert pages(stack) == [ALICE, ALICE, ALICE + "+r", SRE]


THREADED: dict[str, Any] = {"primary": {"levels": [
    {"targets": {"slack_users": [ALICE], "slack_channel": "#ops-alerts"},
     "ack_within": "5m", "reminders": ["2m"]},
    {"targets": {"slack_groups": [SRE], "slack_channel": "#oncall"}, "ack_within": "10m"},
]}}


async def test_pages_in_the_incidents_channel_are_thread_replies(stack: Stack) -> None:
    """Level 1 pages the incident's own channel: its page and reminder are replies in
    the incident's thread; level 2 pages #oncall top-level, linking to that thread; the
    Acknowledge button of a reply in the thread works."""
    await stack.start(PB, settings={"escalation": {"policies": THREADED, "tick": "1d"}})
    await stack.post([alert()])

    async def threaded() -> bool:
        views = await stack.incidents()
        return bool(views) and views[0].context.get("escalation") == "done" \
            and len(stack.slack.roots("#ops-alerts")) == 1
    await stack.until(threaded, "the escalation and the incident's thread")
    incident_id = (await stack.incident()).id
    [root] = stack.slack.roots("#ops-alerts")
    stack.start_time = stack.clock.now()
    await at(stack, 0)
    await at(stack, 2)
    in_thread = [m for m in stack.slack.replies("#ops-alerts", root.ts) if ALICE in m.text]
    assert len(in_thread) == 2                          # the page and its reminder
    assert "reminder 1" in in_thread[1].text
    assert stack.slack.roots("#ops-alerts") == [root]   # nothing top-level in the channel
    await at(stack, 5)
    [page] = stack.slack.roots("#oncall")
    assert SRE in page.text
    link = (f"https://fake-workspace.slack.com/archives/{root.channel}/"
            f"p{root.ts.replace('.', '')}")
    assert f"<{link}|The incident's thread>" in page.text
    notes = [e.message for e in (await stack.incident()).timeline if e.kind == "escalate"]
    assert any(f"paged {ALICE} in the incident's thread in #ops-alerts" in n for n in notes)
    assert any(f"paged {SRE} in #oncall, linking to the incident's thread" in n
               for n in notes), notes
    status, reply = await stack.interact(click(incident_id, action="remediator_ack",
                                               channel=root.channel,
                                               message_ts=in_thread[0].ts))
    assert status == 200, reply
    inc = await stack.incident()
    assert inc.context["ack"]["via"] == "slack"
    assert await stack.engine.store.get_timer(incident_id) is None
