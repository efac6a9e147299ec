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
only while a client is connected), encodes each once as an SSE frame and hands the
frames to each client's queue: a hundred clients cost one query and one encoding per
entry, not a hundred; each client writes what has queued up in one write. A client
whose queue holds more than ``QUEUE_LIMIT`` unsent events gets a ``reset`` event and
is disconnected (it reconnects with its ``Last-Event-ID`` and catches up from the store).
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


class EventHub:
    def __init__(self, store: Store, poll: float = POLL_SECONDS) -> None:
        self.store = store
        self.poll = poll
        self.position: int | None = None
        self.queues: set[asyncio.Queue[Frame | None]] = set()
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self) -> tuple[asyncio.Queue[Frame | None], int]:
        """A queue of every entry after the returned position."""
        if self._task is None or self._task.done():
            position = await self.store.last_timeline_id()    # nobody was following
            if self._task is None or self._task.done():
                self.position = position
                self._task = asyncio.create_task(self._run(), name="console-events")
        queue: asyncio.Queue[Frame | None] = asyncio.Queue()
        self.queues.add(queue)       # before the poller's first turn (no await since)
        return queue, self.position or 0

    def unsubscribe(self, queue: asyncio.Queue[Frame | None]) -> None:
        self.queues.discard(queue)

    async def _run(self) -> None:
        while self.queues:
            try:
                rows = await self.store.timeline_after(self.position or 0, BATCH)
            except Exception:
                log.exception("reading the journal for the event stream failed")
                rows = []
            for row in rows:
                self.position = row[0]
                encoded = frame(row)
                for queue in list(self.queues):
                    queue.put_nowait(encoded if queue.qsize() < QUEUE_LIMIT else None)
            if len(rows) < BATCH:
                await asyncio.sleep(self.poll)

    async def close(self) -> None:
        for queue in list(self.queues):
            queue.put_nowait(None)
        self.queues.clear()
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
    queue, position = await hub.subscribe()
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
            await _follow(sse, queue, sent)
    except ConnectionError:                               # the client went away
        log.debug("event stream client %s left", request.remote)
    finally:
        hub.unsubscribe(queue)
    return sse


async def _follow(sse: Any, queue: asyncio.Queue[Frame | None], sent: int) -> None:
    while True:
        try:
            item = await asyncio.wait_for(queue.get(), IDLE_CHECK)
        except TimeoutError:          # nothing to send: is the client still there?
            if not sse.is_connected():
                return
            continue
        batch: list[bytes] = []
        while item is not None:
            if item[0] > sent:
                batch.append(item[1])
                sent = item[0]
            if len(batch) >= WRITE_BATCH or queue.empty():
                break
            item = queue.get_nowait()
        if batch:
            async with asyncio.timeout(SEND_TIMEOUT):
                await sse.write(b"".join(batch))
        if item is None:
            await sse.send(json.dumps({"after": sent}), event="reset")
            return


def routes(app: web.Application, api: Api, hub: EventHub) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream(request, api, hub)
    app.router.add_get("/api/v1/events", handler)
