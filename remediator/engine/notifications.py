"""The notification outbox: the engine appends events to the store, a dispatcher
delivers them to every sink in order, in the background, with retries.

A sink that is down (Slack, Jira) delays only its own deliveries; remediation
never waits for a human channel. Delivery is at-least-once (an event carries
its id so sinks can drop redeliveries).

Flow control (humans are a scarce resource):

* **Pacing.** A sink given a clock (``use_clock``; the daemon gives the real clock:
  the APIs' limits are in real seconds, whatever clock the engine runs on) paces its own
  API calls with a ``Pacer`` (token buckets per key, e.g. per Slack channel).
* **Coalescing.** Each pass takes a window of pending events; a sink with
  ``covers(event)`` names the messages an event renders, and an event whose every
  message is rendered again by a later event in the window is marked delivered without
  a call (several edits of one message → the latest).
* **Lanes.** The rest go out approvals, acks and pages first (``URGENT``), then new
  threads and closes, then state edits; an event takes its incident's earlier pending
  events with it, so one incident's story stays in order. An urgent event emitted in
  this process goes out next, ahead of the whole backlog, to sinks that can take it
  early (``deliver_early``, Slack); it is delivered again in its turn (a no-op).
* **Storms.** More than ``storm_threshold`` incidents opened for one playbook within
  ``storm_window`` seconds start a storm: the incidents opened during it carry
  ``context["storm"]`` (its id, playbook, start) in the store, and each of their events
  the storm's counts by state, so that the sinks fold them into one storm message (and
  ``jira.incident`` into one ticket). The counts live in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from remediator.clock import Clock
from remediator.engine.supervisor import Supervisor
from remediator.errors import PermanentError, TemporaryError
from remediator.metrics import Metrics
from remediator.model.incident import ALERTS_IN_VIEW, StepRecord
from remediator.ports.sinks import EventKind, NotificationEvent, Sink
from remediator.ports.store import Store

log = logging.getLogger("remediator.notify")

#: approvals, acks and pages: delivered before anything else
URGENT = frozenset({EventKind.APPROVAL_REQUESTED, EventKind.APPROVAL_DECIDED,
                    EventKind.ESCALATED, EventKind.ACKNOWLEDGED, EventKind.RELEASED})
APPROVALS = frozenset({EventKind.APPROVAL_REQUESTED, EventKind.APPROVAL_DECIDED})
_LANE = {EventKind.OPENED: 1, EventKind.CLOSED: 1, EventKind.STATE: 2, EventKind.STEP: 2}
#: pending events looked at in one pass
WINDOW = 500


class Pacer:
    """Token buckets on a clock: ``rate`` calls a second per key, bursts of ``burst``."""

    def __init__(self, clock: Clock, rate: float, burst: float = 1.0) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = max(1.0, burst)
        self._tokens: dict[str, tuple[float, datetime]] = {}

    async def acquire(self, key: str) -> None:
        """Wait (on the clock) until ``key`` may make one more call, and take it."""
        while True:
            now = self.clock.now()
            tokens, at = self._tokens.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at).total_seconds() * self.rate)
            if tokens >= 1.0:
                self._tokens[key] = (tokens - 1.0, now)
                return
            self._tokens[key] = (tokens, now)
            await self.clock.sleep((1.0 - tokens) / self.rate)


@dataclass
class Storm:
    """Incidents of one playbook opened faster than the storm threshold."""

    id: str
    playbook: str
    since: datetime
    states: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        counts: dict[str, int] = {}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        return {"id": self.id, "playbook": self.playbook, "since": self.since.isoformat(),
                "incidents": len(self.states), "counts": dict(sorted(counts.items()))}


class Storms:
    """Which playbooks are in a storm, and each storm's incidents by state."""

    def __init__(self, threshold: int, window: float) -> None:
        self.threshold = threshold
        self.window = timedelta(seconds=window)
        self._opened: dict[str, deque[datetime]] = {}
        self._active: dict[str, Storm] = {}
        self._by_id: dict[str, Storm] = {}

    def opened(self, playbook: str, now: datetime) -> Storm | None:
        """Count an incident opened now; the storm it belongs to, if one is on."""
        recent = self._opened.setdefault(playbook, deque())
        recent.append(now)
        while recent and now - recent[0] > self.window:
            recent.popleft()
        if len(recent) <= self.threshold:
            self._active.pop(playbook, None)
            return None
        storm = self._active.get(playbook)
        if storm is None:
            storm = Storm(f"{playbook}@{now.strftime('%Y%m%dT%H%M%SZ')}", playbook, now)
            self._active[playbook] = self._by_id[storm.id] = storm
            log.warning("notification storm: more than %d incidents of %s within %gs; "
                        "they are folded into one storm message", self.threshold, playbook,
                        self.window.total_seconds())
        return storm

    def of(self, mark: object) -> Storm | None:
        """The storm of an incident's ``context["storm"]`` (re-made after a restart)."""
        if not isinstance(mark, dict) or not isinstance(mark.get("id"), str):
            return None
        storm = self._by_id.get(mark["id"])
        if storm is None:
            since = datetime.fromisoformat(str(mark.get("since")))
            storm = self._by_id[mark["id"]] = Storm(mark["id"], str(mark.get("playbook")),
                                                    since)
        return storm


