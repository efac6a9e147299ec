"""The embedded store: one SQLite file in WAL mode (``SqliteStore``), and its intake.

This module holds the class every caller uses and the intake entry: the
re-delivery cache and the run of the shared intake plan (``intake.py``) inside the
group commit. Not here: connections, group commit and checkpoints
(``sqlite_base.py``), the other roles (``sqlite_queries.py``, ``sqlite_guards.py``),
the intake SQL (``sqlite_intake.py``), retention (``sqlite_retention.py``), the schema
(``migrations/``).
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from remediator.model.records import IngestItem, IngestOutcome
from remediator.store.intake import DUPLICATE, STALE, plan, run_sync
from remediator.store.sqlite_base import new_incident_id
from remediator.store.sqlite_guards import SqliteGuards
from remediator.store.sqlite_intake import SqliteOps
from remediator.store.sqlite_queries import SqliteIncidents
from remediator.store.sqlite_retention import SqliteRetention
from remediator.store.sqlite_timers import SqliteTimers

__all__ = ["EPISODE_CACHE", "SqliteStore", "new_incident_id"]

EPISODE_CACHE = 20_000         # committed episodes remembered for re-deliveries (~6 MB)
_OPS = SqliteOps()


class SqliteStore(SqliteIncidents, SqliteGuards, SqliteRetention, SqliteTimers):
    single_process = True

    def __init__(self, path: str | Path, *, synchronous: str = "FULL",
                 ids: Callable[[], str] = new_incident_id) -> None:
        super().__init__(path, synchronous=synchronous, ids=ids)
        # (fingerprint, starts_at) -> status of the episodes this store committed last
        # (keyed by the datetime itself: formatting it costs more than the look-up)
        self._episodes: OrderedDict[tuple[str, datetime], str] = OrderedDict()

    def watch(self, callback: Callable[[str], None]) -> None:
        """Nothing to watch: this process is the file's only user, and its engine wakes
        its own waiters when its intake resolves an alert or an approval is decided."""

    # --- intake ------------------------------------------------------------------

    async def ingest(self, items: list[IngestItem], now: datetime) -> list[IngestOutcome]:
        known = self.redelivered([(item.alert.fingerprint, item.alert.starts_at,
                                   item.alert.status) for item in items])
        if known is not None:
            return known
        ids = self._ids

        def run(c: sqlite3.Connection) -> list[IngestOutcome]:
            return run_sync(_OPS, c, plan([(item, now) for item in items], ids))
        outcomes = await self._write(run)
        self._remember(items, outcomes)
        return outcomes

    def redelivered(self, alerts: Sequence[tuple[str, datetime, str]]
                    ) -> list[IngestOutcome] | None:
        """The outcomes of alerts that are all committed episodes in the same or a later
        state (Alertmanager re-sends every firing alert of a group at each
        group_interval, and HA pairs send everything twice): duplicate or stale, nothing
        to write, so no transaction and no wait for a commit. None if any alert may
        change something. Exact: this process is the file's only writer, and an
        episode's status changes only in ``ingest``."""
        out: list[IngestOutcome] = []
        for fingerprint, starts_at, status in alerts:
            known = self._episodes.get((fingerprint, starts_at))
            if known is None or (status == "resolved" and known == "firing"):
                return None
            out.append(STALE if status == "firing" and known == "resolved" else DUPLICATE)
        return out

    def _remember(self, items: list[IngestItem], outcomes: list[IngestOutcome]) -> None:
        """Each episode's status as committed by this ``ingest`` (the oldest entries go
        first beyond EPISODE_CACHE)."""
        cache = self._episodes
        for item, outcome in zip(items, outcomes, strict=True):
            a = item.alert
            cache[(a.fingerprint, a.starts_at)] = (
                "resolved" if a.status == "resolved" or outcome.outcome == "stale"
                else "firing")
        while len(cache) > EPISODE_CACHE:
            cache.popitem(last=False)          # O(1); next(iter(dict)) walks the holes
