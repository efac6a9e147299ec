"""Lifecycle webhooks out, through the whole daemon: the events a ``notify.webhooks``
entry asks for are POSTed in order with the incident, signed (HMAC-SHA256 of
``timestamp.body`` under the secret from its file), through the outbox: a receiver
that answers 503 gets the same event again (same delivery id) after a backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from .harness import TOKEN, Stack, alert
from .test_chain import PB, POLICY

pytestmark = pytest.mark.timeout(60)

SECRET = "hook-secret-0123"


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[int, dict[str, str], bytes]] = []     # status answered
        self.fail = 0
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self.runner = web.AppRunner(app, access_log=None)
        self.url = ""

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = 200
        if self.fail > 0:
            self.fail -= 1
            status = 503
        self.got.append((status, dict(request.headers), body))
        return web.json_response({}, status=status)

    def delivered(self) -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [(h, json.loads(b)) for s, h, b in self.got if s == 200]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.runner.setup()
    site = web.TCPSite(r.runner, "127.0.0.1", 0)
    await site.start()
    r.url = f"http://127.0.0.1:{r.runner.addresses[0][1]}/hook"
    yield r
    await r.runner.cleanup()


async def test_lifecycle_events_signed_in_order_and_retried(
        stack: Stack, receiver: Receiver, tmp_path: Path) -> None:
    secret_file = tmp_path / "hook-secret"
    secret_file.write_text(SECRET + "\n")
    receiver.fail = 2
    await stack.start(PB, settings={
        "escalation": {"policies": POLICY, "tick": "1d"},
        "notify": {"console": False, "webhooks": [
            {"name": "itsm", "url": receiver.url, "secret_file": str(secret_file),
             "events": ["opened", "escalated", "acknowledged", "closed"]}]}})
    await stack.post([alert()])

    async def kinds_seen(*kinds: str) -> bool:
        return [p["event"] for _, p in receiver.delivered()] == list(kinds)
    await stack.until(lambda: kinds_seen("opened", "escalated"), "opened, escalated",
                      advance=5.0)
    incident_id = (await stack.incident()).id
    async with stack.http.post(f"{stack.url}/api/v1/incidents/{incident_id}/ack",
                               headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 200
    await stack.post([alert("resolved")])
    await stack.until(lambda: kinds_seen("opened", "escalated", "acknowledged", "closed"),
                      "acknowledged, closed", advance=5.0)

    failed = [(h["X-Remediator-Delivery"], json.loads(b)["event"])
              for s, h, b in receiver.got if s == 503]
    assert [e for _, e in failed] == ["opened", "opened"]           # retried, then delivered
    first = receiver.delivered()[0][0]
    assert {d for d, _ in failed} == {first["X-Remediator-Delivery"]}
    for status, headers, body in receiver.got:
        base = headers["X-Remediator-Timestamp"].encode() + b"." + body
        expected = "sha256=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
        assert headers["X-Remediator-Signature"] == expected, status
    for headers, payload in receiver.delivered():
        assert payload["incident"]["id"] == incident_id
        assert headers["X-Remediator-Event"] == payload["event"]
    assert receiver.delivered()[2][1]["incident"]["context"]["ack"]["by"] == "token"
