"""A whole incident through the daemon with Slack and Jira configured: one Slack thread
(its root edited to the final state, one reply per step), one Jira ticket; replays
and restarts create nothing new; Jira down and Slack 429 do not disturb remediation."""

from __future__ import annotations

import pytest

from remediator.model.incident import IncidentState

from .harness import DEPLOYMENT, SCALE, Stack, alert, playbook, verified

pytestmark = pytest.mark.timeout(60)

LADDER_PB = playbook(
    steps=f"""
    - name: restart
      action: kubernetes.restart
      verify: {verified("restart_ok")}
    - name: scale out
      action: kubernetes.scale
      with: {{factor: 2, max_replicas: 20}}
      verify: {verified("scaled_ok")}
""",
    escalate="""
    - action: jira.incident
      with: {project: OPS, issue_type: Incident, priority: High}
    - action: slack.notify
      with: {text: "automation could not fix {{ target.name }}"}
""")


async def escalated(stack: Stack) -> None:
    async def done() -> bool:
        views = await stack.incidents()
        return bool(views) and views[0].state == IncidentState.ESCALATED \
            and views[0].context.get("escalation") == "done"
    await stack.until(done, "the escalation", advance=30)
    await stack.settle()


async def resolved(stack: Stack) -> None:
    await stack.post([alert("resolved")])

    async def closed() -> bool:
        return (await stack.incident()).state == IncidentState.RESOLVED
    await stack.until(closed, "the incident to close")
    await stack.settle()


def thread(stack: Stack) -> tuple[str, list[str]]:
    """(root text, reply texts) of the one incident thread in #ops-alerts."""
    [root] = stack.slack.roots("#ops-alerts")
    return root.text, [m.text for m in stack.slack.replies(root.channel, root.ts)]


def step_replies(replies: list[str]) -> list[str]:
    """The reply of each step, by its number and name ("1. restart", "1. escalate 1")."""
    return [r.split(" (", 1)[0].split(" ", 1)[1] for r in replies
            if r.split(" ", 1)[0] in (":x:", ":white_check_mark:", ":hourglass_flowing_sand:",
                                      ":arrow_forward:", ":fast_forward:")
            and " (" in r]


async def test_escalated_incident_one_thread_one_ticket_replays_and_restart(
        stack: Stack) -> None:
    await stack.start(LADDER_PB)
    await stack.post([alert()])
    await escalated(stack)
    inc = await stack.incident()
    assert [(w["method"], w["path"]) for w in stack.writes()] == [
        ("PATCH", DEPLOYMENT), ("PATCH", SCALE)]
    [ticket] = stack.jira.issues.values()
    assert inc.context["jira"]["key"] == ticket.key
    root, replies = thread(stack)
    assert root.startswith(":sos: Escalated to humans")
    assert step_replies(replies) == ["1. restart", "2. scale out", "1. escalate 1",
                                     "2. escalate 2"]
    assert replies.count("automation could not fix api") == 1     # slack.notify, in the thread

    await resolved(stack)
    root, replies = thread(stack)
    assert root.startswith(":large_green_circle: Resolved")
    assert step_replies(replies) == ["1. restart", "2. scale out", "1. escalate 1",
                                     "2. escalate 2"]
    assert ticket.status == "Done"
    assert len(stack.slack.roots()) == 1                     # one thread, nothing top-level
    before = (len(stack.slack.calls), len(stack.slack.messages), len(stack.jira.issues),
              stack.jira.count("POST", "/rest/api/2/issue"), len(stack.writes()))
    comments = stack.jira.count("POST", f"/rest/api/2/issue/{ticket.key}/comment")

    # Alertmanager repeats the same webhooks; the daemon restarts (a new Engine on the
    # same SQLite file, new sinks and clients); the webhooks come once more.
    await stack.post([alert()])
    await stack.post([alert("resolved")])
    await stack.settle()
    await stack.restart(LADDER_PB)
    await stack.post([alert()])
    await stack.post([alert("resolved")])
    await stack.settle()
    assert len(await stack.incidents()) == 1
    after = (len(stack.slack.calls), len(stack.slack.messages), len(stack.jira.issues),
             stack.jira.count("POST", "/rest/api/2/issue"), len(stack.writes()))
    assert after == before
    assert stack.jira.count("POST", f"/rest/api/2/issue/{ticket.key}/comment") == comments
    assert (await stack.incident()).state == IncidentState.RESOLVED


