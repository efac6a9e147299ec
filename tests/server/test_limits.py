"""Slow and greedy sockets against the real listener (``GuardedSite`` in front of
aiohttp, as ``app.py`` wires it): raw sockets on loopback, short configured timeouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from remediator.server.http import ServerConfig, build_app
from remediator.server.limits import GuardedSite, Limits

from .conftest import TOKEN, Served

CONFIG = ServerConfig(bearer_token=TOKEN, header_timeout=0.2, body_timeout=0.3,
                      max_connections=3)


@pytest.fixture
async def port(server: Served) -> AsyncIterator[int]:
    app, api = build_app(server.engine, CONFIG)
    api.ready = True
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=CONFIG.header_timeout,
                           shutdown_timeout=0.1)
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, Limits(CONFIG.header_timeout,
                                                      CONFIG.max_connections))
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def closed_after(reader: asyncio.StreamReader, limit: float = 2.0) -> tuple[float, bytes]:
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), limit)       # b"" or an answer, then EOF
    return time.monotonic() - started, data


async def test_a_half_sent_request_line_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /api/v1/al")
    took, data = await closed_after(reader)
    assert data == b""
    assert took < 1.0
    writer.close()


async def test_headers_trickled_byte_by_byte_are_cut_at_the_deadline(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)
            if reader.at_eof():
                break
    except ConnectionError:
        pass
    _, data = await closed_after(reader)
    assert data == b""
    assert time.monotonic() - started < 1.0
    writer.close()


async def test_a_slow_body_is_closed_without_an_answer(server: Served, port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 b"\r\nContent-Length: 1000\r\nAuthorization: Bearer " + TOKEN.encode()
                 + b"\r\n\r\n{")
    took, data = await closed_after(reader)
    assert data == b""
    assert took < 1.0
    writer.close()
    counts = {m.labels["code"]: m.value for c in server.engine.metrics.webhook_requests.collect()
              for m in c.samples if m.name.endswith("_total")}
    assert counts == {"body_timeout": 1.0}


async def test_a_client_hanging_up_mid_body_counts_as_client_abort(server: Served,
                                                                   port: int) -> None:
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 b"\r\nContent-Length: 1000\r\nAuthorization: Bearer " + TOKEN.encode()
                 + b"\r\n\r\n{")
    await writer.drain()
    await asyncio.sleep(0.02)
    writer.close()
    for _ in range(100):
        counts = {m.labels["code"]: m.value
                  for c in server.engine.metrics.webhook_requests.collect()
                  for m in c.samples if m.name.endswith("_total")}
        if counts:
            break
        await asyncio.sleep(0.01)
    assert counts == {"client_abort": 1.0}


async def test_a_normal_request_still_works_and_keep_alive_heads_are_bounded(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1.0)
    assert head.startswith(b"HTTP/1.1 200")
    writer.write(b"GET /heal")                 # a second, slow head on the same connection
    _, rest = await closed_after(reader)
    assert b"HTTP/1.1" not in rest.split(b"}", 1)[-1]
    writer.close()


async def test_connections_beyond_the_cap_get_503(port: int) -> None:
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    for _, w in held:
        w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")   # past the head deadline
    await asyncio.sleep(0.05)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    _, data = await closed_after(reader)
    assert data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), data
    assert b"too many connections (limit 3)" in data
    writer.close()
    for _, w in held:
        w.close()
        await w.wait_closed()
    await asyncio.sleep(0.05)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)   # room again
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    _, data = await closed_after(reader)
    assert data.startswith(b"HTTP/1.1 200")
    writer.close()
