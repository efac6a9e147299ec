"""The Slack sink against the fake Slack Web API, through the real slack_sdk client."""

from __future__ import annotations

import pytest

from remediator.adapters.slack import SlackChat
from remediator.errors import PermanentError, TemporaryError
from remediator.model.incident import IncidentState, StepStatus
from remediator.notify.slack import SlackSink
from remediator.ports.sinks import EventKind, MemorySinkState, NotificationEvent
from remediator.testing.fake_slack import FakeSlack

from .factories import T0, lifecycle, make_view, step


async def deliver_all(sink: SlackSink, events: list[NotificationEvent],
                      state: MemorySinkState) -> None:
    for event in events:
        await sink.deliver(event, state)


async def test_one_root_edited_to_final_state_and_one_reply_per_step(
        fake_slack: FakeSlack, chat: SlackChat) -> None:
    state = MemorySinkState()
    await deliver_all(SlackSink(chat, "#general"), lifecycle(), state)

    roots = fake_slack.roots()
    assert len(roots) == 1
    root = roots[0]
    assert root.channel == fake_slack.channel_id("ops-alerts")   # the playbook's channel
    assert root.history[0].startswith(":rotating_light: Firing")
    assert root.text.startswith(":white_check_mark: Recovered: HighErrorRate on Deployment")
    assert [h.split(":")[1] for h in root.history][:2] == ["rotating_light", "hammer_and_wrench"]
    assert root.attachments[0]["color"] == "#2EB67D"
    replies = fake_slack.replies(root.channel, root.ts)
    assert len(replies) == 2                                  # restart, scale out
    assert replies[0].text.startswith(":x: 1. restart")
    assert replies[0].edits == 1                               # applied → failed, in place
    assert "verify: rollout complete" in replies[1].text
    assert fake_slack.call_count("chat.postMessage") == 3


async def test_redelivery_and_restart_create_nothing_new(
        fake_slack: FakeSlack, chat: SlackChat) -> None:
    events = lifecycle()
    state = MemorySinkState()
    await deliver_all(SlackSink(chat, "#general"), events, state)
    calls = len(fake_slack.calls)

    await deliver_all(SlackSink(chat, "#general"), events, state)        # replay, same ids
    restarted = SlackChat(fake_slack.token, base_url=fake_slack.base_url)  # a new process
    try:
        await deliver_all(SlackSink(restarted, "#general"), events, state)
    finally:
        await restarted.close()
    assert len(fake_slack.calls) == calls
    assert len(fake_slack.messages) == 3


async def test_restart_mid_incident_edits_the_same_root(
        fake_slack: FakeSlack, chat: SlackChat) -> None:
    events = lifecycle()
    state = MemorySinkState()
    await deliver_all(SlackSink(chat), events[:3], state)
    restarted = SlackChat(fake_slack.token, base_url=fake_slack.base_url)
    try:
        await deliver_all(SlackSink(restarted), events[3:], state)
    finally:
        await restarted.close()
    assert len(fake_slack.roots()) == 1
    assert fake_slack.roots()[0].text.startswith(":white_check_mark: Recovered")
    assert len(fake_slack.messages) == 3


async def test_rate_limit_is_retried_by_the_sdk_handler(
        fake_slack: FakeSlack, chat: SlackChat) -> None:
    fake_slack.rate_limit(times=1, retry_after=0)
    await SlackSink(chat).deliver(lifecycle()[0], MemorySinkState())
    assert fake_slack.call_count("chat.postMessage") == 2        # 429, then the retry
    assert len(fake_slack.roots()) == 1


async def test_persistent_rate_limit_is_temporary_with_delay(
        fake_slack: FakeSlack, fake_slack_no_retry: SlackChat) -> None:
    fake_slack.rate_limit(times=1, retry_after=7)
    with pytest.raises(TemporaryError) as caught:
        await fake_slack_no_retry.post("#oncall", "hello")
    assert caught.value.delay == 7
    assert caught.value.__cause__ is not None


async def test_server_error_then_redelivery_posts_once(
        fake_slack: FakeSlack, chat: SlackChat) -> None:
    sink, state, first = SlackSink(chat), MemorySinkState(), lifecycle()[0]
    fake_slack.fail(times=1, status=503)
    with pytest.raises(TemporaryError):
        await sink.deliver(first, state)
    await sink.deliver(first, state)
    await sink.deliver(first, state)
    assert len(fake_slack.roots()) == 1


