"""What an incident's graphs show: the verification query and the alert's own
expression over [first alert − 30 min, now], the threshold as a line, a mark per step.

``incident_graphs`` asks Prometheus (``query_range``) for both. The verification
graph draws the value the check compared (the left side of ``x < 0.05``) with the
number as the threshold. Without Prometheus (not configured, or down) the
verification graph is drawn from the values journaled by its polls, and says so;
the alert's expression is then left out (there is nothing journaled to draw).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from remediator.engine.verification import comparison_parts
from remediator.errors import ActionError
from remediator.model.incident import IncidentView, StepRecord
from remediator.ports.graphs import MAX_SERIES, GraphSpec, Series
from remediator.ports.metrics import MetricsApi

BEFORE = timedelta(minutes=30)
#: points per series asked of Prometheus (the step follows from the window)
POINTS = 240
ALERT_GRAPH = "the alert's expression"


@dataclass(frozen=True)
class Query:
    title: str
    promql: str
    threshold: float | None = None


def alert_expression(view: IncidentView) -> str | None:
    """The alerting rule's expression, from an alert's ``generatorURL`` (``g0.expr``)."""
    for alert in view.alerts:
        url = alert.get("generatorURL") or alert.get("generator_url")
        if not url:
            continue
        expr = parse_qs(urlsplit(str(url)).query).get("g0.expr")
        if expr and expr[0].strip():
            return expr[0].strip()
    return None


def _verified_step(view: IncidentView) -> StepRecord | None:
    """The last step whose verification polled Prometheus."""
    for step in reversed(view.steps):
        if any(p.promql is not None for p in step.polls):
            return step
    return None


def verification_query(step: StepRecord) -> Query | None:
    poll = next((p for p in reversed(step.polls) if p.promql is not None), None)
    if poll is None or poll.promql is None:
        return None
    lhs, comparison = comparison_parts(poll.promql.query)
    threshold = None
    if lhs is not None and comparison is not None:
        threshold = float(comparison.split()[-1])
    return Query(f"verification of step {step.index + 1} ({step.name})", lhs or
                 poll.promql.query, threshold)


def _label(metric: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in metric.items() if k != "__name__"}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or \
        str(metric.get("__name__", "value"))


def _series(result: Sequence[Mapping[str, Any]]) -> tuple[list[Series], int]:
    out = []
    for item in result[:MAX_SERIES]:
        points = []
        for t, v in item.get("values") or []:
            try:
                value = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                points.append((float(t), value))
        out.append(Series(_label(item.get("metric") or {}), tuple(points)))
    return out, max(0, len(result) - MAX_SERIES)


def _from_polls(step: StepRecord) -> list[Series]:
    """The values the polls journaled, per series label."""
    by_label: dict[str, list[tuple[float, float]]] = {}
    for poll in step.polls:
        if poll.promql is None:
            continue
        for sample in poll.promql.samples or poll.promql.lhs_samples:
            try:
                value = float(sample.value)
            except ValueError:
                continue
            if math.isfinite(value):
                by_label.setdefault(_label(sample.labels), []).append(
                    (poll.at.timestamp(), value))
    return [Series(k, tuple(v)) for k, v in list(by_label.items())[:MAX_SERIES]]


def _marks(view: IncidentView) -> tuple[tuple[float, str], ...]:
    return tuple((s.started_at.timestamp(), f"{s.index + 1}. {s.name}")
                 for s in view.steps
                 if s.started_at is not None and not s.action.startswith("escalate:"))


def has_graph(view: IncidentView, metrics: MetricsApi | None) -> bool:
    """Whether ``incident_graphs`` would draw anything (without asking Prometheus)."""
    step = _verified_step(view)
    if step is not None and verification_query(step) is not None:
        return True
    return metrics is not None and alert_expression(view) is not None


async def incident_graphs(view: IncidentView, metrics: MetricsApi | None,
                          now: datetime) -> list[GraphSpec]:
    """The verification graph (if a step polled Prometheus), then the alert's."""
    start = (view.first_alert_at or view.created_at) - BEFORE
    step_s = max(15.0, (now - start).total_seconds() / POINTS)
    span = (start.timestamp(), now.timestamp())
    marks = _marks(view)
    graphs: list[GraphSpec] = []
    step = _verified_step(view)
    query = verification_query(step) if step is not None else None
    if step is not None and query is not None:
        series, left_out, note = await _range(metrics, query.promql, start, now, step_s)
        if series is None:
            series, left_out = _from_polls(step), 0
        graphs.append(GraphSpec(query.title, query.promql, tuple(series), *span,
                                threshold=query.threshold, marks=marks, note=note,
                                left_out=left_out))
    expr = alert_expression(view)
    if expr is not None and metrics is not None:
        series, left_out, note = await _range(metrics, expr, start, now, step_s)
        if series is not None:
            graphs.append(GraphSpec(ALERT_GRAPH, expr, tuple(series), *span,
                                    marks=marks, left_out=left_out))
    return graphs


async def _range(metrics: MetricsApi | None, promql: str, start: datetime, end: datetime,
                 step: float) -> tuple[list[Series] | None, int, str]:
    """(series or None when Prometheus could not be asked, series left out, note)."""
    if metrics is None:
        return None, 0, "Prometheus not configured: the values journaled by the polls"
    try:
        result = await metrics.query_range(promql, start, end, step)
    except ActionError as exc:
        return None, 0, f"Prometheus unavailable ({str(exc)[:60]}): the journaled values"
    series, left_out = _series(result)
    return series, left_out, ""
