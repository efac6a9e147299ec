"""Connection limits below aiohttp: a cap on open connections and a deadline for the
first request head, so that slow or idle sockets (slow-loris) cannot hold the daemon.

aiohttp has no header read timeout of its own: its ``keepalive_timeout`` closes a
connection that stays idle *after a response* (and, from aiohttp 3.14 only, one that
never sends a request), and ``client_max_size`` bounds a body's size, not its time.
So ``GuardedSite`` (an aiohttp ``BaseSite`` for ``AppRunner``) listens with a protocol
factory that wraps each aiohttp ``RequestHandler`` in a ``GuardedProtocol``:

* beyond ``max_connections`` open connections, a new one gets a complete
  ``503 Service Unavailable`` (JSON body, ``Connection: close``) and is closed without
  reaching aiohttp (Alertmanager retries a 503);
* a connection must deliver a complete request head (``\\r\\n\\r\\n``) within
  ``header_timeout`` of opening, else it is closed. Later heads on a kept-alive
  connection are bounded by aiohttp's ``keepalive_timeout``, which the server sets to
  the same value (``server/http.py``).

The body's deadline is the route's (``Api.read_body``): only the route knows when it
needs the body. Everything else is forwarded to aiohttp unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from aiohttp import web

log = logging.getLogger("remediator.server")

_HEAD_END = b"\r\n\r\n"


@dataclass
class Limits:
    header_timeout: float = 10.0
    max_connections: int = 512


def busy_response(limit: int) -> bytes:
    body = json.dumps({"error": f"too many connections (limit {limit}); retry later"}).encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nRetry-After: 1\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


class ConnectionGuard:
    """The shared state of one listener: open connections and what was refused."""

    def __init__(self, make_handler: Callable[[], asyncio.Protocol], limits: Limits) -> None:
        self.make_handler = make_handler
        self.limits = limits
        self.open = 0
        self.refused = 0            # connections beyond the cap
        self.head_timeouts = 0      # connections closed for a late request head

    def __call__(self) -> asyncio.Protocol:
        return GuardedProtocol(self)


class GuardedProtocol(asyncio.Protocol):
    """Forwards to aiohttp's handler once the connection is admitted; owns the head timer."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.tail = b""             # the last bytes seen, for a head end split over reads
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        guard = self.guard
        if guard.open >= guard.limits.max_connections:
            guard.refused += 1
            log.warning("connection refused: %d open (server.max_connections)", guard.open)
            self.transport.write(busy_response(guard.limits.max_connections))
            self.transport.close()
            return
        guard.open += 1
        self.counted = True
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(guard.limits.header_timeout, self._head_too_late)
        self.inner = guard.make_handler()
        self.inner.connection_made(transport)

    def _head_too_late(self) -> None:
        self.timer = None
        self.guard.head_timeouts += 1
        log.debug("closing a connection: no complete request head within %gs",
                  self.guard.limits.header_timeout)
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        if self.timer is not None:
            seen = self.tail + data
            if _HEAD_END in seen:
                self.timer.cancel()
                self.timer = None
                self.tail = b""
            else:
                self.tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.counted:
            self.guard.open -= 1
            self.counted = False
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class GuardedSite(web.BaseSite):
    """``web.TCPSite`` with the guard in front of aiohttp's protocol."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: Limits, *,
                 backlog: int = 128, reuse_address: bool = True) -> None:
        super().__init__(runner, backlog=backlog)
        self.host, self.port, self.limits = host, port, limits
        self.reuse_address = reuse_address
        self.guard: ConnectionGuard | None = None

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self.guard = ConnectionGuard(cast(Callable[[], asyncio.Protocol], server), self.limits)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard, self.host, self.port, backlog=self._backlog,
            reuse_address=self.reuse_address)
