"""Status codes of the HTTP surface, exactly: Alertmanager retries 5xx only, so
4xx must mean "the sender is wrong" and 503 "not persisted, retry"."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from remediator.model.alerts import fingerprint
from remediator.ports.store import IngestItem, IngestOutcome
from remediator.server import auth as auth_module
from remediator.server.http import ServerConfig
from remediator.store.sqlite import SqliteStore

from .conftest import TOKEN, Make, Served

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def payload(**over: Any) -> dict[str, Any]:
    labels = {"alertname": "HighErrorRate", "namespace": "prod", "deployment": "api"}
    body: dict[str, Any] = {
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "remediator", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                    "startsAt": "2026-08-01T10:00:00.123Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "", "fingerprint": fingerprint(labels)}]}
    body.update(over)
    return body


async def send(s: Served, body: bytes | str | dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body) if isinstance(body, dict) else body
    resp = await s.client.post("/api/v1/alerts", data=data,
                               headers=AUTH if headers is None else headers)
    assert resp.content_type == "application/json"
    return resp.status, await resp.json()


async def test_valid_webhook_200_and_persisted(server: Served) -> None:
    status, body = await send(server, payload())
    assert status == 200
    assert body == {"status": "accepted", "alerts": {"new": 1}}
    assert len(await server.store.list_alerts()) == 1


async def test_malformed_json_400(server: Served) -> None:
    status, body = await send(server, b'{"version": "4", ')
    assert status == 400
    assert body["error"] == "invalid webhook payload"
    assert "malformed JSON" in body["detail"]["problems"][0]


@pytest.mark.parametrize(("body", "problem"), [
    (json.dumps(payload())[:-1] + ', "alerts": []}', 'duplicate key "alerts"'),
    (json.dumps(payload(truncatedAlerts=0)).replace('"truncatedAlerts": 0',
                                                    '"truncatedAlerts": ' + "9" * 5000),
     "integer 99999999999999999999... (5000 digits) is out of range (at most 64 bits"),
    (json.dumps(payload(truncatedAlerts=0)).replace('"truncatedAlerts": 0',
                                                    '"truncatedAlerts": 18446744073709551616'),
     "integer 18446744073709551616 is out of range"),
], ids=["duplicate-alerts", "5000-digits", "2**64"])
async def test_strict_json_400_and_nothing_stored(server: Served, body: str,
                                                  problem: str) -> None:
    """Not a 500 that Alertmanager retries forever, nor a 200 that stored nothing."""
    status, answer = await send(server, body)
    assert status == 400, answer
    assert answer["error"] == "invalid webhook payload"
    assert problem in answer["detail"]["problems"][0]
    assert await server.store.list_alerts() == []


async def test_wrong_schema_400_with_problems(server: Served) -> None:
    bad = payload()
    del bad["groupKey"]
    bad["alerts"][0]["status"] = "pending"
    status, body = await send(server, bad)
    assert status == 400
    problems = " | ".join(body["detail"]["problems"])
    assert "groupKey" in problems
    assert "alerts[0].status" in problems or "alerts.0.status" in problems, problems
    status, body = await send(server, b"[1, 2]")
    assert status == 400
    assert "expected a JSON object" in body["detail"]["problems"][0]


async def test_wrong_version_400(server: Served) -> None:
    status, body = await send(server, payload(version="3"))
    assert status == 400
    assert "unsupported webhook version" in body["detail"]["problems"][0]


@pytest.mark.parametrize("headers", [
    {"Content-Type": "application/json"},
    {"Content-Type": "application/json", "Authorization": "Bearer wrong"},
    {"Content-Type": "application/json", "Authorization": f"Basic {TOKEN}"},
    {"Content-Type": "application/json", "Authorization": TOKEN},
    {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}x"},
])
async def test_401_bad_or_missing_token(server: Served, headers: dict[str, str]) -> None:
    status, body = await send(server, payload(), headers)
    assert status == 401
    assert body == {"error": "unauthorized"}
    assert await server.store.list_alerts() == []


async def test_401_before_anything_else(server: Served) -> None:
    status, _ = await send(server, b"not json", {"Content-Type": "text/plain"})
    assert status == 401


async def test_basic_auth(make_server: Make) -> None:
    s = await make_server(ServerConfig(basic_user="am", basic_password="pw"))

    def basic(user: str, pw: str) -> dict[str, str]:
        raw = base64.b64encode(f"{user}:{pw}".encode()).decode()
        return {"Authorization": f"Basic {raw}", "Content-Type": "application/json"}

    assert (await send(s, payload(), basic("am", "pw")))[0] == 200
    assert (await send(s, payload(), basic("am", "nope")))[0] == 401
    assert (await send(s, payload(), basic("root", "pw")))[0] == 401
    assert (await send(s, payload(), {"Authorization": "Basic !!!notbase64",
                                      "Content-Type": "application/json"}))[0] == 401
    assert (await send(s, payload(), {"Authorization": "Bearer pw",
                                      "Content-Type": "application/json"}))[0] == 401


async def test_auth_uses_a_constant_time_compare(server: Served,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    assert (await send(server, payload()))[0] == 200
    assert (await send(server, payload(), {"Authorization": "Bearer x",
                                           "Content-Type": "application/json"}))[0] == 401
    assert seen == [(TOKEN.encode(), TOKEN.encode()), (b"x", TOKEN.encode())]


async def test_413_too_large(make_server: Make) -> None:
    s = await make_server(ServerConfig(bearer_token=TOKEN, max_body_bytes=4096))
    big = payload(commonAnnotations={"x": "y" * 5000})
    status, body = await send(s, big)
    assert status == 413
    assert "4096" in body["error"]

    async def chunks() -> Any:            # no Content-Length: the limit still holds
        data = json.dumps(big).encode()
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]

    resp = await s.client.post("/api/v1/alerts", data=chunks(), headers=AUTH)
    assert resp.status == 413
    assert (await resp.json())["error"]


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "application/xml"])
async def test_415_wrong_content_type(server: Served, ctype: str) -> None:
    status, body = await send(server, json.dumps(payload()),
                              {"Authorization": f"Bearer {TOKEN}", "Content-Type": ctype})
    assert status == 415
    assert ctype in body["error"]


class BrokenStore(SqliteStore):
    async def ingest(self, items: list[IngestItem], now: datetime) -> list[IngestOutcome]:
        raise sqlite3.OperationalError("disk I/O error")


async def test_503_only_when_the_store_cannot_persist(make_server: Make,
                                                      tmp_path: Path) -> None:
    s = await make_server(store=BrokenStore(tmp_path / "broken.db"))
    status, body = await send(s, payload())
    assert status == 503
    assert "not persisted" in body["error"]
    # a bad request is still the sender's problem, whatever the store's health
    assert (await send(s, b"{"))[0] == 400


async def test_503_while_shutting_down(server: Served) -> None:
    server.api.accepting = False
    status, body = await send(server, payload())
    assert status == 503
    assert "shutting down" in body["error"]
    assert await server.store.list_alerts() == []


async def test_404_and_405_are_json(server: Served) -> None:
    for method, path, code in [("GET", "/nope", 404), ("GET", "/api/v1/pause", 405),
                               ("PUT", "/api/v1/alerts", 405), ("DELETE", "/healthz", 405)]:
        resp = await server.client.request(method, path, headers=AUTH)
        assert resp.status == code, (method, path)
        assert resp.content_type == "application/json"
        assert "error" in await resp.json()
    resp = await server.client.get("/api/v1/incidents/inc-missing", headers=AUTH)
    assert resp.status == 404
    assert "inc-missing" in (await resp.json())["error"]


async def test_webhook_requests_counted_by_status_post_only(server: Served) -> None:
    def counts() -> dict[str, float]:
        return {s.labels["code"]: s.value
                for m in server.engine.metrics.webhook_requests.collect() for s in m.samples
                if s.name.endswith("_total")}

    assert (await send(server, payload()))[0] == 200
    assert (await send(server, payload()))[0] == 200
    assert (await send(server, b"{"))[0] == 400
    # the same path's GET (the alert list) and other methods are not webhooks
    assert (await server.client.get("/api/v1/alerts", headers=AUTH)).status == 200
    assert (await server.client.put("/api/v1/alerts", headers=AUTH)).status == 405
    assert counts() == {"200": 2.0, "400": 1.0}


async def test_incidents_api_and_bad_limit(server: Served) -> None:
    await send(server, payload())
    resp = await server.client.get("/api/v1/incidents", headers=AUTH)
    incidents = (await resp.json())["incidents"]
    assert len(incidents) == 1
    resp = await server.client.get(f"/api/v1/incidents/{incidents[0]['id']}", headers=AUTH)
    assert resp.status == 200
    resp = await server.client.get("/api/v1/incidents?limit=x", headers=AUTH)
    assert resp.status == 400
    resp = await server.client.get("/api/v1/incidents?state=bogus", headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["error"] == (
        "state must be one of open, remediating, awaiting_approval, recovered, escalated, "
        "resolved, not 'bogus'")
    resp = await server.client.get("/api/v1/incidents?state=open", headers=AUTH)
    assert resp.status == 200
    resp = await server.client.get("/api/v1/incidents")
    assert resp.status == 401


async def test_health_and_readiness(server: Served) -> None:
    assert (await server.client.get("/healthz")).status == 200
    assert (await server.client.get("/readyz")).status == 200
    server.api.accepting = False
    assert (await server.client.get("/readyz")).status == 503


async def test_alert_list_limit(server: Served) -> None:
    many = payload()
    template = many["alerts"][0]
    many["alerts"] = []
    for i in range(150):
        labels = {**template["labels"], "alertname": "Other", "i": str(i)}
        many["alerts"].append({**template, "labels": labels, "fingerprint": fingerprint(labels)})
    assert (await send(server, many))[0] == 200
    resp = await server.client.get("/api/v1/alerts", headers=AUTH)
    assert len((await resp.json())["alerts"]) == 100
    resp = await server.client.get("/api/v1/alerts?limit=1000&outcome=unmatched",
                                   headers=AUTH)
    assert len((await resp.json())["alerts"]) == 150
    assert (await server.client.get("/api/v1/alerts?limit=x", headers=AUTH)).status == 400


async def test_the_open_incidents_gauge_counts_escalated_ones_still_firing(
        server: Any) -> None:
    """remediator_incidents_open is what the store counts as not closed, escalated
    incidents that still fire included (it read 0 for them)."""
    from remediator.model.incident import IncidentState
    from remediator.model.records import AlertRecord, IngestItem, Routing
    store = server.engine.store
    [out] = await store.ingest([IngestItem(
        AlertRecord("f" * 16, datetime(2026, 8, 1, tzinfo=UTC), None, "firing",
                    {"alertname": "A"}, {}), (Routing("pb", "pb/k", None),))],
        datetime(2026, 8, 1, tzinfo=UTC))
    await store.set_state(out.incident_ids[0], IncidentState.ESCALATED,
                          datetime(2026, 8, 1, tzinfo=UTC))
    resp = await server.client.get("/metrics")
    text = await resp.text()
    assert "remediator_incidents_open 1.0" in text


class HeldStore(SqliteStore):
    """Counts ``ingest`` calls; each waits for ``gate``, and the first
    ``fail`` of them then raise."""

    def __init__(self, path: Path, fail: int = 0) -> None:
        super().__init__(path)
        self.calls = 0
        self.fail = fail
        self.gate = asyncio.Event()

    async def ingest(self, items: list[IngestItem], now: datetime) -> list[IngestOutcome]:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return await super().ingest(items, now)


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(1000):                     # real time, bounded: requests on loopback
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


async def copies_in_flight(s: Served, body: str, copies: int) -> list[asyncio.Task[Any]]:
    """``copies`` posts of ``body`` at once: the first in the store, the others waiting
    for it."""
    sent = [asyncio.create_task(send(s, body)) for _ in range(copies)]
    await until(lambda: s.api.twins.waiting == copies - 1, "the copies wait for the first")
    return sent


async def test_identical_webhooks_in_flight_are_received_once(make_server: Make,
                                                              tmp_path: Path) -> None:
    """An HA pair racing (or Alertmanager retrying a webhook that timed out): copies of a
    body in flight wait for it, then are committed re-deliveries: one parse, one write."""
    store = HeldStore(tmp_path / "held.db")
    s = await make_server(store=store)
    body = json.dumps(payload())
    sent = await copies_in_flight(s, body, 3)
    other = asyncio.create_task(send(s, payload(groupKey="{}:{other}")))   # another body
    await until(lambda: store.calls == 2, "the other body in the store")
    assert s.api.twins.waiting == 2
    store.gate.set()
    # whichever copy the server read first is the one received; the others wait for it
    replies = sorted(await asyncio.gather(*sent), key=lambda r: "new" not in r[1]["alerts"])
    assert replies[0] == (200, {"status": "accepted", "alerts": {"new": 1}})
    assert replies[1:] == [(200, {"status": "accepted", "alerts": {"duplicate": 1}})] * 2
    assert await other == (200, {"status": "accepted", "alerts": {"duplicate": 1}})
    assert store.calls == 2                  # the copies were answered without a write
    assert len(await s.store.list_alerts()) == 1
    assert len(s.api.twins) == 0             # nothing held once they are answered


async def test_a_copy_of_a_failed_webhook_makes_its_own_attempt(make_server: Make,
                                                                tmp_path: Path) -> None:
    store = HeldStore(tmp_path / "held.db", fail=1)
    s = await make_server(store=store)
    sent = await copies_in_flight(s, json.dumps(payload()), 2)
    store.gate.set()
    (first_status, first), second = sorted(await asyncio.gather(*sent), reverse=True,
                                           key=lambda r: r[0])
    assert first_status == 503
    assert "not persisted" in first["error"]
    assert second == (200, {"status": "accepted", "alerts": {"new": 1}})
    assert store.calls == 2
    assert len(await s.store.list_alerts()) == 1