async def test_slack_down_is_temporary_then_recovers(
        fake_slack: FakeSlack, chat: SlackChat) -> None:
    sink, state, events = SlackSink(chat), MemorySinkState(), lifecycle()
    await sink.deliver(events[0], state)
    await fake_slack.down()
    with pytest.raises(TemporaryError, match="network error"):
        await sink.deliver(events[1], state)
    await fake_slack.up()
    await deliver_all(sink, events[1:], state)
    assert len(fake_slack.roots()) == 1


async def test_bad_input_and_bad_token_are_permanent(
        fake_slack: FakeSlack, chat: SlackChat) -> None:
    with pytest.raises(PermanentError, match="channel_not_found"):
        await chat.post("#nowhere", "hi")
    bad = SlackChat("xoxb-wrong", base_url=fake_slack.base_url)
    try:
        with pytest.raises(PermanentError, match="invalid_auth"):
            await bad.check()
    finally:
        await bad.close()
    assert (await chat.check())["user_id"] == fake_slack.bot_user_id


async def test_approval_buttons_then_decision_edits_the_request(
        fake_slack: FakeSlack, chat: SlackChat) -> None:
    sink, state = SlackSink(chat), MemorySinkState()
    rollback = step(2, "roll back", StepStatus.PENDING,
                    intent={"description": "roll back Deployment prod/api to revision 4"})
    waiting = make_view(state=IncidentState.AWAITING_APPROVAL, steps=[rollback],
                        context={"approval": {"id": "apr-42", "step": 2}})
    decided = make_view(state=IncidentState.REMEDIATING, steps=[rollback],
                        context={"approval": {"id": "apr-42", "step": 2,
                                              "decision": "approved", "by": "U0ALICE"}})
    await sink.deliver(NotificationEvent(id=1, kind=EventKind.OPENED, at=T0,
                                         incident=make_view()), state)
    await sink.deliver(NotificationEvent(id=2, kind=EventKind.APPROVAL_REQUESTED, at=T0,
                                         incident=waiting, step=rollback), state)
    root = fake_slack.roots()[0]
    request = fake_slack.replies(root.channel, root.ts)[0]
    buttons = request.blocks[1]["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("remediator_approve", "apr-42"), ("remediator_reject", "apr-42")]
    assert "revision 4" in request.text
    assert root.text.startswith(":raised_hand: Awaiting approval")

    await sink.deliver(NotificationEvent(id=3, kind=EventKind.APPROVAL_DECIDED, at=T0,
                                         incident=decided, step=rollback), state)
    assert len(fake_slack.replies(root.channel, root.ts)) == 1
    assert request.text.startswith(":white_check_mark: Approval for *roll back*: approved")
    assert "<@U0ALICE>" in request.text
    assert all(b["type"] != "actions" for b in request.blocks)


async def test_approval_in_the_playbooks_approval_channel(
        fake_slack: FakeSlack, chat: SlackChat) -> None:
    sink, state = SlackSink(chat), MemorySinkState()
    rollback = step(2, "roll back", StepStatus.PENDING)
    info = {"id": "apr-7", "step": "roll back", "channel": "#oncall",
            "expires_at": "2026-08-01T10:15:00+00:00", "decision": None, "by": None}
    waiting = make_view(state=IncidentState.AWAITING_APPROVAL, steps=[rollback],
                        context={"approval": info})
    rejected = make_view(state=IncidentState.REMEDIATING, steps=[rollback], context={
        "approval": {**info, "decision": "rejected", "by": "U0BOB"}})
    await sink.deliver(NotificationEvent(id=1, kind=EventKind.APPROVAL_REQUESTED, at=T0,
                                         incident=waiting, step=rollback), state)
    await sink.deliver(NotificationEvent(id=2, kind=EventKind.APPROVAL_DECIDED, at=T0,
                                         incident=rejected, step=rollback), state)
    [request] = fake_slack.roots("#oncall")
    assert request.edits == 1
    assert request.text.startswith(":no_entry: Approval for *roll back*: rejected by <@U0BOB>")
    assert request.history[0].startswith(":raised_hand: Approval needed")
    [root] = fake_slack.roots("#ops-alerts")
    [pointer] = fake_slack.replies(root.channel, root.ts)
    assert pointer.text == ":raised_hand: Approval requested in #oncall"


async def test_no_channel_is_permanent(chat: SlackChat) -> None:
    event = NotificationEvent(id=1, kind=EventKind.OPENED, at=T0, incident=make_view(notify={}))
    with pytest.raises(PermanentError, match="no Slack channel"):
        await SlackSink(chat).deliver(event, MemorySinkState())


@pytest.fixture
async def fake_slack_no_retry(fake_slack: FakeSlack):  # type: ignore[no-untyped-def]
    client = SlackChat(fake_slack.token, base_url=fake_slack.base_url, rate_limit_retries=0)
    yield client
    await client.close()
