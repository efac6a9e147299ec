"""Verification: did the step really fix it? The checks a step's ``verify`` polls.

Checks, all of which must hold at once: ``promql`` (an instant query that
returns at least one sample and no NaN; with a ``bool`` comparison every sample
must be 1), held for ``for``; ``rollout: complete`` (kubectl's rollout-status;
ProgressDeadlineExceeded fails at once); ``alert_resolved`` (a resolved
webhook arrives, or Alertmanager's API no longer lists any of the incident's
firing alerts). Polled every ``interval`` until ``timeout``. A dependency that
is down (Prometheus, the API server, Alertmanager) is not a verdict: it is reported, and
polling goes on until the timeout.

Label values are escaped before they are put into PromQL, so an alert label
cannot change the structure of a query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from remediator.clock import Clock
from remediator.errors import ActionError, TemplateError
from remediator.model.durations import human_duration
from remediator.model.incident import TargetRef
from remediator.model.playbook import Verify
from remediator.ports import AlertsApi, ClusterApi, MetricsApi
from remediator.templating import compile_template

_BOOL = re.compile(r"\bbool\b")
# ``<lhs> <op> <number>`` as the whole expression: the number is the last token.
_SCALAR_COMPARISON = re.compile(
    r"^(?P<lhs>.+?)\s*(?:==|!=|>=|<=|>|<)\s*"
    r"(?P<rhs>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$", re.DOTALL)
# Operators that bind more loosely than a comparison: ``a and b < 1`` is ``a and (b < 1)``.
_LOOSER = re.compile(r"\b(?:and|or|unless)\b", re.IGNORECASE)
NO_SERIES = "condition not met (the query returned no series)"


@dataclass(frozen=True)
class Verdict:
    held: bool
    resolved: bool            # the incident's alerts resolved while we watched
    summary: str


def promql_escape(value: str) -> str:
    """Escape a value for use inside a double-quoted PromQL string literal."""
    return (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            .replace("'", "\\'"))


def promql_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """The template context with every label and annotation value escaped for PromQL."""
    out = dict(context)
    for name in ("labels", "annotations"):
        out[name] = {k: promql_escape(str(v)) for k, v in dict(context.get(name, {})).items()}
    return out


def samples_hold(expr: str, result: list[dict[str, Any]]) -> tuple[bool, str]:
    """Whether an instant-query result counts as "holds", and a short description."""
    if not result:
        return False, NO_SERIES
    values = []
    for sample in result:
        raw = sample.get("value", [None, "NaN"])
        try:
            values.append(float(raw[1]))
        except (TypeError, ValueError, IndexError):
            return False, f"unreadable sample {sample!r}"
    if any(math.isnan(v) for v in values):
        return False, "NaN sample"
    if _BOOL.search(expr) and not all(v == 1 for v in values):
        return False, f"bool comparison false for {sum(v != 1 for v in values)} series"
    shown = ", ".join(f"{v:g}" for v in values[:3])
    return True, f"{len(values)} series ({shown}{', …' if len(values) > 3 else ''})"


def comparison_lhs(expr: str) -> str | None:
    """The left side of a filtering comparison with a number (``ratio < 0.05`` →
    ``ratio``), or None when the expression is not simply that (``bool``, ``and``/
    ``or``/``unless``, a comparison between two vectors, no comparison at all)."""
    m = _SCALAR_COMPARISON.match(expr.strip())
    if m is None or _BOOL.search(expr) or _LOOSER.search(expr):
        return None
    lhs = m.group("lhs").strip()
    return lhs if lhs and lhs.count("(") == lhs.count(")") and \
        lhs.count("{") == lhs.count("}") else None


def _shown(values: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in values[:3]) + (", …" if len(values) > 3 else "")


class Verifier:
    def __init__(self, clock: Clock, metrics: MetricsApi | None,
                 cluster: ClusterApi | None, alerts: AlertsApi | None = None, *,
                 clusters: Mapping[str, ClusterApi] | None = None) -> None:
        self.clock = clock
        self.metrics = metrics
        self.cluster = cluster
        self.clusters = dict(clusters or {})
        self.alerts = alerts

    async def run(self, verify: Verify, *, context: Mapping[str, Any],
                  target: TargetRef | None, started_at: datetime,
                  firing: Callable[[], Awaitable[int]],
                  wait: Callable[[float], Awaitable[None]],
                  alerts: AlertsApi | None = None,
                  incident_alerts: Sequence[Mapping[str, Any]] = ()) -> Verdict:
        """Poll until every check holds (for ``for``), the timeout passes, or the alerts
        resolve. ``wait`` sleeps but returns early when the incident is woken.

        ``alerts`` (else the one given at construction) is asked about the firing
        ones among ``incident_alerts`` (webhook-shaped: ``fingerprint``, ``status``)
        for ``alert_resolved``; without either, only a resolved webhook counts."""
        alerts_api = alerts if alerts is not None else self.alerts
        fingerprints = sorted({str(a["fingerprint"]) for a in incident_alerts
                               if a.get("fingerprint") and a.get("status", "firing") == "firing"})
        query = None
        if verify.promql is not None:
            try:
                query = compile_template(verify.promql).render(promql_context(context))
            except TemplateError as exc:
                return Verdict(False, False, f"promql not rendered: {exc}")
        deadline = started_at.timestamp() + verify.timeout
        held_since: float | None = None
        last = "not checked yet"
        while True:
            if await firing() == 0:
                return Verdict(True, True, "the alert resolved")
            ok, last, fatal = await self._check(verify, query, target, alerts_api,
                                                fingerprints)
            now = self.clock.now().timestamp()
            if fatal:
                return Verdict(False, False, last)
            if ok:
                held_since = now if held_since is None else held_since
                if now - held_since >= verify.hold_for:
                    held = f" for {human_duration(now - held_since)}" if verify.hold_for else ""
                    return Verdict(True, False, f"held{held}: {last}")
            else:
                held_since = None
            if now >= deadline:
                return Verdict(False, False, f"did not hold within "
                                             f"{human_duration(verify.timeout)}: {last}")
            await wait(min(verify.interval, max(0.0, deadline - now)))

    async def _check(self, verify: Verify, query: str | None, target: TargetRef | None,
                     alerts: AlertsApi | None = None,
                     fingerprints: Sequence[str] = ()) -> tuple[bool, str, bool]:
        """(holds, description, fatal). Fatal means it can no longer hold: the rollout
        failed, or the check's dependency is not configured (it fails at once with that
        reason instead of polling until the timeout)."""
        notes: list[str] = []
        ok = True
        if query is not None:
            if self.metrics is None:       # it cannot come up: settings are read at start
                return False, ("Prometheus is not configured (prometheus.url): a promql "
                               "check cannot hold"), True
            try:
                result = await self.metrics.query(query)
            except ActionError as exc:
                return False, f"Prometheus query failed: {exc}", False
            held, text = samples_hold(query, result)
            if not result:
                text = await self._explain_empty(query, text)
            ok = ok and held
            notes.append(f"promql: {text}")
        if verify.rollout is not None:
            cluster = self.cluster if target is None or not target.cluster \
                else self.clusters.get(target.cluster)
            if cluster is None or target is None:
                return False, ("no Kubernetes cluster is configured (kubernetes.mode): a "
                               "rollout check cannot hold"), True
            try:
                status = await cluster.rollout_status(target)
            except ActionError as exc:
                return False, f"rollout status unavailable: {exc}", False
            if status.failed:
                return False, f"rollout failed: {status.message}", True
            ok = ok and status.done
            notes.append(f"rollout: {status.message}")
        if verify.alert_resolved:
            held, text = await self._alerts_gone(alerts, fingerprints)
            ok = ok and held
            notes.append(text)
        return ok, "; ".join(notes), False

    async def _explain_empty(self, query: str, text: str) -> str:
        """For ``<lhs> <op> <number>`` that filtered every series out, add the left
        side's current value(s). Best effort: any doubt leaves ``text`` as it is."""
        lhs = comparison_lhs(query)
        if lhs is None or self.metrics is None:
            return text
        try:
            result = await self.metrics.query(lhs)
        except ActionError:
            return text
        values: list[float] = []
        for sample in result:
            try:
                values.append(float(sample["value"][1]))
            except (KeyError, TypeError, ValueError, IndexError):
                return text
        if not values:
            return text[:-1] + "; its left side has no series either)"
        return text[:-1] + f"; the left side is now {_shown(values)})"

    @staticmethod
    async def _alerts_gone(alerts: AlertsApi | None,
                           fingerprints: Sequence[str]) -> tuple[bool, str]:
        """Whether Alertmanager lists none of ``fingerprints`` any more. An API that is
        down is not a verdict: it does not hold, and the reason is reported."""
        if alerts is None or not fingerprints:
            return False, "alert still firing"
        still: list[str] = []
        for fingerprint in fingerprints:
            try:
                if await alerts.is_firing(fingerprint):
                    still.append(fingerprint)
            except ActionError as exc:
                return False, f"alert still firing (Alertmanager API unavailable: {exc})"
        if still:
            return False, f"alert still firing ({len(still)} of {len(fingerprints)} " \
                          f"listed by Alertmanager)"
        return True, "Alertmanager no longer lists the alert"

