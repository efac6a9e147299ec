"""Intake: a parsed webhook → alerts persisted and routed, in one group commit.

Each alert is matched against the playbooks (first match wins, ``continue``
lets later ones see it), its target rendered, and the whole batch handed to the
store, which deduplicates episodes by ``(fingerprint, startsAt)`` and folds
alerts into one incident per ``(playbook, target)``. Only after the store has
committed does the server reply 2xx; then the engine is woken for the
incidents that changed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from remediator.model.alerts import WebhookPayload
from remediator.store.base import AlertRecord, IngestItem, IngestOutcome, Routing

if TYPE_CHECKING:
    from remediator.engine.core import Engine

log = logging.getLogger("remediator.intake")


class Intake:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def receive(self, payload: WebhookPayload) -> dict[str, int]:
        """Persist and route every alert of ``payload``; returns counts by outcome."""
        engine = self.engine
        with engine.receiving():
            if payload.truncatedAlerts:
                log.warning("Alertmanager truncated %d alerts of group %s (max_alerts): they "
                            "are not seen here", payload.truncatedAlerts, payload.groupKey)
            # a re-delivery that changes nothing is answered before any routing
            known = engine.store.redelivered([(a.fingerprint, a.startsAt, a.status)
                                              for a in payload.alerts])
            if known is not None:
                return self._count(known)
            items = self._route(payload)
            outcomes = await engine.store.ingest(items, engine.clock.now())
            self._opened(items, outcomes)
            return self._count(outcomes)

    def _route(self, payload: WebhookPayload) -> list[IngestItem]:
        """Each alert as the store takes it, with its routes if it fires."""
        items: list[IngestItem] = []
        router, dry_run = self.engine.router, self.engine.config.dry_run
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
        engine = self.engine
        for item, outcome in zip(items, outcomes, strict=True):
            if outcome.created:
                # incident_ids line up with the item's routes when the alert is new
                for route_, incident_id in zip(item.routes, outcome.incident_ids, strict=False):
                    if incident_id in outcome.created:
                        engine.metrics.incidents_opened.labels(route_.playbook).inc()
            # Wake what has something new to do: a new incident, or one whose alert resolved.
            # Another firing alert attaching to an open incident changes nothing for its
            # run, and waking it would cut its waits short (an extra verification poll per
            # alert in a storm).
            wake = outcome.incident_ids if outcome.outcome == "resolved" else outcome.created
            for incident_id in wake:
                engine.wake(incident_id)

    def _count(self, outcomes: list[IngestOutcome]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.outcome] = counts.get(o.outcome, 0) + 1
        metrics = self.engine.metrics
        for outcome_name, n in counts.items():      # one counter increment per outcome
            metrics.count_alerts(outcome_name, n)
        return counts
