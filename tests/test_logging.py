"""The daemon's JSON log lines: fields, extras, and the cached second."""

from __future__ import annotations

import json
import logging
import sys
import time

import pytest

from remediator.app import JsonFormatter


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.Formatter, "converter", time.gmtime)   # as setup_logging


def record(created: float, msg: str = "step %r failed", *args: object,
           **extra: object) -> logging.LogRecord:
    rec = logging.getLogger("remediator.engine").makeRecord(
        "remediator.engine", logging.INFO, __file__, 1, msg, args or ("restart",), None,
        extra={"incident": "inc-1", "kind": "step", **extra})
    rec.created, rec.msecs = created, float(int(round(created % 1, 6) * 1000))
    return rec


def test_fields_and_extras() -> None:
    line = JsonFormatter().format(record(1_785_578_400.25, extra_field=["x"], _hidden=1))
    assert json.loads(line) == {
        "ts": "2026-08-01T10:00:00.250Z", "level": "info", "logger": "remediator.engine",
        "msg": "step 'restart' failed", "incident": "inc-1", "kind": "step",
        "extra_field": ["x"]}
    assert list(json.loads(line))[:4] == ["ts", "level", "logger", "msg"]


def test_the_cached_second_moves_with_the_clock_and_the_converter() -> None:
    f = JsonFormatter()
    stamps = [json.loads(f.format(record(t)))["ts"]
              for t in (1_785_578_400.999, 1_785_578_401.0, 1_785_578_400.5, 1_785_578_461.001)]
    assert stamps == ["2026-08-01T10:00:00.999Z", "2026-08-01T10:00:01.000Z",
                      "2026-08-01T10:00:00.500Z", "2026-08-01T10:01:01.001Z"]
    rec = record(1_785_578_400.0)
    f.converter = lambda t: time.gmtime(t + 3600)   # type: ignore[method-assign,assignment]
    assert json.loads(f.format(rec))["ts"] == "2026-08-01T11:00:00.000Z"


def test_unserializable_extras_and_exceptions() -> None:
    class Thing:
        def __str__(self) -> str:
            return "a thing"
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record(1_785_578_400.0, thing=Thing())
        rec.exc_info = sys.exc_info()
    data = json.loads(JsonFormatter().format(rec))
    assert data["thing"] == "a thing"
    assert data["exc"].startswith("Traceback")
    assert "ValueError: boom" in data["exc"]


def test_text_lines_carry_the_incident_id() -> None:
    from remediator.app import TextFormatter
    line = TextFormatter().format(record(1_785_578_400.25))
    assert line.endswith(" INFO remediator.engine: [inc-1] step 'restart' failed")
    plain = logging.getLogger("remediator").makeRecord(
        "remediator", logging.INFO, __file__, 1, "ready", (), None)
    assert TextFormatter().format(plain).endswith(" INFO remediator: ready")
