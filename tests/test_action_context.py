"""``ctx.incident`` from the engine: an ``IncidentSnapshot`` that reads exactly like
``IncidentView.model_dump(mode="json")`` but dumps only what an action looks at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remediator.actions.humans import _context_of, incident_view
from remediator.clock import FakeClock
from remediator.engine.contract import IncidentSnapshot, RunContext
from remediator.model.incident import (
    IncidentState,
    IncidentView,
    StepRecord,
    StepStatus,
    TargetRef,
    TimelineEntry,
)

T0 = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)


def view() -> IncidentView:
    return IncidentView(
        id="inc-1", key="pb/Deployment/prod/api", playbook="pb",
        target=TargetRef(kind="Deployment", namespace="prod", name="api"),
        state=IncidentState.ESCALATED, created_at=T0, updated_at=T0 + timedelta(minutes=3),
        first_alert_at=T0 - timedelta(minutes=2),
        alerts=[{"status": "firing", "labels": {"alertname": "HighErrorRate"}}],
        steps=[StepRecord(index=0, name="restart", action="kubernetes.restart",
                          status=StepStatus.FAILED, error="404", started_at=T0)],
        timeline=[TimelineEntry(at=T0, kind="state", message="incident remediating")],
        context={"jira": {"key": "OPS-1"}}, notify={"slack": {"channel": "#ops"}},
        summary="gave up")


def context(incident: Any) -> RunContext:
    return RunContext(incident_id="inc-1", incident_key="pb/Deployment/prod/api",
                         playbook="pb", step="escalate 1", target=None, alerts=[],
                         clock=FakeClock(T0), incident=incident)


def test_reads_like_the_json_dump() -> None:
    v = view()
    snap = IncidentSnapshot(v)
    dumped = v.model_dump(mode="json")
    assert snap == dumped
    assert dumped == snap
    assert dict(snap) == dumped
    assert list(snap) == list(dumped)
    assert len(snap) == len(dumped)
    assert snap["created_at"] == "2026-08-01T10:00:00Z"
    assert snap["steps"][0]["status"] == "failed"
    assert snap.get("nope") is None
    assert "nope" not in snap
    assert "context" in snap
    with pytest.raises(KeyError):
        snap["nope"]


def test_dumps_only_what_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    v = view()
    calls: list[Any] = []
    real = IncidentView.model_dump

    def spy(self: IncidentView, **kwargs: Any) -> Any:
        calls.append(kwargs.get("include"))
        return real(self, **kwargs)
    monkeypatch.setattr(IncidentView, "model_dump", spy)
    snap = IncidentSnapshot(v)
    assert calls == []                                  # nothing until read
    assert snap["context"] == {"jira": {"key": "OPS-1"}}
    assert snap["context"] is snap["context"]           # once per field
    assert calls == [{"context"}]
    handed_out = snap["context"]
    assert dict(snap) == real(v, mode="json")           # the rest in one dump
    assert calls == [{"context"}, None]
    assert snap["context"] is handed_out                # what was handed out stays
    dict(snap)
    assert len(calls) == 2


def test_humans_use_the_view_itself() -> None:
    v = view()
    ctx = context(IncidentSnapshot(v))
    assert incident_view(ctx) is v
    assert _context_of(ctx) == {"jira": {"key": "OPS-1"}}
    # a plain mapping (tests, other callers) is still validated as before
    plain = incident_view(context(v.model_dump(mode="json")))
    assert plain == v
    assert plain is not v
