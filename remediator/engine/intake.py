"""Intake: a parsed webhook → alerts persisted and routed, in one group commit.

Each alert is matched against the playbooks (first match wins, ``continue``
lets later ones see it), its target rendered, and the whole batch handed to the
store, which deduplicates episodes by ``(fingerprint, startsAt)`` and folds
alerts into one incident per ``(playbook, target)``. Only after the store has
committed does the server reply 2xx; then the incidents that changed are woken.

``IntakeGate`` counts the webhooks being received: incident runs give way to them
(``give_way``) before each journal write and action call, so in an alert storm the
alerts are persisted and acknowledged first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from remediator.clock import Clock
from remediator.engine.routing import Router
from remediator.metrics import Metrics
from remediator.model.alerts import WebhookPayload
from remediator.ports.store import AlertRecord, IngestItem, IngestOutcome, Routing, Store

log = logging.getLogger("remediator.intake")

RESOLVING = "(resolving)"      # the slot lane of runs woken to close a resolved incident


#: real seconds without a webhook before a flooded intake counts as idle: under a flood
#: the count of webhooks being received drops to 0 for a moment between two group
#: commits (every reply goes out, the next requests are still being read), and runs that
#: woke in those gaps took the CPU the storm's intake needed. A webhook that comes
#: alone (after QUIET without one) does not make the runs wait for it to be quiet.
QUIET = 0.01


class IntakeGate:
    """How many webhooks are being received, and an event set while none is. A plain
    context manager, entered on every webhook (a generator-based one costs a generator
    and a wrapper object each time)."""

    __slots__ = ("count", "flood", "idle", "last", "priority")

    def __init__(self, priority: float) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.priority = priority        # real seconds a run waits for the intake, at most
        self.last = float("-inf")       # loop time the last webhook was received
        self.flood = False              # the intake got busy again within QUIET

    def __enter__(self) -> None:
        if not self.count:
            self.flood = asyncio.get_running_loop().time() < self.last + QUIET
        self.count += 1
        self.idle.clear()

    def __exit__(self, *exc: object) -> None:
        self.count -= 1
        if not self.count:
            self.last = asyncio.get_running_loop().time()
            self.idle.set()

    async def give_way(self) -> None:
        """While webhooks are being received, and in a flood until none has been for
        ``QUIET`` seconds, wait, at most ``priority`` real seconds; then a run goes on
        regardless.
        The quiet part is a plain sleep: a cancelled ``asyncio.timeout`` would leave its
        timer, and the run's context in it, in the loop until the deadline."""
        if self.priority <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.priority
        while True:
            now = loop.time()
            if now >= deadline:
                return
            if self.count:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(deadline - now):
                        await self.idle.wait()
                continue
            quiet = self.last + QUIET - now
            if quiet <= 0 or not self.flood:
                return
            await asyncio.sleep(min(quiet, deadline - now))


class Intake:
    def __init__(self, store: Store, router: Router, clock: Clock, metrics: Metrics, *,
                 gate: IntakeGate, wake: Callable[[str, str], None], dry_run: bool = False) -> None:
        self.store = store
        self.router = router
        self.clock = clock
        self.metrics = metrics
        self.gate = gate
        self.wake = wake
        self.dry_run = dry_run

    async def receive(self, payload: WebhookPayload) -> dict[str, int]:
        """Persist and route every alert of ``payload``; returns counts by outcome."""
        with self.gate:
            if payload.truncatedAlerts:
                log.warning("Alertmanager truncated %d alerts of group %s (max_alerts): they "
                            "are not seen here", payload.truncatedAlerts, payload.groupKey)
            # a re-delivery that changes nothing is answered before any routing
            known = self.store.redelivered([(a.fingerprint, a.startsAt, a.status)
                                            for a in payload.alerts])
            if known is not None:
                return self._count(known)
            items = self._route(payload)
            outcomes = await self.store.ingest(items, self.clock.now())
            self._opened(items, outcomes)
            return self._count(outcomes)

    def _route(self, payload: WebhookPayload) -> list[IngestItem]:
        """Each alert as the store takes it, with its routes if it fires."""
        items: list[IngestItem] = []
        router, dry_run = self.router, self.dry_run
        for alert in payload.alerts:
            routes: tuple[Routing, ...] = ()
            if alert.is_firing:
                routes = router.routes(alert, dry_run=dry_run)
            items.append(IngestItem(
                AlertRecord(fingerprint=alert.fingerprint, starts_at=alert.startsAt,
                            ends_at=alert.endsAt, status=alert.status,
                            labels=alert.labels, annotations=alert.annotations,
                            generator_url=alert.generatorURL),
                routes))
        return items

    def _opened(self, items: list[IngestItem], outcomes: list[IngestOutcome]) -> None:
        """Count the incidents opened and wake the ones with something new to do."""
        for item, outcome in zip(items, outcomes, strict=True):
            if outcome.created:
                # incident_ids line up with the item's routes when the alert is new; a new
                # incident's run waits for a slot in its playbook's lane
                for route_, incident_id in zip(item.routes, outcome.incident_ids, strict=False):
                    if incident_id in outcome.created:
                        self.metrics.incidents_opened.labels(route_.playbook).inc()
                        self.wake(incident_id, route_.playbook)
            elif outcome.outcome == "resolved":
                # An incident whose alert resolved has something new to do. Another firing
                # alert attaching to an open incident changes nothing for its run, and
                # waking it would cut its waits short (an extra poll per alert in a storm).
                for incident_id in outcome.incident_ids:
                    self.wake(incident_id, RESOLVING)

    def _count(self, outcomes: list[IngestOutcome]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.outcome] = counts.get(o.outcome, 0) + 1
        metrics = self.metrics
        for outcome_name, n in counts.items():      # one counter increment per outcome
            metrics.count_alerts(outcome_name, n)
        return counts
