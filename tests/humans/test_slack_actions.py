"""slack.page and slack.notify against the fake Slack, and the console sink."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from remediator.actions import registry
from remediator.actions.humans import SlackNotify, SlackPage
from remediator.actions.params import SlackNotifyParams, SlackPageParams
from remediator.adapters.slack import SlackChat
from remediator.engine.contract import RunContext
from remediator.errors import PermanentError, TemporaryError
from remediator.model.incident import IncidentState
from remediator.notify.console import ConsoleSink
from remediator.notify.slack import SlackSink
from remediator.ports.sinks import MemorySinkState
from remediator.testing.fake_slack import FakeSlack

from .factories import lifecycle, make_view

Build = Callable[..., RunContext]


async def test_page_has_mention_links_cluster_context_and_what_was_tried(
        fake_slack: FakeSlack, chat: SlackChat, action_context: Build) -> None:
    steps = lifecycle()[4].incident.steps
    view = make_view(state=IncidentState.ESCALATED, steps=steps, context={
        "target": {"events": ["Warning BackOff: Back-off restarting failed container"],
                   "pods": [{"name": "api-7f9", "phase": "Running", "restarts": 12,
                             "reason": "CrashLoopBackOff"}]},
        "jira": {"key": "OPS-1", "url": "https://jira.example.com/browse/OPS-1"}})
    ctx = action_context(view, chat=chat)
    action = registry.implementation("slack.page")
    params = SlackPageParams(channel="#oncall", mention="<!subteam^S0ONCALL>")
    intent = await action.plan(ctx, params)
    result = await action.apply(ctx, intent)

    [page] = fake_slack.roots("#oncall")
    assert page.text.startswith("<!subteam^S0ONCALL> :pager: HighErrorRate on Deployment")
    for expected in ("<https://runbooks.example.com/api-errors|Runbook>",
                     "<http://prometheus.example.com/graph?g0.expr=job%3Ahttp_errors|Graph>",
                     "<https://jira.example.com/browse/OPS-1|Jira OPS-1>",
                     "1. restart (kubernetes.restart): failed",
                     "2. scale out (kubernetes.scale): verifying",
                     "Back-off restarting failed container",
                     "pod api-7f9: phase=Running restarts=12 reason=CrashLoopBackOff"):
        assert expected in page.text, expected
    assert result.details["context"]["slack_page"] == {"channel": page.channel, "ts": page.ts}


async def test_notify_replies_in_the_incident_thread(
        fake_slack: FakeSlack, chat: SlackChat, action_context: Build) -> None:
    await SlackSink(chat).deliver(lifecycle()[0], MemorySinkState())
    root = fake_slack.roots()[0]
    ctx = action_context(make_view(), chat=chat)
    action = SlackNotify()
    await action.apply(ctx, await action.plan(ctx, SlackNotifyParams(text="cache flushed")))
    [reply] = fake_slack.replies(root.channel, root.ts)
    assert reply.text == "cache flushed"


async def test_notify_in_a_channel_or_creates_the_thread_in_the_playbook_channel(
        fake_slack: FakeSlack, chat: SlackChat, action_context: Build) -> None:
    """No thread yet: the action makes it (the root as the sink renders it) and replies
    there; the sink adopts that root instead of making a second thread. With no channel
    known to the action, it waits for the sink to make the thread (temporary, not lost)."""
    action = SlackNotify()
    ctx = action_context(make_view(), chat=chat)
    await action.apply(ctx, await action.plan(ctx, SlackNotifyParams(channel="#general",
                                                                     text="hello")))
    assert fake_slack.roots("#general")[0].text == "hello"
    await action.apply(ctx, await action.plan(ctx, SlackNotifyParams(text="no thread yet")))
    [root] = fake_slack.roots("#ops-alerts")
    assert root.text.startswith(":rotating_light: Firing: HighErrorRate")
    assert [m.text for m in fake_slack.replies(root.channel, root.ts)] == ["no thread yet"]
    state = MemorySinkState()
    await SlackSink(chat).deliver(lifecycle()[0], state)
    assert len(fake_slack.roots("#ops-alerts")) == 1          # the sink adopted the root

    bare = action_context(make_view(id="inc-2", notify={}), chat=chat)
    with pytest.raises(TemporaryError, match="no Slack thread yet"):
        await action.apply(bare, await action.plan(bare, SlackNotifyParams(text="x")))


async def test_missing_chat_is_permanent(action_context: Build) -> None:
    ctx = action_context()
    params = SlackPageParams(channel="#oncall", mention="<@U1>")
    with pytest.raises(PermanentError, match="Slack is not configured"):
        await SlackPage().apply(ctx, await SlackPage().plan(ctx, params))


async def test_console_sink_writes_one_line_per_event_once() -> None:
    out, state = io.StringIO(), MemorySinkState()
    sink = ConsoleSink(out)
    for _ in range(2):
        for event in lifecycle():
            await sink.deliver(event, state)
    lines = out.getvalue().splitlines()
    assert len(lines) == 7
    assert lines[0].startswith("2026-08-01T10:00:00Z [inc-1] opened")
    assert "| 1. restart (kubernetes.restart): failed" in lines[3]
    assert "recovered" in lines[-1]
