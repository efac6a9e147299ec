"""Flow control for humans: per-key pacing on the clock, coalesced edits, priority lanes,
and a storm of incidents for one playbook folded into one Slack storm message."""

from __future__ import annotations

from datetime import timedelta

from remediator.adapters.slack import SlackChat
from remediator.clock import FakeClock
from remediator.engine.notifications import Pacer, Storms, plan_window
from remediator.model.incident import IncidentState, StepStatus
from remediator.notify.slack import SlackSink
from remediator.ports.sinks import EventKind, MemorySinkState, NotificationEvent
from remediator.testing.fake_slack import FakeSlack

from .factories import T0, make_view, step


def event(id_: int, kind: EventKind, incident: str = "inc-1", **view: object
          ) -> NotificationEvent:
    rec = view.pop("step", None)
    return NotificationEvent(id=id_, kind=kind, at=T0, incident=make_view(id=incident, **view),
                             step=rec)


async def test_the_pacer_allows_a_burst_then_one_call_a_second_per_key() -> None:
    clock = FakeClock(T0, auto_advance=True)
    pacer = Pacer(clock, rate=1.0, burst=3)
    for _ in range(13):
        await pacer.acquire("#ops")
    assert clock.now() - T0 == timedelta(seconds=10)
    await pacer.acquire("#other")                   # another channel has its own bucket
    assert clock.now() - T0 == timedelta(seconds=10)


def test_edits_coalesce_to_the_latest_and_approvals_go_first() -> None:
    sink = SlackSink(chat=None)  # type: ignore[arg-type]   # covers() needs no chat
    s0 = step(0, "restart", StepStatus.APPLIED)
    s0_done = step(0, "restart", StepStatus.FAILED)
    events = [
        event(1, EventKind.OPENED, "a"),
        event(2, EventKind.STATE, "a", state=IncidentState.REMEDIATING),
        event(3, EventKind.STEP, "a", step=s0),
        event(4, EventKind.OPENED, "b"),
        event(5, EventKind.STEP, "a", step=s0_done),
        event(6, EventKind.STATE, "b", state=IncidentState.REMEDIATING),
        event(7, EventKind.APPROVAL_REQUESTED, "b", state=IncidentState.AWAITING_APPROVAL),
    ]
    superseded, ordered = plan_window(events, sink.covers)
    assert sorted(e.id for e in superseded) == [1, 2, 3, 4]     # redone by 5 (a) and 6 (b)
    assert [e.id for e in ordered] == [6, 7, 5]     # b's approval (with b's edit) first


async def test_a_storm_for_one_playbook_is_one_message_edited_with_counts() -> None:
    """50 incidents opened at once for one playbook (threshold 5): 5 threads, then one
    storm message whose last edit counts the 45 others by state; before storms this made
    50 threads."""
    storms = Storms(threshold=5, window=300)
    fake = FakeSlack()
    await fake.start()
    chat = SlackChat(fake.token, base_url=fake.base_url, timeout=5)
    try:
        sink, state = SlackSink(chat), MemorySinkState()
        events: list[NotificationEvent] = []
        for i in range(50):
            view = make_view(id=f"inc-{i}")
            storm = storms.opened(view.playbook, T0 + timedelta(seconds=i))
            if storm is not None:
                storm.states[view.id] = "escalated" if i % 3 else "open"
                view.context["storm"] = storm.summary()
            events.append(NotificationEvent(id=i + 1, kind=EventKind.OPENED, at=T0,
                                            incident=view))
        superseded, ordered = plan_window(events, sink.covers)
        for e in ordered:
            await sink.deliver(e, state)
        roots = fake.roots("#ops-alerts")
        assert len(roots) == 6                           # 5 incidents + the storm message
        [storm_msg] = [r for r in roots if r.text.startswith(":cyclone: *Storm*")]
        assert "45 incidents" in storm_msg.text
        assert "30 escalated to humans · 15 firing" in storm_msg.text
        assert len(superseded) == 44                     # only the latest storm edit went
    finally:
        await chat.close()
        await fake.stop()
