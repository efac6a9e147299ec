"""The event stream's fan-out: one poll and one encoding per journal entry for every
client, what queued up written at once, in order, each entry once; a client that
falls too far behind is told to ``reset``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from remediator.console import HUB, events
from remediator.model.incident import TimelineEntry

from .conftest import T0, VIEWER, Make

LABELS = {"alertname": "HighErrorRate", "namespace": "prod", "deployment": "api"}
AUTH = {"Authorization": f"Bearer {VIEWER}"}


async def read_events(resp: Any, count: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, event, data) of the next ``count`` events."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(20):
        while len(out) < count:
            line = (await resp.content.readline()).decode().rstrip("\r\n")
            if not line:
                if "data" in fields:
                    out.append((fields.get("id", ""), fields.get("event", ""),
                                json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
    return out


async def test_many_clients_get_a_burst_once_each_in_order(
        make_console: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    c = await make_console()
    hub = c.client.app[HUB]
    hub.poll = 0.01
    incident = await c.incident(LABELS)
    polls = 0
    real = c.store.timeline_after

    async def counted(after: int, limit: int) -> Any:
        nonlocal polls
        polls += 1
        return await real(after, limit)
    monkeypatch.setattr(c.store, "timeline_after", counted)
    encoded = 0
    real_frame = events.frame

    def counting_frame(row: Any) -> Any:
        nonlocal encoded
        encoded += 1
        return real_frame(row)
    monkeypatch.setattr(events, "frame", counting_frame)
    clients = [await c.client.get("/api/v1/events", headers=AUTH) for _ in range(20)]
    assert all(r.status == 200 for r in clients)
    entries = tuple(TimelineEntry(at=T0, kind="step", message=f"step {n}") for n in range(300))
    await c.store.journal(incident, T0, timeline=entries)
    await c.store.journal(incident, T0, timeline=(TimelineEntry(
        at=T0, kind="state", message="incident escalated", data={"state": "escalated"}),))
    got = await asyncio.gather(*(read_events(r, 301) for r in clients))
    first = got[0]
    assert [e[2]["message"] for e in first] == [f"step {n}" for n in range(300)] + [
        "incident escalated"]
    assert [int(e[0]) for e in first] == sorted({int(e[0]) for e in first})
    assert first[-1][1] == "escalated"
    assert all(g == first for g in got)
    assert encoded == 301                       # once per entry, not once per client
    assert polls < 100                          # one poller, not one per client
    for r in clients:
        r.close()


async def test_a_client_too_far_behind_gets_reset(make_console: Make,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "QUEUE_LIMIT", 5)
    c = await make_console()
    hub = c.client.app[HUB]
    hub.poll = 0.01
    incident = await c.incident(LABELS)
    behind, _ = await hub.subscribe()           # a client that does not read
    entries = tuple(TimelineEntry(at=T0, kind="step", message=f"s{n}") for n in range(4))
    await c.store.journal(incident, T0, timeline=entries)
    async with asyncio.timeout(10):
        while hub.base + len(hub.frames) < 4:
            await hub.wakeup.wait()
    ahead, _ = await hub.subscribe()
    assert [json.loads(f[1].split(b"data: ")[1])["message"]
            for f in hub.take(behind, 2) or []] == ["s0", "s1"]
    await c.store.journal(incident, T0, timeline=entries)   # 8 in all: 3 dropped
    async with asyncio.timeout(10):
        while hub.base + len(hub.frames) < 8:
            await hub.wakeup.wait()
    assert hub.take(behind, 100) is None        # it missed dropped frames: reset
    assert len(hub.take(ahead, 100) or []) == 4
    hub.unsubscribe(behind)
    hub.unsubscribe(ahead)
