"""Hostile callers of the HTTP surface: roles, who acts, bounded text, client aborts,
failing store writes. Real aiohttp server and client over loopback, real SQLite."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from typing import Any

import pytest

from remediator.server.auth import Credential
from remediator.server.http import ServerConfig

from .conftest import TOKEN, Make, Served
from .test_http import payload

WEBHOOK, VIEWER, OPERATOR = "am-token-0123", "viewer-token-456", "operator-token-789"
USERS = (Credential("alertmanager", "webhook", WEBHOOK),
         Credential("grafana", "viewer", VIEWER),
         Credential("alice", "operator", OPERATOR))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@pytest.fixture
async def roles(make_server: Make) -> Served:
    return await make_server(ServerConfig(bearer_token=TOKEN, users=USERS))


ROUTES = [("POST", "/api/v1/alerts"), ("GET", "/api/v1/alerts"),
          ("GET", "/api/v1/incidents"), ("GET", "/api/v1/status"),
          ("POST", "/api/v1/pause"), ("POST", "/api/v1/resume"),
          ("POST", "/api/v1/approvals/apr-x/approve")]
ALLOWED = {
    WEBHOOK: {"POST /api/v1/alerts"},
    VIEWER: {"GET /api/v1/alerts", "GET /api/v1/incidents", "GET /api/v1/status"},
    OPERATOR: {"GET /api/v1/alerts", "GET /api/v1/incidents", "GET /api/v1/status",
               "POST /api/v1/pause", "POST /api/v1/resume",
               "POST /api/v1/approvals/apr-x/approve"},
    TOKEN: {f"{m} {p}" for m, p in ROUTES},          # the legacy token keeps full rights
}


@pytest.mark.parametrize("token", list(ALLOWED), ids=["webhook", "viewer", "operator",
                                                      "legacy"])
async def test_each_role_reaches_its_routes_only(roles: Served, token: str) -> None:
    for method, path in ROUTES:
        data = json.dumps(payload()) if path == "/api/v1/alerts" else "{}"
        resp = await roles.client.request(method, path, data=data, headers=bearer(token))
        route = f"{method} {path}"
        if route in ALLOWED[token]:
            assert resp.status in (200, 404), (route, resp.status)   # 404: no such approval
        else:
            assert resp.status == 403, (route, resp.status)
            assert "may not" in (await resp.json())["error"]
        await roles.client.post("/api/v1/resume", headers=bearer(OPERATOR))
    resp = await roles.client.get("/api/v1/status", headers=bearer("nope"))
    assert resp.status == 401


async def test_the_webhook_credential_cannot_pause(roles: Served) -> None:
    resp = await roles.client.post("/api/v1/pause", headers=bearer(WEBHOOK),
                                   data=json.dumps({"reason": "x"}))
    assert resp.status == 403
    assert await roles.engine.guards.paused() is None


async def test_who_paused_is_the_credential_not_the_body(roles: Served) -> None:
    resp = await roles.client.post("/api/v1/pause", headers=bearer(OPERATOR),
                                   data=json.dumps({"reason": "deploy freeze", "by": "mallory"}))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["by"] == "alice"
    paused = await roles.engine.guards.paused()
    assert paused is not None
    assert (paused.by, paused.reason) == ("alice", "deploy freeze")


@pytest.mark.parametrize("size", [1025, 3 * 1024 * 1024])
async def test_a_reason_over_1_kib_is_400_naming_the_field(roles: Served, size: int) -> None:
    resp = await roles.client.post("/api/v1/pause", headers=bearer(OPERATOR),
                                   data=json.dumps({"reason": "x" * size}))
    assert resp.status == 400
    assert (await resp.json())["error"] == f"reason: at most 1024 bytes (got {size})"
    assert await roles.engine.guards.paused() is None
    ok = await roles.client.post("/api/v1/pause", headers=bearer(OPERATOR),
                                 data=json.dumps({"reason": "é" * 512}))    # 1024 bytes
    assert ok.status == 200


def webhook_counts(s: Served) -> dict[str, float]:
    return {m.labels["code"]: m.value for c in s.engine.metrics.webhook_requests.collect()
            for m in c.samples if m.name.endswith("_total")}


async def test_a_client_hanging_up_mid_body_is_no_5xx_and_no_traceback(
        server: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="remediator.server")
    host, port = server.client.server.host, server.client.server.port
    _reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 b"\r\nContent-Length: 5000\r\nAuthorization: Bearer " + TOKEN.encode()
                 + b"\r\n\r\n{\"version\": \"4\", ")
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.close()
    await writer.wait_closed()
    for _ in range(100):
        if webhook_counts(server):
            break
        await asyncio.sleep(0.01)
    assert webhook_counts(server) == {"client_abort": 1.0}
    records = [r for r in caplog.records if r.name == "remediator.server"]
    assert records
    assert all(r.levelno == logging.DEBUG and r.exc_info is None for r in records), \
        [(r.levelname, r.getMessage()) for r in records]


class FullDisk:
    """Real SQLite told it may not grow (``max_page_count``) and its free space filled:
    every write fails with 'database or disk is full', reads still work."""

    def __init__(self, s: Served) -> None:
        self.store = s.store

    async def set(self, full: bool) -> None:
        def limit(c: Any) -> None:
            pages = c.execute("PRAGMA page_count").fetchone()[0] if full else 1 << 30
            c.execute(f"PRAGMA max_page_count={pages}")
        await self.store._write(limit)
        if not full:
            await self.store._write(lambda c: c.execute(
                "DELETE FROM flags WHERE name LIKE 'filler.%'"))
            return
        n = 0
        for size in (3000, 300, 30, 1):         # fill the free space left in the file
            for _ in range(1000):
                n += 1
                try:
                    await self.store.set_flag(f"filler.{n}", "x" * size)
                except sqlite3.OperationalError:     # "database or disk is full"
                    break


def many_alerts() -> dict[str, Any]:
    many = payload()
    template = many["alerts"][0]
    many["alerts"] = [{**template, "labels": {**template["labels"], "i": str(i)},
                       "fingerprint": f"{i:016x}", "annotations": {"x": "y" * 2000}}
                      for i in range(50)]
    return many


async def test_readyz_goes_not_ready_while_writes_fail_and_back(server: Served) -> None:
    disk = FullDisk(server)
    assert (await server.client.get("/readyz")).status == 200
    await disk.set(full=True)
    resp = await server.client.post("/api/v1/alerts", data=json.dumps(many_alerts()),
                                    headers=bearer(TOKEN))
    assert resp.status == 503, await resp.text()
    ready = await server.client.get("/readyz")
    assert ready.status == 503
    store = (await ready.json())["dependencies"]["store"]
    assert store["state"] == "down"
    assert store["detail"].startswith("writes failing: OperationalError: "), store
    assert "full" in store["detail"], store   # the real error, not a failed ROLLBACK's
    assert store["last_error"] == store["detail"]
    await disk.set(full=False)
    ready = await server.client.get("/readyz")        # its own probe write succeeds
    assert ready.status == 200, await ready.json()
    store = (await ready.json())["dependencies"]["store"]
    assert (store["state"], store["detail"]) == ("up", "ok")


async def test_readyz_comes_back_after_the_next_successful_webhook(server: Served) -> None:
    disk = FullDisk(server)
    await disk.set(full=True)
    big = many_alerts()
    assert (await server.client.post("/api/v1/alerts", data=json.dumps(big),
                                     headers=bearer(TOKEN))).status == 503
    assert server.api.write_failure is not None
    await disk.set(full=False)
    assert (await server.client.post("/api/v1/alerts", data=json.dumps(big),
                                     headers=bearer(TOKEN))).status == 200
    assert server.api.write_failure is None
    assert (await server.client.get("/readyz")).status == 200