class StoreSinkState:
    """``SinkState`` persisted in the store, namespaced per sink."""

    def __init__(self, store: Store, sink: str) -> None:
        self.store = store
        self.sink = sink

    async def get(self, incident_id: str, key: str) -> str | None:
        return await self.store.sink_get(incident_id, f"{self.sink}:{key}")

    async def set(self, incident_id: str, key: str, value: str) -> None:
        await self.store.sink_set(incident_id, f"{self.sink}:{key}", value)


class Notifications:
    def __init__(self, store: Store, sinks: Sequence[Sink], clock: Clock, metrics: Metrics,
                 *, retry_base: float = 2.0, retry_max: float = 300.0,
                 owner: str = "", shared: bool = False, lease: float = 30.0,
                 storm_threshold: int = 20, storm_window: float = 300.0) -> None:
        """With a ``shared`` store (several replicas), a sink is delivered by the replica
        holding its lease; the others poll, so events another replica appended are seen."""
        self.owner = owner
        self.shared = shared
        self.lease = lease
        self.store = store
        self.sinks = list(sinks)
        self.clock = clock
        self.metrics = metrics
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.storms = Storms(storm_threshold, storm_window)
        self._kick = {s.name: asyncio.Event() for s in self.sinks}
        early = [s.name for s in self.sinks if hasattr(s, "deliver_early")]
        self._approvals: dict[str, deque[NotificationEvent]] = {name: deque() for name in early}
        self._urgent: dict[str, deque[NotificationEvent]] = {name: deque() for name in early}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def configure(self, *, storm_threshold: int, storm_window: float) -> None:
        """Settings from ``notify.storm`` (the composition root calls this before start)."""
        self.storms = Storms(storm_threshold, storm_window)

    async def emit(self, kind: EventKind, incident_id: str, *, step: StepRecord | None = None,
                   message: str = "") -> None:
        if not self.sinks:
            return
        view = await self.store.get_incident(incident_id, alert_limit=ALERTS_IN_VIEW)
        if view is None:
            return
        now = self.clock.now()
        storm = self.storms.of(view.context.get("storm"))
        if storm is None and kind is EventKind.OPENED:
            storm = self.storms.opened(view.playbook, now)
            if storm is not None:
                mark = {"id": storm.id, "playbook": storm.playbook,
                        "since": storm.since.isoformat()}
                await self.store.merge_context(incident_id, {"storm": mark}, now)
        if storm is not None:
            storm.states[view.id] = view.state.value
            view.context["storm"] = storm.summary()
        view.steps = [s.slim() for s in view.steps]        # the outbox keeps every event
        event = NotificationEvent(kind=kind, at=now, incident=view,
                                  step=step.slim() if step is not None else None,
                                  message=message)
        event.id = await self.store.append_event(incident_id, event.model_dump_json(), now)
        # Early delivery is for what a human must act on. An incident in a storm is
        # folded into the storm message: its escalation is not urgent on its own, and a
        # storm's escalations must not queue ahead of another incident's approval.
        if kind in URGENT and (storm is None or kind in APPROVALS):
            queues = self._approvals if kind in APPROVALS else self._urgent
            for queue in queues.values():       # approvals go before escalations
                queue.append(event)
        for ev in self._kick.values():
            ev.set()

    def start(self, tasks: Supervisor) -> None:
        for sink in self.sinks:
            self._tasks.append(tasks.start(self._deliver_loop(sink), name=f"notify-{sink.name}"))

    async def stop(self, grace: float = 5.0) -> None:
        """Deliver what is pending for up to ``grace`` seconds, then stop."""
        self._stopping = True
        for ev in self._kick.values():
            ev.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until every sink has delivered everything (tests)."""
        for sink in self.sinks:
            while await self.store.undelivered_events(sink.name, 1):
                self._kick[sink.name].set()
                await asyncio.sleep(0.01)

    async def _deliver_loop(self, sink: Sink) -> None:
        state = StoreSinkState(self.store, sink.name)
        kick = self._kick[sink.name]
        poll = max(0.5, self.lease / 6)
        while True:
            kick.clear()
            if self.shared and not await self.store.claim_sink(
                    sink.name, self.owner, self.clock.now(), self.lease):
                if self._stopping:
                    return
                if sink.name in self._urgent:     # that replica delivers them from the store
                    self._urgent[sink.name].clear()
                    self._approvals[sink.name].clear()
                await asyncio.sleep(poll)         # another replica delivers this sink
                continue
            if not await self._deliver_urgent(sink, state):
                return
            batch = await self.store.undelivered_events(sink.name, WINDOW)
            if not batch:
                if self._stopping:
                    return
                if self.shared:                   # events appended on other replicas
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(kick.wait(), poll)
                else:
                    await kick.wait()
                continue
            if not await self._deliver_window(sink, state, batch):
                return

    async def _deliver_window(self, sink: Sink, state: StoreSinkState,
                              batch: list[tuple[int, str, str]]) -> bool:
        """One pass: coalesce, order by lane, deliver. False when the loop must end."""
        events = []
        for event_id, _incident_id, payload in batch:
            event = NotificationEvent.model_validate_json(payload)
            event.id = event_id
            events.append(event)
        superseded, ordered = plan_window(events, getattr(sink, "covers", None))
        if superseded:
            await asyncio.gather(*(self.store.mark_delivered(sink.name, e.id)
                                   for e in superseded))
        for event in ordered:
            if not await self._deliver_one(sink, state, event):
                return False
            if not await self._deliver_urgent(sink, state):
                return False
        return True

    async def _deliver_urgent(self, sink: Sink, state: StoreSinkState) -> bool:
        """Approvals, acks and pages emitted here, ahead of the backlog, for sinks that can
        take an event early (``deliver_early``: idempotent, it does not count as delivered;
        the event is delivered again in its turn, which then changes nothing)."""
        early = getattr(sink, "deliver_early", None)
        approvals, urgent = self._approvals.get(sink.name), self._urgent.get(sink.name)
        while early is not None and (approvals or urgent):
            queue = approvals or urgent                  # approvals always go first
            assert queue is not None
            event = queue.popleft()
            try:
                await early(event, state)
            except Exception as exc:      # it is delivered in its turn anyway
                log.warning("early notification to %s failed (it goes out in its turn): %s",
                            sink.name, exc, extra={"incident": event.incident.id})
            if self._stopping:
                return False
        return True

    async def _deliver_one(self, sink: Sink, state: StoreSinkState,
                           event: NotificationEvent) -> bool:
        """Deliver and mark one event; on a temporary error wait (backoff) and leave it
        pending. False when stopping."""
        failures = 0
        while True:
            try:
                await sink.deliver(event, state)
            except TemporaryError as exc:
                failures += 1
                self.metrics.notifications_failed.labels(sink.name).inc()
                delay = exc.delay or min(self.retry_max,
                                         self.retry_base * 2 ** min(failures, 10))
                log.warning("notification to %s failed, retrying in %gs: %s",
                            sink.name, delay, exc,
                            extra={"incident": event.incident.id, "sink": sink.name})
                if self._stopping:
                    return False
                await self.clock.sleep(delay)
                continue
            except PermanentError as exc:
                self.metrics.notifications_failed.labels(sink.name).inc()
                log.error("notification to %s dropped: %s", sink.name, exc,
                          extra={"incident": event.incident.id, "sink": sink.name})
            except Exception as exc:  # a bug in a sink must not stop the others
                self.metrics.notifications_failed.labels(sink.name).inc()
                log.exception("notification sink %s crashed: %s", sink.name, exc,
                              extra={"incident": event.incident.id, "sink": sink.name})
            await self.store.mark_delivered(sink.name, event.id)
            return True


def plan_window(events: Sequence[NotificationEvent], covers: object
                ) -> tuple[list[NotificationEvent], list[NotificationEvent]]:
    """(superseded, the rest in delivery order) of a window of pending events, oldest first.

    Superseded: every message the event renders (``covers(event)``, a set of names, or
    None for "not an edit") is rendered again by a later event of the window. The rest
    go lane by lane (``URGENT``, then new threads and closes, then edits); an event takes
    the earlier events of its incident with it."""
    superseded: list[NotificationEvent] = []
    kept: list[NotificationEvent] = []
    seen: set[str] = set()
    for event in reversed(events):
        keys: Iterable[str] | None = covers(event) if callable(covers) else None
        names = set(keys) if keys else set()
        if names and names <= seen:
            superseded.append(event)
            continue
        seen |= names
        kept.append(event)
    kept.reverse()
    by_incident: dict[str, list[NotificationEvent]] = {}
    for event in kept:
        by_incident.setdefault(event.incident.id, []).append(event)
    ordered: list[NotificationEvent] = []
    done: set[int] = set()
    for lane in (0, 1, 2):
        for event in kept:
            if event.id in done or _LANE.get(event.kind, 0) != lane:
                continue
            for earlier in by_incident[event.incident.id]:
                if earlier.id > event.id:
                    break
                if earlier.id not in done:
                    done.add(earlier.id)
                    ordered.append(earlier)
    return superseded, ordered
