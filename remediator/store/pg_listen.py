"""Cross-replica wake-ups: one dedicated asyncpg connection that ``LISTEN``s on the
store's channel and hands each notification's payload (an incident id) to the
callbacks registered with ``PostgresStore.watch``.

The connection lives from ``open`` (with at least one callback) to ``close``. If it
drops (server restart, network, ``pg_terminate_backend``) the loop logs it and
connects again with a growing back-off; a ``SELECT 1`` every ``KEEPALIVE`` seconds
notices a connection that died silently. Notifications sent while it is down are
lost: wake-ups are a latency shortcut, not a delivery guarantee. Not here: sending
(``pg_notify`` in intake and ``decide_approval``, inside their transactions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]

log = logging.getLogger("remediator.store")

KEEPALIVE = 5.0        # seconds between liveness checks of the listening connection
BACKOFF = (0.2, 10.0)  # first and longest wait before connecting again


class Listener:
    def __init__(self, url: str) -> None:
        self.url = url
        self.ready = asyncio.Event()        # set while LISTEN is in effect
        self._callbacks: list[Callable[[str], None]] = []
        self._channel: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def add(self, callback: Callable[[str], None]) -> None:
        self._callbacks.append(callback)
        self._start()

    def open(self, channel: str) -> None:
        self._channel = channel
        self._start()

    def _start(self) -> None:
        if (self._task is None and self._channel is not None and self._callbacks
                and not self._closed):
            self._task = asyncio.get_running_loop().create_task(self._run(self._channel))

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.ready.clear()

    def _deliver(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        for callback in list(self._callbacks):
            try:
                callback(payload)
            except Exception:
                log.exception("store: a wake-up callback failed")

    async def _run(self, channel: str) -> None:
        delay = BACKOFF[0]
        while not self._closed:
            conn: Any = None
            try:
                conn = await asyncpg.connect(
                    self.url, server_settings={"application_name": "remediator-listen"})
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(channel, self._deliver)
                self.ready.set()
                delay = BACKOFF[0]
                await self._hold(conn, lost)
                log.warning("store: the wake-up connection was closed; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("store: listening for wake-ups failed (%s: %s); again in %.1fs",
                            type(exc).__name__, exc, delay)
            finally:
                self.ready.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
                    if not conn.is_closed():
                        conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF[1])

    @staticmethod
    async def _hold(conn: Any, lost: asyncio.Event) -> None:
        """Until the connection is lost (or found dead by a liveness check)."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), KEEPALIVE)
            if not lost.is_set():
                await conn.fetchval("SELECT 1", timeout=KEEPALIVE)
