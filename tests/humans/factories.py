"""Incident snapshots and event sequences for the humans-in-the-loop tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from remediator.model.incident import (
    IncidentState,
    IncidentView,
    StepRecord,
    StepStatus,
    TargetRef,
    TimelineEntry,
)
from remediator.ports.sinks import EventKind, NotificationEvent

T0 = datetime(2026, 8, 1, 10, 0, 0, tzinfo=UTC)

ALERT: dict[str, Any] = {
    "status": "firing",
    "labels": {"alertname": "HighErrorRate", "namespace": "prod", "deployment": "api",
               "severity": "critical"},
    "annotations": {"summary": "5xx ratio above 5% for api",
                    "runbook_url": "https://runbooks.example.com/api-errors"},
    "startsAt": "2026-08-01T09:58:00Z",
    "generatorURL": "http://prometheus.example.com/graph?g0.expr=job%3Ahttp_errors",
    "fingerprint": "a1b2c3d4e5f60718",
}


def make_view(**changes: Any) -> IncidentView:
    base: dict[str, Any] = {
        "id": "inc-1", "key": "api-error-rate/Deployment prod/api", "playbook": "api-error-rate",
        "target": TargetRef(kind="Deployment", namespace="prod", name="api"),
        "state": IncidentState.OPEN, "created_at": T0, "updated_at": T0,
        "first_alert_at": T0 - timedelta(minutes=2), "alerts": [ALERT],
        "summary": "5xx ratio above 5% for api", "notify": {"slack": {"channel": "#ops-alerts"}},
    }
    base.update(changes)
    return IncidentView(**base)


def step(index: int, name: str, status: StepStatus, **more: Any) -> StepRecord:
    action = {"restart": "kubernetes.restart", "scale out": "kubernetes.scale",
              "roll back": "kubernetes.rollback"}.get(name, "kubernetes.restart")
    return StepRecord(index=index, name=name, action=action, status=status, **more)


def lifecycle() -> list[NotificationEvent]:
    """One incident: opened, remediating, restart fails, scale out recovers, closed."""
    restart_running = step(0, "restart", StepStatus.APPLIED,
                           intent={"description": "restart Deployment prod/api"})
    restart_failed = step(0, "restart", StepStatus.FAILED, result="restarted",
                          verify="error ratio still 0.12 after 10m")
    scale_running = step(1, "scale out", StepStatus.VERIFYING, result="scaled 3 → 6")
    scale_ok = step(1, "scale out", StepStatus.SUCCEEDED, result="scaled 3 → 6",
                    verify="rollout complete")
    closed_at = T0 + timedelta(minutes=14)
    views = [
        make_view(),
        make_view(state=IncidentState.REMEDIATING, steps=[restart_running]),
        make_view(state=IncidentState.REMEDIATING, steps=[restart_running]),
        make_view(state=IncidentState.REMEDIATING, steps=[restart_failed]),
        make_view(state=IncidentState.REMEDIATING, steps=[restart_failed, scale_running]),
        make_view(state=IncidentState.RECOVERED, steps=[restart_failed, scale_ok]),
        make_view(state=IncidentState.RECOVERED, steps=[restart_failed, scale_ok],
                  closed_at=closed_at,
                  timeline=[TimelineEntry(at=closed_at, kind="state", message="recovered")]),
    ]
    kinds = [EventKind.OPENED, EventKind.STATE, EventKind.STEP, EventKind.STEP, EventKind.STEP,
             EventKind.STEP, EventKind.CLOSED]
    steps: list[StepRecord | None] = [None, None, restart_running, restart_failed,
                                      scale_running, scale_ok, None]
    return [NotificationEvent(id=i + 1, kind=k, at=T0 + timedelta(minutes=2 * i), incident=v,
                              step=s)
            for i, (k, v, s) in enumerate(zip(kinds, views, steps, strict=True))]
