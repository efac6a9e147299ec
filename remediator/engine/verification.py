"""Verification: did the step really fix it? The checks a step's ``verify`` polls.

Checks, all of which must hold at once: ``promql`` (an instant query that
returns at least one sample and no NaN; with a ``bool`` comparison every sample
must be 1), held for ``for``; ``rollout: complete`` (kubectl's rollout-status;
ProgressDeadlineExceeded fails at once); ``alert_resolved`` (a resolved
webhook arrives, or Alertmanager's API no longer lists any of the incident's
firing alerts). Polled at once, then every ``interval`` until ``timeout``, by deadline
(the polls stay on the grid ``start + (k + phase) * interval`` however long a check
takes; ``phase``, in [-0.5, 0.5), comes from a hash of the incident and step, so that a
storm's incidents, which start verifying together, poll spread over the interval
instead of all at once, as Prometheus spreads its scrapes). A dependency that
is down (Prometheus, the API server, Alertmanager) is not a verdict: it is reported, and
polling goes on until the timeout.

Label values are escaped before they are put into PromQL, so an alert label
cannot change the structure of a query.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from remediator.clock import Clock
from remediator.errors import ActionError, TemplateError
from remediator.model.durations import human_duration
from remediator.model.incident import (
    SERIES_KEPT,
    PromqlPoll,
    SeriesValue,
    TargetRef,
    VerifyPoll,
)
from remediator.model.playbook import Verify
from remediator.ports import AlertsApi, ClusterApi, MetricsApi
from remediator.templating import compile_template

_BOOL = re.compile(r"\bbool\b")
# ``<lhs> <op> <number>`` as the whole expression: the number is the last token.
_SCALAR_COMPARISON = re.compile(
    r"^(?P<lhs>.+?)\s*(?P<op>==|!=|>=|<=|>|<)\s*"
    r"(?P<rhs>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$", re.DOTALL)
# Operators that bind more loosely than a comparison: ``a and b < 1`` is ``a and (b < 1)``.
_LOOSER = re.compile(r"\b(?:and|or|unless)\b", re.IGNORECASE)
NO_SERIES = "condition not met (the query returned no series)"
#: the most characters of a query used as the name of its value
NAME_MAX = 80

OnPoll = Callable[[VerifyPoll], Awaitable[None]]


@dataclass
class _Check:
    """What one poll of every check found."""

    ok: bool = True
    fatal: str | None = None           # it can no longer hold: why
    unavailable: bool = False          # a dependency could not be asked
    promql: PromqlPoll | None = None
    rollout: str | None = None
    alerts: str | None = None


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


def comparison_parts(expr: str) -> tuple[str | None, str | None]:
    """(left side of a filtering comparison or None, the comparison in words: "< 0.05",
    "bool", or None when any sample holds)."""
    if _BOOL.search(expr):
        return None, "bool"
    lhs = comparison_lhs(expr)
    m = _SCALAR_COMPARISON.match(expr.strip())
    if lhs is None or m is None:
        return None, None
    return lhs, f"{m.group('op')} {m.group('rhs')}"


def series_values(result: Sequence[Mapping[str, Any]]) -> list[SeriesValue]:
    """The first ``SERIES_KEPT`` series of an instant-query result, as journaled."""
    out = []
    for sample in result[:SERIES_KEPT]:
        metric = sample.get("metric")
        raw = sample.get("value")
        value = raw[1] if isinstance(raw, list | tuple) and len(raw) > 1 else raw
        out.append(SeriesValue(labels={str(k): str(v) for k, v in dict(
            metric if isinstance(metric, Mapping) else {}).items()}, value=str(value)))
    return out


def _values(samples: Sequence[SeriesValue], total: int) -> str:
    shown = []
    for s in samples[:3]:
        try:
            value = float(s.value)
        except ValueError:
            value = math.nan
        shown.append(f"{value:g}" if math.isfinite(value) else s.value)
    return ", ".join(shown) + (", …" if total > 3 else "")


def promql_words(p: PromqlPoll, name: str | None, hold_for: float, held: float) -> str:
    """``error ratio 0.12 (needs < 0.05 for 2m; held 0s)``."""
    label = name or p.lhs or comparison_lhs(p.query) or p.query
    if len(label) > NAME_MAX:
        label = label[:NAME_MAX - 1] + "…"
    if p.error is not None:
        return f"{label}: Prometheus unavailable, no value ({p.error})"
    if p.samples:
        values = _values(p.samples, p.series)
    elif p.lhs_samples:
        values = _values(p.lhs_samples, p.lhs_series)
    else:
        values = "no series"
    needs = {None: "a sample", "bool": "1 on every series"}.get(p.comparison, p.comparison)
    hold = f" for {human_duration(hold_for)}" if hold_for else ""
    return f"{label} {values} (needs {needs}{hold}; held {human_duration(held)})"


#: A poll this close before its due time is the due poll (seconds).
DUE_SLACK = 0.001


def spread(key: str) -> float:
    """A share in [0, 1) of ``key``'s own, the same in every process and after a restart
    (a crc32): what spreads over time the work of incidents that came together."""
    return zlib.crc32(key.encode()) / 2 ** 32


def poll_phase(key: str) -> float:
    """Where in its interval a verification polls after its first poll, as a share of
    the interval in [-0.5, 0.5): ``spread`` of ``key`` (the incident and the step). The
    second poll comes 0.5 to 1.5 intervals after the first."""
    return spread(key) - 0.5


def next_due(due: float, now: float, interval: float) -> float:
    """When the poll after the one due at ``due`` is due, seen at ``now``: on the grid
    ``due + k * interval``, by deadline rather than ``interval`` after the check returned
    (a check that takes time, or 5,000 incidents polling at once, would otherwise push
    every poll later and later). Polls missed by a check slower than the interval are
    skipped, not caught up in a burst; a poll before ``due`` (the incident was woken)
    keeps it, unless it was within ``DUE_SLACK`` of it: that was the due poll (the
    clock's datetimes have microseconds; a grid with a phase does not)."""
    if due > now + DUE_SLACK:
        return due
    return due + (max(0, math.floor((now - due) / interval)) + 1) * interval


def make_poll(verify: Verify, check: _Check, at: datetime, held: float) -> VerifyPoll:
    """The journal entry of one poll, with its words."""
    verdict: Literal["holds", "not_met", "unavailable", "failed"] = (
        "failed" if check.fatal is not None else "unavailable" if check.unavailable
        else "holds" if check.ok else "not_met")
    words = [promql_words(check.promql, verify.name, verify.hold_for, held)
             if check.promql is not None else None, check.rollout, check.alerts]
    text = "; ".join(w for w in words if w) or (check.fatal or "")
    return VerifyPoll(at=at, verdict=verdict, held_for=held, needs_for=verify.hold_for,
                      promql=check.promql, rollout=check.rollout, alerts=check.alerts,
                      text=text)


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
                  incident_alerts: Sequence[Mapping[str, Any]] = (),
                  on_poll: OnPoll | None = None, phase: float = 0.0) -> Verdict:
        """Poll until every check holds (for ``for``), the timeout passes, or the alerts
        resolve. ``wait`` sleeps but returns early when the incident is woken; every
        poll (the values seen, how long they have held) is handed to ``on_poll``. The
        first poll is at once, the others on the grid ``started_at + (k + phase) x
        interval`` (``poll_phase``).

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
        # the first poll at once; the next one due on the grid of the verification's
        # start and phase, so a first poll that came late (the journal write before it,
        # a resume after a restart) does not move every later one
        due = started_at.timestamp() + (1 + phase) * verify.interval
        answered: float | None = None           # when the previous poll came back
        while True:
            if await firing() == 0:
                return Verdict(True, True, "the alert resolved")
            # a shared answer must have been asked after this incident's previous poll
            # came back: never that poll's own answer again
            max_age = None if answered is None else \
                self.clock.now().timestamp() - answered
            check = await self._check(verify, query, target, alerts_api, fingerprints,
                                      max_age)
            now = answered = self.clock.now().timestamp()
            held_since = (held_since if held_since is not None else now) if check.ok else None
            poll = make_poll(verify, check, self.clock.now(),
                             0.0 if held_since is None else now - held_since)
            if on_poll is not None:
                await on_poll(poll)
            if check.fatal is not None:
                return Verdict(False, False, check.fatal)
            if check.ok and poll.held_for >= verify.hold_for:
                return Verdict(True, False, f"{poll.text} — verified")
            if now >= deadline:
                return Verdict(False, False, f"{poll.text} — not verified after "
                                             f"{human_duration(verify.timeout)}")
            due = next_due(due, now, verify.interval)
            await wait(max(0.0, min(due, deadline) - now))

    async def _check(self, verify: Verify, query: str | None, target: TargetRef | None,
                     alerts: AlertsApi | None = None,
                     fingerprints: Sequence[str] = (),
                     max_age: float | None = None) -> _Check:
        """One poll of every check. ``fatal`` means it can no longer hold: the rollout
        failed, or the check's dependency is not configured (it fails at once with that
        reason instead of polling until the timeout)."""
        out = _Check()
        if query is not None:
            if self.metrics is None:       # it cannot come up: settings are read at start
                return _Check(False, fatal="Prometheus is not configured (prometheus.url): "
                                           "a promql check cannot hold")
            out.promql, out.ok = await self._promql(query, max_age)
            out.unavailable = out.promql.error is not None
        if verify.rollout is not None:
            cluster = self.cluster if target is None or not target.cluster \
                else self.clusters.get(target.cluster)
            if cluster is None or target is None:
                return _Check(False, fatal="no Kubernetes cluster is configured "
                                           "(kubernetes.mode): a rollout check cannot hold")
            try:
                status = await cluster.rollout_status(target)
            except ActionError as exc:
                out.ok, out.unavailable = False, True
                out.rollout = f"rollout status unavailable: {exc}"
            else:
                if status.failed:
                    return _Check(False, fatal=f"rollout failed: {status.message}",
                                  rollout=f"rollout failed: {status.message}")
                out.ok = out.ok and status.done
                out.rollout = f"rollout: {status.message}"
        if verify.alert_resolved:
            held, out.alerts, down = await self._alerts_gone(alerts, fingerprints)
            out.ok = out.ok and held
            out.unavailable = out.unavailable or down
        return out

    async def _promql(self, query: str, max_age: float | None = None
                      ) -> tuple[PromqlPoll, bool]:
        """(what it saw, whether it holds). For ``<lhs> <op> <number>`` that filtered
        every series out, also the left side's current value(s) (best effort: a failure
        leaves them out). ``max_age``: how old a shared answer may be."""
        assert self.metrics is not None
        lhs, comparison = comparison_parts(query)
        poll = PromqlPoll(query=query, comparison=comparison)
        try:
            result = await self.metrics.query(query, max_age=max_age)
        except ActionError as exc:
            poll.error = str(exc)
            return poll, False
        poll.series, poll.samples = len(result), series_values(result)
        holds = samples_hold(query, result)[0]
        if result or lhs is None:
            return poll, holds
        try:
            left = await self.metrics.query(lhs, max_age=max_age)
        except ActionError:
            return poll, holds
        poll.lhs, poll.lhs_series, poll.lhs_samples = lhs, len(left), series_values(left)
        return poll, holds

    @staticmethod
    async def _alerts_gone(alerts: AlertsApi | None,
                           fingerprints: Sequence[str]) -> tuple[bool, str, bool]:
        """(held, words, unavailable): whether Alertmanager lists none of
        ``fingerprints`` any more. An API that is down is not a verdict: it does not
        hold, and the reason is reported."""
        if alerts is None or not fingerprints:
            return False, "alert still firing", False
        still: list[str] = []
        for fingerprint in fingerprints:
            try:
                if await alerts.is_firing(fingerprint):
                    still.append(fingerprint)
            except ActionError as exc:
                return (False, f"alert still firing (Alertmanager API unavailable: {exc})",
                        True)
        if still:
            return False, f"alert still firing ({len(still)} of {len(fingerprints)} " \
                          f"listed by Alertmanager)", False
        return True, "Alertmanager no longer lists the alert", False

