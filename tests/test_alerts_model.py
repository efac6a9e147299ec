"""The Alertmanager webhook model against real Alertmanager 0.25 bodies and broken ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.model.alerts import (
    Alert,
    WebhookError,
    WebhookPayload,
    fingerprint,
    format_time,
    parse_alerts_document,
    parse_time,
    parse_webhook,
)

DATA = Path(__file__).parent / "data" / "webhooks"
REAL = sorted(DATA.glob("am-*.json"))


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_real_fixtures_exist() -> None:
    assert {p.name for p in REAL} >= {"am-0.25-firing.json", "am-0.25-resolved.json"}


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_payload_parses_and_fingerprints_match_alertmanager(path: Path) -> None:
    raw = path.read_bytes()
    payload = parse_webhook(raw)
    body = json.loads(raw)
    assert payload.version == "4"
    assert payload.groupKey == body["groupKey"]
    assert payload.receiver == "remediator"
    assert len(payload.alerts) == len(body["alerts"]) >= 3
    for alert, original in zip(payload.alerts, body["alerts"], strict=True):
        assert alert.fingerprint == original["fingerprint"]
        assert fingerprint(alert.labels) == original["fingerprint"]
        assert alert.startsAt.tzinfo is not None


def test_real_firing_payload() -> None:
    payload = parse_webhook(load("am-0.25-firing.json"))
    assert payload.status == "firing"
    assert all(a.is_firing and a.endsAt is None for a in payload.alerts)   # zero endsAt → None
    assert '"endsAt":"0001-01-01T00:00:00Z"' in load("am-0.25-firing.json").decode()
    assert payload.commonLabels == {"alertname": "HighErrorRate", "namespace": "shop"}
    # the non-ASCII label value survived and hashes like Alertmanager's
    search = next(a for a in payload.alerts if a.labels["deployment"] == "search")
    assert search.labels["team"] == "équipe ☃"


def test_real_resolved_payload_matches_the_firing_episode() -> None:
    firing = parse_webhook(load("am-0.25-firing.json"))
    resolved = parse_webhook(load("am-0.25-resolved.json"))
    assert resolved.status == "resolved"
    assert all(not a.is_firing and a.endsAt is not None for a in resolved.alerts)
    assert {a.episode_key for a in firing.alerts} == {a.episode_key for a in resolved.alerts}
    for a in resolved.alerts:
        assert a.endsAt is not None
        assert a.endsAt > a.startsAt


def test_multi_namespace_payload_and_unknown_keys() -> None:
    payload = parse_webhook(load("multi-namespace.json"))
    assert payload.truncatedAlerts == 2
    assert {a.labels["namespace"] for a in payload.alerts} == {
        "shop", "payments", "kube-system", "search"}
    assert [a.status for a in payload.alerts].count("resolved") == 1
    assert not hasattr(payload, "notification_reason")
    assert "routeLabels" not in payload.model_dump()
    for a in payload.alerts:
        assert a.fingerprint == fingerprint(a.labels)
    # nanoseconds truncate to microseconds, in UTC
    assert payload.alerts[0].startsAt == datetime(2026, 8, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert payload.alerts[0].episode_key == (payload.alerts[0].fingerprint,
                                             "2026-08-01T10:00:00.123456Z")


def test_input_forms_are_equivalent() -> None:
    raw = load("multi-namespace.json")
    assert parse_webhook(raw) == parse_webhook(raw.decode()) == parse_webhook(json.loads(raw))


def test_truncated_alerts_defaults_to_zero() -> None:
    body = json.loads(load("am-0.25-firing.json"))
    del body["truncatedAlerts"]
    assert parse_webhook(body).truncatedAlerts == 0


BROKEN = [
    ("wrong-version.json",
     'version: unsupported webhook version "3" (remediator speaks version 4)'),
    ("missing-groupkey.json", "groupKey: required field is missing"),
    ("bad-label-name.json",
     'alerts[1].labels: invalid label name "bad-name" (must match [a-zA-Z_][a-zA-Z0-9_]*)'),
    ("bad-startsat.json",
     'alerts[1].startsAt: invalid datetime "yesterday" (expected RFC 3339, '
     "e.g. 2026-08-01T10:00:00Z)"),
    ("non-string-label-value.json",
     'alerts[0].labels: label "replicas" has a non-string value 3'),
    ("malformed.json",
     "body: malformed JSON at line 3, column 24 (char 70): Expecting property name enclosed "
     "in double quotes"),
    ("not-an-object.json", "webhook: expected a JSON object, got a list"),
]


@pytest.mark.parametrize(("name", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_payloads_give_precise_messages(name: str, message: str) -> None:
    with pytest.raises(WebhookError) as err:
        parse_webhook(load(f"broken/{name}"))
    assert err.value.problems == (message,)
    assert str(err.value) == message


def mutated(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(load("multi-namespace.json"))
    for path, value in changes.items():
        target: Any = body
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is ...:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return body


@pytest.mark.parametrize(("changes", "message"), [
    ({"version": 4}, 'version: unsupported webhook version 4 (remediator speaks version 4)'),
    ({"status": "pending"}, "status: must be 'firing' or 'resolved', got \"pending\""),
    ({"alerts": {}}, "alerts: expected a list, got an object"),
    ({"alerts__2__labels": ...}, "alerts[2].labels: required field is missing"),
    ({"alerts__2__startsAt": "0001-01-01T00:00:00Z"},
     'alerts[2].startsAt: must be a real time, got the zero time "0001-01-01T00:00:00Z"'),
    ({"alerts__0__endsAt": 1722506400},
     "alerts[0].endsAt: invalid datetime 1722506400 (expected an RFC 3339 string)"),
    ({"alerts__3__fingerprint": "xyz"},
     'alerts[3].fingerprint: invalid fingerprint "xyz" (expected 16 hex digits)'),
    ({"truncatedAlerts": -1},
     "truncatedAlerts: Input should be greater than or equal to 0, got -1"),
    ({"commonLabels": {"0abc": "x"}},
     'commonLabels: invalid label name "0abc" (must match [a-zA-Z_][a-zA-Z0-9_]*)'),
    ({"alerts__1__annotations": {"summary": None}},
     'alerts[1].annotations: annotation "summary" has a non-string value null'),
])
def test_field_errors_name_the_path(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(WebhookError) as err:
        parse_webhook(mutated(**changes))
    assert err.value.problems == (message,)


def test_every_problem_is_reported() -> None:
    with pytest.raises(WebhookError) as err:
        parse_webhook(mutated(version="3", alerts__0__status="x", alerts__4__startsAt="now"))
    assert [p.split(":")[0] for p in err.value.problems] == [
        "version", "alerts[0].status", "alerts[4].startsAt"]


def test_not_utf8() -> None:
    with pytest.raises(WebhookError, match=r"body: not UTF-8 \(byte 1"):
        parse_webhook(b'{\xff}')


# ------------------------------------------------------------------ fingerprints

@pytest.mark.parametrize(("labels", "expected"), [
    ({}, "cbf29ce484222325"),                                  # FNV-1a 64 offset basis
    # values Alertmanager 0.25 computed (tests/data/webhooks/am-0.25-firing.json)
    ({"alertname": "HighErrorRate", "deployment": "api", "instance": "10.0.0.7:8080",
      "job": "api", "namespace": "shop", "severity": "critical"}, "dbafa3a0ea721cfc"),
    ({"alertname": "HighErrorRate", "deployment": "search", "namespace": "shop",
      "path": '/a b"c\\d\n', "severity": "critical", "team": "équipe ☃"}, "082f5888702e27b0"),
])
def test_fingerprint_known_values(labels: dict[str, str], expected: str) -> None:
    assert fingerprint(labels) == expected


def test_fingerprint_separator_prevents_concatenation_collisions() -> None:
    assert fingerprint({"a": "bc"}) != fingerprint({"ab": "c"})


@given(st.dictionaries(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True),
                       st.text(max_size=12), max_size=6))
def test_fingerprint_ignores_order_and_is_16_hex(labels: dict[str, str]) -> None:
    reordered = dict(reversed(list(labels.items())))
    fp = fingerprint(labels)
    assert fp == fingerprint(reordered)
    assert len(fp) == 16
    assert int(fp, 16) >= 0


# ------------------------------------------------------------------- timestamps

@pytest.mark.parametrize(("text", "expected"), [
    ("0001-01-01T00:00:00Z", None),
    ("2026-08-01T10:00:00Z", datetime(2026, 8, 1, 10, tzinfo=UTC)),
    ("2026-08-01T12:00:00.5+02:00", datetime(2026, 8, 1, 10, 0, 0, 500000, tzinfo=UTC)),
    ("2026-08-01T10:00:00.123456789Z", datetime(2026, 8, 1, 10, 0, 0, 123456, tzinfo=UTC)),
])
def test_parse_time(text: str, expected: datetime | None) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-08-01", "2026-08-01T10:00:00",
                                  "2026-13-01T10:00:00Z", ""])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid datetime"):
        parse_time(text)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30)),
       st.integers(0, 9), st.sampled_from(["T", "t", " "]),
       st.sampled_from(["Z", "z", "+00:00", "-00:00", "+05:30", "-11:15"]), st.booleans())
def test_parse_time_any_rfc3339_spelling(when: datetime, digits: int, sep: str, zone: str,
                                         leap: bool) -> None:
    """The fast C path and the long way agree on every spelling the grammar allows:
    fraction digits 0-9 (truncated to microseconds), t/T/space, z/Z and offsets, leap
    seconds (read as :59) and the zero time."""
    nanos = f"{when.microsecond:06d}{when.microsecond % 1000:03d}"[:digits]
    second = 60 if leap and when.second == 59 else when.second
    text = (f"{when.year:04d}-{when.month:02d}-{when.day:02d}{sep}{when.hour:02d}:"
            f"{when.minute:02d}:{second:02d}" + (f".{nanos}" if digits else "") + zone)
    micros = int(nanos.ljust(6, "0")[:6])
    sign = -1 if zone.startswith("-") else 1
    offset = (timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])) * sign
              if zone[0] in "+-" else timedelta(0))
    local = when.replace(second=min(second, 59), microsecond=micros,
                         tzinfo=timezone(offset))
    zero = (when.replace(microsecond=0) == datetime(1, 1, 1) and not nanos.strip("0"))
    try:
        expected: datetime | None = None if zero else local.astimezone(UTC)
    except OverflowError:                  # year 1 minus an offset: out of range
        with pytest.raises((ValueError, OverflowError)):
            parse_time.__wrapped__(text)
        return
    parsed = parse_time.__wrapped__(text)
    assert parsed == expected
    if parsed is not None:                  # the same instant, and in UTC
        assert parsed.utcoffset() == timedelta(0)


def test_format_time_round_trips() -> None:
    t = datetime(2026, 8, 1, 10, 0, 0, 120000, tzinfo=UTC)
    assert format_time(t) == "2026-08-01T10:00:00.12Z"
    assert parse_time(format_time(t)) == t


# ------------------------------------------------------------- dry-run documents

NOW = datetime(2026, 8, 1, 12, tzinfo=UTC)


def test_document_whole_payload() -> None:
    assert parse_alerts_document(load("am-0.25-firing.json")) == list(
        parse_webhook(load("am-0.25-firing.json")).alerts)


def test_document_single_hand_written_alert() -> None:
    [alert] = parse_alerts_document('{"labels": {"alertname": "X", "namespace": "shop", '
                                    '"empty": ""}}', now=NOW)
    assert alert.status == "firing"
    assert alert.startsAt == NOW
    assert alert.labels == {"alertname": "X", "namespace": "shop"}    # as Alertmanager drops ""
    assert alert.fingerprint == fingerprint({"alertname": "X", "namespace": "shop"})


def test_document_list_of_postable_alerts() -> None:
    alerts = parse_alerts_document([
        {"labels": {"alertname": "A"}, "startsAt": "2026-08-01T10:00:00Z"},
        {"labels": {"alertname": "B"}, "startsAt": "2026-08-01T10:00:00Z",
         "endsAt": "2026-08-01T11:00:00Z"},
        {"labels": {"alertname": "C"}, "startsAt": "2026-08-01T10:00:00Z",
         "endsAt": "2026-08-01T13:00:00Z"},
    ], now=NOW)
    assert [a.status for a in alerts] == ["firing", "resolved", "firing"]
    assert all(isinstance(a, Alert) for a in alerts)


def test_document_errors_name_the_item() -> None:
    with pytest.raises(WebhookError) as err:
        parse_alerts_document([{"labels": {"alertname": "A"}}, {"labels": {"a-b": "x"}}, 3])
    assert err.value.problems == (
        "[0].startsAt: required field is missing",
        '[1].labels: invalid label name "a-b" (must match [a-zA-Z_][a-zA-Z0-9_]*)',
        "[1].startsAt: required field is missing",
        "[2]: expected an alert object, got a number",
    )
    with pytest.raises(WebhookError, match="got a string"):
        parse_alerts_document('"hello"')
    with pytest.raises(WebhookError, match="holds no alert"):
        parse_alerts_document("[]")


def test_models_are_frozen() -> None:
    payload: WebhookPayload = parse_webhook(load("am-0.25-firing.json"))
    with pytest.raises(ValueError, match="frozen"):
        payload.alerts[0].status = "resolved"  # type: ignore[misc]


@pytest.mark.parametrize("name", ["am-0.25-firing.json", "am-0.25-resolved.json",
                                  "multi-namespace.json"])
def test_fast_and_worded_parsing_paths_agree(name: str) -> None:
    # parse_webhook validates valid bodies straight from JSON (pydantic-core); the path
    # that words errors goes through json.loads. Both must give the same payload.
    from remediator.model.alerts import WebhookPayload, _validate
    raw = (Path(__file__).parent / "data" / "webhooks" / name).read_bytes()
    assert parse_webhook(raw) == _validate(WebhookPayload, json.loads(raw))


def test_label_problems_are_worded_each_with_its_path() -> None:
    """Label sets, annotations and fingerprints are validated by pydantic-core; every
    problem still comes out worded, one per bad entry."""
    body = mutated(alerts__0__labels=["x"], alerts__1__fingerprint=5,
                   commonAnnotations={"a": 1},
                   alerts__2__labels={"a-b": "x", "ok": None, "fine": "y"})
    with pytest.raises(WebhookError) as err:
        parse_webhook(json.dumps(body))
    assert sorted(err.value.problems) == sorted([
        'commonAnnotations: annotation "a" has a non-string value 1',
        "alerts[0].labels: expected an object of label names to values, got a list",
        "alerts[1].fingerprint: invalid fingerprint 5 (expected 16 hex digits)",
        'alerts[2].labels: invalid label name "a-b" (must match [a-zA-Z_][a-zA-Z0-9_]*)',
        'alerts[2].labels: label "ok" has a non-string value null',
    ])


@pytest.mark.parametrize("name", ["a\n", "\na", "a b", "é", "", "a-", "1a"])
def test_label_names_are_anchored(name: str) -> None:
    with pytest.raises(WebhookError, match="invalid label name"):
        parse_webhook(json.dumps(mutated(commonLabels={name: "x"})))


# Strict JSON: what Python's json module (and last-key-wins parsers) would let through.
STRICT = [
    (b'{"version": "4", "alerts": [], "alerts": []}',
     'body: duplicate key "alerts" in an object (each key may appear only once)'),
    (b'{"commonLabels": {"a": "1", "a": "2"}}',
     'body: duplicate key "a" in an object (each key may appear only once)'),
    (b'{"truncatedAlerts": ' + b"9" * 5000 + b"}",
     "body: integer 99999999999999999999... (5000 digits) is out of range (at most 64 bits, "
     "-9223372036854775808 to 9223372036854775807)"),
    (b'{"x": -9223372036854775809}',
     "body: integer -9223372036854775809 is out of range (at most 64 bits, "
     "-9223372036854775808 to 9223372036854775807)"),
    (b'{"truncatedAlerts": NaN}', "body: NaN is not a JSON value"),
    (b'{"x": -Infinity}', "body: -Infinity is not a JSON value"),
]


@pytest.mark.parametrize(("body", "message"), STRICT, ids=[
    "duplicate-alerts", "duplicate-label", "5000-digits", "below-int64", "nan", "infinity"])
def test_strict_json(body: bytes, message: str) -> None:
    for form in (body, body.decode()):
        with pytest.raises(WebhookError) as err:
            parse_webhook(form)
        assert err.value.problems == (message,)


def test_a_duplicated_alerts_list_is_refused_not_taken_as_the_last() -> None:
    body = json.loads(load("multi-namespace.json"))
    text = json.dumps(body)
    doubled = text[:-1] + ', "alerts": []}'
    with pytest.raises(WebhookError, match='duplicate key "alerts"'):
        parse_webhook(doubled.encode())


def test_long_digit_runs_in_strings_and_64_bit_integers_are_fine() -> None:
    body = json.loads(load("multi-namespace.json"))
    body["alerts"][0]["labels"]["order_id"] = "1" * 40           # a string, not a number
    body["truncatedAlerts"] = (1 << 63) - 1
    body["extra"] = {"n": -(1 << 63), "f": 1.5e300}
    parsed = parse_webhook(json.dumps(body).encode())
    assert parsed.truncatedAlerts == (1 << 63) - 1
    assert parsed.alerts[0].labels["order_id"] == "1" * 40
