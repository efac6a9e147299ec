"""The notification outbox: the engine appends events to the store, a dispatcher
delivers them to every sink in order, in the background, with retries.

A sink that is down (Slack, Jira) delays only its own deliveries; remediation
never waits for a human channel. Delivery is at-least-once (an event carries
its id so sinks can drop redeliveries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from remediator.clock import Clock
from remediator.engine.supervisor import Supervisor
from remediator.errors import PermanentError, TemporaryError
from remediator.metrics import Metrics
from remediator.model.incident import ALERTS_IN_VIEW, StepRecord
from remediator.ports.sinks import EventKind, NotificationEvent, Sink
from remediator.ports.store import Store

log = logging.getLogger("remediator.notify")


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
                 owner: str = "", shared: bool = False, lease: float = 30.0) -> None:
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
        self._kick = {s.name: asyncio.Event() for s in self.sinks}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def emit(self, kind: EventKind, incident_id: str, *, step: StepRecord | None = None,
                   message: str = "") -> None:
        if not self.sinks:
            return
        view = await self.store.get_incident(incident_id, alert_limit=ALERTS_IN_VIEW)
        if view is None:
            return
        event = NotificationEvent(kind=kind, at=self.clock.now(), incident=view, step=step,
                                  message=message)
        await self.store.append_event(incident_id, event.model_dump_json(), self.clock.now())
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
        failures = 0
        poll = max(0.5, self.lease / 6)
        while True:
            kick.clear()
            if self.shared and not await self.store.claim_sink(
                    sink.name, self.owner, self.clock.now(), self.lease):
                if self._stopping:
                    return
                await asyncio.sleep(poll)         # another replica delivers this sink
                continue
            batch = await self.store.undelivered_events(sink.name, 100)
            if not batch:
                if self._stopping:
                    return
                if self.shared:                   # events appended on other replicas
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(kick.wait(), poll)
                else:
                    await kick.wait()
                continue
            for event_id, _incident_id, payload in batch:
                event = NotificationEvent.model_validate_json(payload)
                event.id = event_id
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
                        return
                    await self.clock.sleep(delay)
                    break
                except PermanentError as exc:
                    self.metrics.notifications_failed.labels(sink.name).inc()
                    log.error("notification to %s dropped: %s", sink.name, exc,
                              extra={"incident": event.incident.id, "sink": sink.name})
                except Exception as exc:  # a bug in a sink must not stop the others
                    self.metrics.notifications_failed.labels(sink.name).inc()
                    log.exception("notification sink %s crashed: %s", sink.name, exc,
                                  extra={"incident": event.incident.id, "sink": sink.name})
                failures = 0
                await self.store.mark_delivered(sink.name, event_id)
