"""``GET /api/v1/events``: the journal as Server-Sent Events.

Every timeline entry of every incident is one event; its SSE ``id`` is the entry's
id in the store's timeline table, which only grows, so a client that reconnects with
``Last-Event-ID`` (the browser's EventSource does) gets exactly what it missed, also
across a restart of the daemon or from another replica sharing a PostgreSQL store.
Entries of incidents that the retention pass deleted are gone: a client that was
away longer than ``store.retention`` misses those. Without ``Last-Event-ID`` the
stream starts with what happens next.

Event names: ``opened``, ``state``, ``step`` (started, done, failed), ``verify`` (a
verification poll or its verdict), ``approval``, ``escalated``, ``closed``,
``manual`` (a retry from the console or the API), ``acknowledged`` (when that exists),
``guard``, ``retry``, ``dependency``. The data is JSON: ``{"id", "incident", "kind",
"at", "message", "data"}``.

One poller per process reads new entries from the store (every ``POLL_SECONDS``,
only while a client is connected), encodes each once as an SSE frame, appends the
frames to one shared list and wakes the clients once: a hundred clients cost one query
and one encoding per entry, and one wake-up and one write each per poll, not one per
entry. A client more than ``QUEUE_LIMIT`` events behind gets a ``reset`` event and is
disconnected (it reconnects with its ``Last-Event-ID`` and catches up from the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import web
from aiohttp_sse import sse_response

from remediator.model.incident import TimelineEntry
from remediator.ports.store import Store
from remediator.server.auth import Right
from remediator.server.http import Api, error

log = logging.getLogger("remediator.console")
POLL_SECONDS = 0.5
BATCH = 500
QUEUE_LIMIT = 10_000
IDLE_CHECK = 15.0      # seconds without an event after which a client's connection is checked
SEND_TIMEOUT = 10.0    # seconds a client has to take a write before it is dropped
WRITE_BATCH = 500      # frames at most in one write
Row = tuple[int, str, TimelineEntry]
Frame = tuple[int, bytes]       # (event id, the encoded SSE event)


def event_name(entry: TimelineEntry) -> str:
    kind = entry.kind
    if kind == "state":
        state = entry.data.get("state", "")
        if state == "escalated":
            return "escalated"
        if state in ("recovered", "resolved"):
            return "closed"
        return "state"
    if kind == "manual":
        return "closed" if entry.data.get("act") == "close" else "manual"
    if kind in ("ack", "acknowledged"):
        return "acknowledged"
    return kind


def payload(row: Row) -> str:
    event_id, incident_id, entry = row
    return json.dumps({"id": event_id, "incident": incident_id, "kind": event_name(entry),
                       "at": entry.at.isoformat(), "message": entry.message,
                       "data": entry.data}, default=str)


def frame(row: Row) -> Frame:
    """One SSE event as aiohttp-sse writes it (``id``, ``event``, one ``data`` line: the
    JSON has no line breaks)."""
    return row[0], (f"id: {row[0]}\r\nevent: {event_name(row[2])}\r\n"
                    f"data: {payload(row)}\r\n\r\n").encode()


class Cursor:
    """One client's place in the hub's frames (``seq``: the next frame it reads)."""

    def __init__(self, seq: int) -> None:
        self.seq = seq


class EventHub:
    """The frames of recent entries, oldest first, shared by every client: a poll
    appends to them and wakes the clients once; each client reads from its cursor.
    At most ``QUEUE_LIMIT`` frames are kept: a client whose cursor fell behind them
    (or is left when the hub closes) is told to ``reset``."""

    def __init__(self, store: Store, poll: float = POLL_SECONDS) -> None:
        self.store = store
        self.poll = poll
        self.position: int | None = None
        self.frames: list[Frame] = []
        self.base = 0                       # sequence number of frames[0]
        self.cursors: set[Cursor] = set()
        self.wakeup = asyncio.Event()       # replaced after each set: clients wait on it
        self.closed = False
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self) -> tuple[Cursor, int]:
        """A cursor on every entry after the returned position."""
        if self._task is None or self._task.done():
            position = await self.store.last_timeline_id()    # nobody was following
            if self._task is None or self._task.done():
                self.position = position
                self.base += len(self.frames)
                self.frames = []
                self._task = asyncio.create_task(self._run(), name="console-events")
        cursor = Cursor(self.base + len(self.frames))
        self.cursors.add(cursor)     # before the poller's first turn (no await since)
        return cursor, self.position or 0

    def unsubscribe(self, cursor: Cursor) -> None:
        self.cursors.discard(cursor)

    def take(self, cursor: Cursor, limit: int) -> list[Frame] | None:
        """Up to ``limit`` frames after the cursor (moving it on); None: reset."""
        if self.closed or cursor.seq < self.base:
            return None
        start = cursor.seq - self.base
        taken = self.frames[start:start + limit]
        cursor.seq += len(taken)
        return taken

    def pending(self, cursor: Cursor) -> bool:
        return self.closed or cursor.seq < self.base + len(self.frames)

    def _publish(self, frames: list[Frame]) -> None:
        self.frames += frames
        excess = len(self.frames) - QUEUE_LIMIT
        if excess > 0:
            del self.frames[:excess]
            self.base += excess
        self.wakeup.set()
        self.wakeup = asyncio.Event()

    async def _run(self) -> None:
        while self.cursors:
            try:
                rows = await self.store.timeline_after(self.position or 0, BATCH)
            except Exception:
                log.exception("reading the journal for the event stream failed")
                rows = []
            if rows:
                self.position = rows[-1][0]
                self._publish([frame(row) for row in rows])
            if len(rows) < BATCH:
                await asyncio.sleep(self.poll)

    async def close(self) -> None:
        self.closed = True
        self.wakeup.set()
        self.cursors.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def stream(request: web.Request, api: Api, hub: EventHub) -> web.StreamResponse:
    who = api.caller(request, Right.READ)
    if isinstance(who, web.Response):
        return who
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    try:
        last = int(raw) if raw else None
    except ValueError:
        return error(400, f"Last-Event-ID must be an event id this stream sent, "
                          f"not {str(raw)[:40]!r}")
    cursor, position = await hub.subscribe()
    try:
        async with sse_response(request) as sse:
            sent = last if last is not None else position
            while last is not None and sent < position:      # catch up from the store
                rows = await api.engine.store.timeline_after(sent, BATCH)
                for row in rows:
                    if row[0] > position:
                        break
                    await sse.send(payload(row), id=str(row[0]), event=event_name(row[2]))
                    sent = row[0]
                if len(rows) < BATCH:
                    break
            await _follow(sse, hub, cursor, sent)
    except ConnectionError:                               # the client went away
        log.debug("event stream client %s left", request.remote)
    finally:
        hub.unsubscribe(cursor)
    return sse


async def _follow(sse: Any, hub: EventHub, cursor: Cursor, sent: int) -> None:
    while True:
        frames = hub.take(cursor, WRITE_BATCH)
        if frames is None:
            await sse.send(json.dumps({"after": sent}), event="reset")
            return
        batch = [data for event_id, data in frames if event_id > sent]
        if batch:
            async with asyncio.timeout(SEND_TIMEOUT):
                await sse.write(b"".join(batch))
            sent = frames[-1][0]
        if hub.pending(cursor):
            continue
        wakeup = hub.wakeup             # no await since the check: no publish is missed
        try:
            await asyncio.wait_for(wakeup.wait(), IDLE_CHECK)
        except TimeoutError:          # nothing to send: is the client still there?
            if not sse.is_connected():
                return


def routes(app: web.Application, api: Api, hub: EventHub) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream(request, api, hub)
    app.router.add_get("/api/v1/events", handler)
