"""When the store forgets: one retention pass every ``store.prune_interval``.

``Retention.run`` is a loop for the engine's ``Supervisor`` (started by the
composition root): it sleeps on the engine's clock, asks the store to ``prune``
what closed more than ``store.retention`` ago (and the notifications every sink
has had), then to ``reclaim`` the space, and counts what went in
``remediator_store_pruned_rows_total{table}``. A pass that fails is logged and
tried again at the next interval; on PostgreSQL a replica that finds another one
pruning skips its turn. Not here: what a pass deletes (the store's ``prune``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta

from remediator.clock import Clock
from remediator.metrics import Metrics
from remediator.ports.store import Store

log = logging.getLogger("remediator.store")


class Retention:
    def __init__(self, store: Store, clock: Clock, metrics: Metrics, *,
                 retention: float | None, interval: float, batch: int = 500,
                 sinks: Sequence[str] = ()) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.retention = retention
        self.interval = interval
        self.batch = batch
        self.sinks = tuple(sinks)

    async def run(self) -> None:
        """A pass every ``interval`` seconds of the clock, until cancelled."""
        while True:
            await self.clock.sleep(self.interval)
            try:
                await self.prune_once()
            except Exception:
                log.exception("store retention pass failed; trying again in %gs",
                              self.interval)

    async def prune_once(self) -> dict[str, int] | None:
        """One pass now: the rows deleted by table, or None (keeping everything, or
        another replica is pruning)."""
        if not self.retention:
            return None
        started = time.perf_counter()
        cutoff = self.clock.now() - timedelta(seconds=self.retention)
        counts = await self.store.prune(cutoff, sinks=self.sinks, batch=self.batch)
        if counts is None:
            log.debug("store retention: another replica is pruning")
            return None
        for table, n in counts.items():
            if n:
                self.metrics.store_pruned_rows.labels(table).inc(n)
        freed = await self.store.reclaim()
        if any(counts.values()) or freed:
            log.info("store retention: deleted %d rows, gave back %d bytes in %.2fs",
                     sum(counts.values()), freed, time.perf_counter() - started,
                     extra={"pruned": {t: n for t, n in counts.items() if n},
                            "before": cutoff.isoformat()})
        return counts