async def test_jira_down_during_escalation_ticket_created_once_it_is_back(
        stack: Stack) -> None:
    await stack.start(LADDER_PB)
    await stack.jira.down()
    await stack.post([alert()])

    async def retrying() -> bool:
        inc = await stack.incident()
        return any(e.kind == "retry" and "jira.incident" in e.message for e in inc.timeline)
    await stack.until(retrying, "jira.incident retrying", advance=30)
    # remediation was not held up by Jira: both steps acted and were verified
    inc = await stack.incident()
    assert inc.state == IncidentState.ESCALATED
    assert [(w["method"], w["path"]) for w in stack.writes()] == [
        ("PATCH", DEPLOYMENT), ("PATCH", SCALE)]
    await stack.drained()                                    # the outbox is asynchronous
    root, _ = thread(stack)
    assert root.startswith(":sos: Escalated")                # Slack is not held up either
    assert stack.jira.issues == {}

    await stack.jira.up()
    await escalated(stack)
    inc = await stack.incident()
    [ticket] = stack.jira.issues.values()
    assert inc.context["jira"]["key"] == ticket.key
    assert [s.status.value for s in inc.steps if s.action.startswith("escalate:")] == [
        "succeeded", "succeeded"]
    # the Jira sink comments on the ticket from then on (the resolution, via the outbox)
    await resolved(stack)
    assert ticket.status == "Done"
    assert len(stack.jira.issues) == 1


async def test_slack_429_is_retried(stack: Stack) -> None:
    await stack.start(LADDER_PB)
    stack.prom.holding = {"restart_ok"}
    stack.slack.rate_limit(times=1, retry_after=0)
    await stack.post([alert()])

    async def recovered() -> bool:
        return (await stack.incident()).state == IncidentState.RECOVERED
    await stack.until(recovered, "recovery at step 1", advance=30)
    await stack.settle()
    root, replies = thread(stack)
    assert root.startswith(":white_check_mark: Recovered")
    assert step_replies(replies) == ["1. restart"]
    posts = stack.slack.call_count("chat.postMessage")
    assert posts == len(stack.slack.messages) + 1            # the 429, then its retry
    assert stack.jira.issues == {}


async def test_after_a_restart_slack_notify_still_replies_in_the_incidents_thread(
        stack: Stack) -> None:
    """The thread map of ``SlackChat`` is in memory; after a restart ``slack.notify``
    finds the thread through the Slack sink's durable state."""
    await stack.start(LADDER_PB)
    await stack.jira.down()                       # the escalation stalls on jira.incident
    await stack.post([alert()])

    async def retrying() -> bool:
        inc = await stack.incident()
        return any(e.kind == "retry" and "jira.incident" in e.message for e in inc.timeline)
    await stack.until(retrying, "jira.incident retrying", advance=30)
    await stack.drained()
    await stack.stop()                            # cut mid-escalation: slack.notify not run
    await stack.jira.up()
    await stack.start(LADDER_PB)                  # a new process: an empty thread map
    await escalated(stack)
    _root, replies = thread(stack)
    assert replies.count("automation could not fix api") == 1
    assert len(stack.slack.roots()) == 1          # no stray top-level message
    assert len(stack.jira.issues) == 1


async def test_jira_down_longer_than_the_quick_retries(stack: Stack) -> None:
    # Jira is down for ten minutes: the Slack message goes out at once (it does not wait
    # behind Jira), and the ticket is created once Jira is back.
    await stack.start(LADDER_PB)
    await stack.jira.down()
    await stack.post([alert()])

    async def notified() -> bool:
        if len(stack.slack.roots("#ops-alerts")) != 1:
            return False
        _root, replies = thread(stack)
        return replies.count("automation could not fix api") == 1
    await stack.until(notified, "the Slack escalation while Jira is down", advance=30)
    assert len(stack.jira.issues) == 0
    await stack.clock.advance(600)
    await stack.jira.up()
    await escalated(stack)
    await stack.settle()
    assert len(stack.jira.issues) == 1
    inc = (await stack.incidents())[0]
    jira_step = next(s for s in inc.steps if s.action == "escalate:jira.incident")
    assert jira_step.status.value == "succeeded"
    assert jira_step.error is None
