"""The SQLite store's machinery: connections, group commit, WAL checkpoints, opening.

Why not one statement per thread hop (as aiosqlite does): group commit. Every
write is a function run whole, inside one transaction, on a dedicated writer
thread; the writer drains its queue and commits everything waiting in a single
transaction (one fsync), then answers each caller. Intake thus persists before
it replies without serializing requests. Reads run on a second connection and
thread, concurrently with writes (WAL).

``synchronous=FULL`` by default: an acknowledged alert survives a power loss,
not only a crash. No queries here: the role methods are in ``sqlite_queries.py``,
``sqlite_guards.py`` and ``sqlite.py`` (intake); the schema in ``migrations/``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from remediator.store.gather import Gathered
from remediator.store.migrations import migrate_sqlite

T = TypeVar("T")


def isolated(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]
              ) -> tuple[bool, Any]:
    """``fn`` inside its own savepoint: its result, or its exception with its writes undone."""
    conn.execute("SAVEPOINT op")
    try:
        result = fn(conn)
    except Exception as exc:
        if not conn.in_transaction:     # SQLite rolled the whole transaction back itself
            raise                       # (a full disk): the real error, not a ROLLBACK's
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        return False, exc
    conn.execute("RELEASE op")
    return True, result


def settle(futures: list[asyncio.Future[Any]], results: list[tuple[bool, Any]]) -> None:
    """Each caller's future gets its ``(ok, result or exception)`` (one that gave up
    waiting, cancelled, is left alone)."""
    for fut, (ok, value) in zip(futures, results, strict=True):
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


#: values bound in one ``IN (…)`` list (a query over more runs once per chunk)
IN_CHUNK = 500


def chunks(values: Sequence[T]) -> list[list[T]]:
    """``values`` in lists of at most ``IN_CHUNK``."""
    values = list(values)
    return [values[i:i + IN_CHUNK] for i in range(0, len(values), IN_CHUNK)]


def marks(values: Sequence[object]) -> str:
    """The placeholders of an ``IN (…)`` list of ``values``."""
    return ",".join("?" * len(values))


def dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


CHECKPOINT_INTERVAL = 0.25     # seconds between background WAL checkpoints (if written)
# The WAL starts over only when a write transaction begins with every page of it copied
# into the database. Under a sustained storm the background checkpoint never finds it
# so (commits keep coming while it copies) and the file grew without bound, ~28 MB/s at
# full intake rate. Past this many pages (16 MB of 4 KB pages) the commit that crosses
# it copies what the background has not yet (at most one interval's worth), and the next
# transaction restarts the WAL; the file is then cut back to WAL_SIZE_LIMIT.
WAL_RESTART_PAGES = 4000
#: The reader's page cache. In WAL mode a connection drops its whole cache when it
#: starts a read after another connection committed, so while the daemon writes the
#: reader's cache holds one read's pages at most; SQLite's default (2,000 KiB) only
#: kept 2 MB of freed pages in the reader thread's malloc arena. 512 KiB holds the pages
#: of the largest read (a page of 100 incidents; bench/incident_pages.py: p99 unchanged
#: with 10,000 incidents and no writes, where the cache is kept between reads).
READER_CACHE_KIB = 512
WAL_SIZE_LIMIT = 64 * 1024 * 1024
log = logging.getLogger("remediator.store")


def new_incident_id() -> str:
    return "inc-" + uuid.uuid4().hex[:16]


class SqliteBase:
    """The connections and the group-committed writer the role methods run on."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL",
                 ids: Callable[[], str] = new_incident_id) -> None:
        self.path = str(path)
        self.synchronous = synchronous
        self._ids = ids
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-w")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-r")
        # WAL checkpoints on their own connection and thread, off the commit path
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-c")
        self._checkpoints: asyncio.Task[None] | None = None
        self._written = False               # commits since the last checkpoint
        self._local = threading.local()
        self._queue: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._polls: Gathered[Any] | None = None     # made by journal_poll
        self._closed = False

    # --- connections -------------------------------------------------------------

    def _connect(self, cache_kib: int | None = None) -> sqlite3.Connection:
        """This thread's connection (made on first use, with a page cache of ``cache_kib``
        if given, else SQLite's default of 2,000 KiB)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True,
                                   timeout=30)
            conn.row_factory = sqlite3.Row
            # before WAL: on a new file it must precede the first write to take effect
            # (files made before it keep NONE and reuse freed pages; see ``open``)
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            # SQLite's automatic checkpoint runs inside the COMMIT that crosses its page
            # count: that commit (and every caller in its batch) waits for the copy into
            # the database file and its fsync. Checkpoints run in the background instead;
            # the automatic one is only the bound on the WAL's size (WAL_RESTART_PAGES).
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_RESTART_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            if cache_kib is not None:
                conn.execute(f"PRAGMA cache_size=-{cache_kib}")
            self._local.conn = conn
        return conn

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, lambda: migrate_sqlite(self._connect()))
        mode = await loop.run_in_executor(
            self._writer, lambda: self._connect().execute("PRAGMA auto_vacuum").fetchone()[0])
        if mode != 2:
            log.info("store: %s was made without auto_vacuum: pages freed by retention are "
                     "reused but the file does not shrink (stop the daemon and run "
                     "`sqlite3 FILE 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM;'` once)",
                     self.path)
        self._checkpoints = loop.create_task(self._checkpoint_loop())

    async def _checkpoint_loop(self) -> None:
        """Every CHECKPOINT_INTERVAL with commits since the last one, a PASSIVE checkpoint
        (copies what no reader still needs, never waits for the writer) on a third
        connection. The last connection to close checkpoints what is left."""
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            if not self._written:
                continue
            self._written = False
            try:
                await loop.run_in_executor(
                    self._checkpointer,
                    lambda: self._connect().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())
            except sqlite3.Error as exc:       # busy or I/O: the next round tries again
                log.warning("WAL checkpoint failed: %s", exc)

    async def close(self) -> None:
        if self._polls is not None:
            await self._polls.drain()
        self._closed = True
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            await asyncio.gather(self._checkpoints, return_exceptions=True)
        if self._flusher is not None:
            await asyncio.shield(self._flusher)

        def shut() -> None:
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()
                self._local.conn = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._checkpointer, shut)
        await loop.run_in_executor(self._writer, shut)
        await loop.run_in_executor(self._reader, shut)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        self._checkpointer.shutdown(wait=True)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader,
                                          lambda: fn(self._connect(READER_CACHE_KIB)))

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run ``fn`` inside the next group-committed transaction; the future of its result
        (a plain function: awaiting the future directly saves a coroutine per write)."""
        if self._closed:
            raise RuntimeError("store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.append((fn, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_loop())
        return fut

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._coalesce(self._queue), []
            try:
                results = await loop.run_in_executor(self._writer, self._run_batch, batch)
            except BaseException as exc:  # the commit itself failed: every caller hears it
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception)
                                          else RuntimeError(str(exc)))
                continue
            self._written = True
            settle([fut for _, fut in batch], results)

    def _coalesce(self, batch: list[tuple[Callable[[sqlite3.Connection], Any],
                                          asyncio.Future[Any]]]
                  ) -> list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]]:
        """The writes of one group commit as the writer runs them (in the loop's thread,
        before the batch goes to the writer): by default unchanged; a store may merge
        neighbours that are cheaper run as one (see ``SqliteStore``)."""
        return batch

    def _run_batch(self, batch: list[tuple[Callable[[sqlite3.Connection], Any],
                                           asyncio.Future[Any]]]) -> list[tuple[bool, Any]]:
        """Every function of ``batch`` in one transaction; each one's result or exception.

        Functions only read and write the database, so the batch first runs without
        savepoints (an open savepoint makes SQLite journal every page it changes); if one
        raises, the transaction is rolled back and the batch re-run with a savepoint
        around each function, so that one failure undoes only its own writes.
        """
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            try:
                results: list[tuple[bool, Any]] = [(True, fn(conn)) for fn, _ in batch]
            except Exception:
                if conn.in_transaction:     # SQLite may have rolled back itself (disk full)
                    conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                results = [isolated(conn, fn) for fn, _ in batch]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

