"""Property-based: random and mutated webhook bodies and headers never get a 5xx or
crash the server, and every alert of an accepted (200) webhook is persisted."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remediator.model.alerts import fingerprint

from .conftest import TOKEN, Served

NAMES = st.sampled_from(["HighErrorRate", "DiskFull", "X"])
TEXT = st.text(max_size=12)
LABEL_VALUE = st.one_of(st.sampled_from(["prod", "api", "kube-system", "a.b", "UPPER", "",
                                         "../etc", "{{ 7*7 }}", "x" * 70]), TEXT)
TIMES = st.sampled_from(["2026-08-01T10:00:00Z", "2026-08-01T10:00:00.123456789Z",
                         "2026-08-01T12:00:00+02:00", "0001-01-01T00:00:00Z",
                         "2026-13-01T00:00:00Z", "yesterday", "9999-12-31T23:59:59Z"])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | TEXT, lambda c: st.lists(c, max_size=3)
                    | st.dictionaries(TEXT, c, max_size=3), max_leaves=8)


@st.composite
def alerts(draw: st.DrawFn) -> dict[str, Any]:
    labels = {"alertname": draw(NAMES), "namespace": draw(LABEL_VALUE),
              "deployment": draw(LABEL_VALUE)}
    labels.update(draw(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
                                       TEXT, max_size=2)))
    status = draw(st.sampled_from(["firing", "resolved"]))
    return {"status": status, "labels": labels,
            "annotations": draw(st.dictionaries(TEXT, TEXT, max_size=2)),
            "startsAt": draw(TIMES),
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else draw(TIMES),
            "generatorURL": draw(TEXT), "fingerprint": fingerprint(labels)}


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": "4", "groupKey": draw(TEXT), "truncatedAlerts": draw(st.integers(-1, 3)),
        "status": draw(st.sampled_from(["firing", "resolved"])), "receiver": "r",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
        "alerts": draw(st.lists(alerts(), max_size=4))}
    # mutations: drop keys, replace values with random JSON, add unknown keys
    for key in draw(st.lists(st.sampled_from(sorted(body)), max_size=2)):
        if draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = draw(JSON)
    if body.get("alerts") and isinstance(body["alerts"], list) and draw(st.booleans()):
        a = body["alerts"][0]
        if not isinstance(a, dict):
            return body
        field = draw(st.sampled_from(["status", "labels", "startsAt", "fingerprint",
                                      "annotations", "endsAt"]))
        a[field] = draw(JSON)
    body.update(draw(st.dictionaries(st.sampled_from(["notification_reason", "routeLabels"]),
                                     JSON, max_size=2)))
    return body


HEADERS = st.fixed_dictionaries({
    "Content-Type": st.sampled_from(["application/json", "application/json; charset=utf-8",
                                     "text/json", "text/plain", "application/octet-stream"]),
    "Authorization": st.sampled_from([f"Bearer {TOKEN}"] * 4 + ["Bearer x", "", "Basic Og==",
                                                                 f"bearer {TOKEN}"])})
RAW = st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode),
                payloads().map(lambda p: json.dumps(p)[: max(0, len(json.dumps(p)) - 3)]
                               .encode()))

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@SETTINGS
@given(body=payloads(), headers=HEADERS)
async def test_mutated_payloads_never_5xx_and_accepted_alerts_persist(
        server: Served, body: dict[str, Any], headers: dict[str, str]) -> None:
    resp = await server.client.post("/api/v1/alerts", data=json.dumps(body), headers=headers)
    assert resp.status in (200, 400, 401, 415), await resp.text()
    reply = await resp.json()
    if resp.status == 200:
        stored = {(a["fingerprint"], a["labels"].get("alertname"))
                  for a in await server.store.list_alerts(limit=100_000)}
        for a in body["alerts"]:
            assert (a["fingerprint"], a["labels"].get("alertname")) in stored
        assert sum(reply["alerts"].values()) == len(body["alerts"])


@SETTINGS
@given(raw=RAW, headers=HEADERS)
async def test_random_bytes_never_5xx(server: Served, raw: bytes,
                                      headers: dict[str, str]) -> None:
    resp = await server.client.post("/api/v1/alerts", data=raw, headers=headers)
    assert resp.status in (200, 400, 401, 415), await resp.text()
    assert resp.content_type == "application/json"


async def test_server_still_healthy_after_garbage(server: Served) -> None:
    for raw in (b"\xff\xfe", b"[" * 100_000, b'{"version": "4", "alerts": 1e999}', b"null"):
        resp = await server.client.post("/api/v1/alerts", data=raw, headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        assert resp.status == 400, (raw[:20], await resp.text())
    assert (await server.client.get("/healthz")).status == 200
