"""The shared store: PostgreSQL through asyncpg, for several replicas on one database
(``PostgresStore``), and its intake.

Same contract as the SQLite store (``base.Store``), enforced by the database so that
it holds across processes: intake is idempotent through unique constraints
(``alerts(fingerprint, starts_at)`` and a partial unique index on ``incidents(key)``
over the open states); races between replicas are settled by ``INSERT … ON
CONFLICT`` plus a re-read; a deadlock or serialization failure retries the whole
transaction.

This module holds the class every caller uses and the intake's group commit:
concurrent ``ingest`` calls of one process run in one transaction (one WAL flush) as
one intake plan, a constant number of statements per batch. Should someone's data
break it, the batch runs again call by call, each call in its own savepoint. Not
here: the pool, migrations and wake-ups (``pg_base.py``, ``pg_listen.py``), the other
roles (``pg_queries.py``, ``pg_guards.py``, ``pg_retention.py``), the intake SQL (``pg_intake.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from remediator.model.records import IngestItem, IngestOutcome
from remediator.store.pg_base import RETRYABLE
from remediator.store.pg_guards import PgGuards
from remediator.store.pg_intake import Batch, PgIntake
from remediator.store.pg_queries import PgIncidents
from remediator.store.pg_retention import PgRetention
from remediator.store.pg_timers import PgTimers
from remediator.store.sqlite_base import new_incident_id

__all__ = ["PostgresStore", "is_postgres_url"]

log = logging.getLogger("remediator.store")


def is_postgres_url(path: str) -> bool:
    """True when a ``store.path`` names a PostgreSQL database rather than a SQLite file."""
    return path.startswith(("postgresql://", "postgres://"))


class PostgresStore(PgIncidents, PgGuards, PgRetention, PgTimers):
    single_process = False

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 10,
                 ids: Callable[[], str] = new_incident_id,
                 connect_timeout: float = 30.0) -> None:
        super().__init__(url, min_size=min_size, max_size=max_size, ids=ids,
                         connect_timeout=connect_timeout)
        self._queue: Batch = []
        self._flusher: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._polls is not None:
            await self._polls.drain()
        self._closed = True
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        await super().close()

    def redelivered(self, alerts: Sequence[tuple[str, datetime, str]]) -> None:
        """Never known here: another replica may have changed any episode."""
        return None

    async def ingest(self, items: list[IngestItem], now: datetime) -> list[IngestOutcome]:
        if self._closed:
            raise RuntimeError("store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[IngestOutcome]] = loop.create_future()
        self._queue.append((items, now, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_loop())
        return await fut

    async def _flush_loop(self) -> None:
        intake = PgIntake(self._ids, self.channel)
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                try:
                    results = await self._tx(functools.partial(intake.bulk, batch=batch))
                except RETRYABLE:
                    raise
                except Exception as exc:
                    # Someone's data (or a bug) broke the set-based path: nothing of it
                    # persisted. Again call by call, each in a savepoint, so that only
                    # the caller at fault hears of it.
                    log.info("bulk intake failed (%s: %s); retrying call by call",
                             type(exc).__name__, exc)
                    results = await self._tx(
                        functools.partial(intake.call_by_call, batch=batch))
            except BaseException as exc:   # the transaction failed: every caller hears it
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception)
                                          else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, _, fut), result in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
