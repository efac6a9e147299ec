"""What a promql verification says when a filtering comparison drops every series."""

from __future__ import annotations

from typing import Any

import pytest

from remediator.clock import FakeClock
from remediator.engine.verification import (
    NO_SERIES,
    Verdict,
    Verifier,
    comparison_lhs,
    next_due,
    poll_phase,
    samples_hold,
)
from remediator.errors import TemporaryError
from remediator.model.incident import VerifyPoll
from remediator.model.playbook import Verify

QUERY = ('deployment:http_errors:ratio_rate1m{namespace="shop",deployment="api"} < 0.05')
LHS = 'deployment:http_errors:ratio_rate1m{namespace="shop",deployment="api"}'


def test_an_empty_result_is_a_condition_not_met() -> None:
    assert samples_hold(QUERY, []) == (False, NO_SERIES)
    assert NO_SERIES == "condition not met (the query returned no series)"


@pytest.mark.parametrize(("expr", "lhs"), [
    (QUERY, LHS),
    ("ratio>=1e-3", "ratio"),
    ("sum(rate(x[5m])) / sum(rate(y[5m])) != -2.5", "sum(rate(x[5m])) / sum(rate(y[5m]))"),
    ('up{path="a < 1"} == 1', 'up{path="a < 1"}'),
    ("ratio < bool 0.05", None),                   # bool: never filters
    ("a and b < 1", None),                         # a and (b < 1)
    ("ratio < other", None),                       # vector on both sides
    ("up", None),                                  # no comparison
    ("(ratio < 0.05", None),                       # unbalanced
])
def test_comparison_lhs(expr: str, lhs: str | None) -> None:
    assert comparison_lhs(expr) == lhs


class FakeMetrics:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.queries: list[str] = []

    async def query(self, promql: str, *, max_age: float | None = None
                    ) -> list[dict[str, Any]]:
        self.queries.append(promql)
        answer = self.answers[promql]
        if isinstance(answer, Exception):
            raise answer
        return list(answer)


async def _run(metrics: FakeMetrics, promql: str = QUERY, **extra: Any
               ) -> tuple[Verdict, list[VerifyPoll]]:
    clock = FakeClock(auto_advance=True)
    polls: list[VerifyPoll] = []

    async def firing() -> int:
        return 1

    async def on_poll(poll: VerifyPoll) -> None:
        polls.append(poll)

    verify = Verify.model_validate({"promql": promql, "timeout": "30s", "interval": "10s",
                                    **extra})
    verdict = await Verifier(clock, metrics, None).run(
        verify, context={}, target=None, started_at=clock.now(), firing=firing,
        wait=clock.sleep, on_poll=on_poll)
    return verdict, polls


async def _summary(metrics: FakeMetrics, promql: str = QUERY) -> str:
    verdict, _ = await _run(metrics, promql)
    assert not verdict.held
    return verdict.summary


def _sample(value: str, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [1785578400, value]}


async def test_the_left_side_is_reported() -> None:
    metrics = FakeMetrics({QUERY: [], LHS: [_sample("0.1234")]})
    assert await _summary(metrics) == (
        f"{LHS} 0.1234 (needs < 0.05; held 0s) — not verified after 30s")
    assert metrics.queries[:2] == [QUERY, LHS]


async def test_the_words_of_the_issue() -> None:
    """A named check, held for ``for``: the value, what it needs, how long it held."""
    metrics = FakeMetrics({QUERY: [], LHS: [_sample("0.12")]})
    verdict, polls = await _run(metrics, name="error ratio", timeout="10m", interval="1m",
                                **{"for": "2m"})
    assert verdict.summary == ("error ratio 0.12 (needs < 0.05 for 2m; held 0s) — "
                               "not verified after 10m")
    assert len(polls) == 11           # at 0, 1m, …, 10m
    first = polls[0]
    assert first.verdict == "not_met"
    assert first.held_for == 0
    assert first.needs_for == 120
    assert first.promql is not None
    assert first.promql.query == QUERY
    assert first.promql.comparison == "< 0.05"
    assert first.promql.series == 0
    assert first.promql.lhs == LHS
    assert [s.value for s in first.promql.lhs_samples] == ["0.12"]


async def test_each_poll_says_how_long_it_has_held() -> None:
    ok = [_sample("0.01", pod="a")]
    metrics = FakeMetrics({QUERY: ok})
    verdict, polls = await _run(metrics, timeout="5m", **{"for": "30s"})
    assert verdict.held
    assert [p.held_for for p in polls] == [0, 10, 20, 30]
    assert [p.verdict for p in polls] == ["holds"] * 4
    assert polls[-1].promql is not None
    assert polls[-1].promql.samples[0].labels == {"pod": "a"}
    assert verdict.summary == f"{LHS} 0.01 (needs < 0.05 for 30s; held 30s) — verified"


async def test_at_most_ten_series_are_journaled() -> None:
    many = [_sample(str(i / 100), pod=f"p{i}") for i in range(25)]
    _, polls = await _run(FakeMetrics({"ratio > 0": many}), "ratio > 0")
    assert polls[0].promql is not None
    assert polls[0].promql.series == 25
    assert len(polls[0].promql.samples) == 10


async def test_prometheus_down_is_journaled_as_such_not_as_a_value() -> None:
    metrics = FakeMetrics({QUERY: TemporaryError("Prometheus query failed: connection "
                                                 "refused")})
    verdict, polls = await _run(metrics)
    assert {p.verdict for p in polls} == {"unavailable"}
    assert polls[0].promql is not None
    assert polls[0].promql.samples == []
    assert polls[0].promql.error == "Prometheus query failed: connection refused"
    assert verdict.summary == (f"{LHS}: Prometheus unavailable, no value (Prometheus query "
                               "failed: connection refused) — not verified after 30s")


async def test_several_series_on_the_left() -> None:
    metrics = FakeMetrics({QUERY: [], LHS: [_sample(v) for v in ("0.1", "0.2", "0.3", "0.4")]})
    assert (await _summary(metrics)).startswith(f"{LHS} 0.1, 0.2, 0.3, … (needs < 0.05;")


async def test_no_series_on_the_left_either() -> None:
    metrics = FakeMetrics({QUERY: [], LHS: []})
    assert (await _summary(metrics)).startswith(f"{LHS} no series (needs < 0.05;")


async def test_a_failing_left_query_keeps_the_plain_wording() -> None:
    metrics = FakeMetrics({QUERY: [], LHS: TemporaryError("Prometheus down")})
    assert await _summary(metrics) == (f"{LHS} no series (needs < 0.05; held 0s) — "
                                       "not verified after 30s")


async def test_no_extra_query_when_it_is_not_a_simple_comparison() -> None:
    metrics = FakeMetrics({"up": []})
    assert await _summary(metrics, "up") == ("up no series (needs a sample; held 0s) — "
                                             "not verified after 30s")
    assert set(metrics.queries) == {"up"}


async def test_a_nan_sample_is_a_value_that_does_not_hold() -> None:
    metrics = FakeMetrics({"x == 1": [_sample("NaN")]})
    verdict, polls = await _run(metrics, "x == 1")
    assert polls[0].verdict == "not_met"
    assert verdict.summary.startswith("x NaN (needs == 1; held 0s)")


async def test_a_check_whose_dependency_is_not_configured_fails_at_once() -> None:
    """No Prometheus (or no cluster): the step fails on the first poll with the reason,
    instead of polling until its timeout (the quick start's example hung ~25 minutes)."""
    clock = FakeClock()
    waits: list[float] = []

    async def wait(seconds: float) -> None:
        waits.append(seconds)

    async def firing() -> int:
        return 1

    for verify, needle in (
            ({"promql": "up == 1", "timeout": "10m"}, "Prometheus is not configured"),
            ({"rollout": "complete", "timeout": "10m"}, "no Kubernetes cluster")):
        verdict = await Verifier(clock, None, None).run(
            Verify.model_validate(verify), context={}, target=None, started_at=clock.now(),
            firing=firing, wait=wait)
        assert not verdict.held
        assert needle in verdict.summary
    assert waits == []


class SlowMetrics:
    """Each query takes ``seconds`` of the fake clock; records when each one started."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        self.clock, self.seconds = clock, seconds
        self.started: list[float] = []
        self.max_ages: list[float | None] = []

    async def query(self, promql: str, *, max_age: float | None = None
                    ) -> list[dict[str, Any]]:
        self.started.append(self.clock.now().timestamp())
        self.max_ages.append(max_age)
        await self.clock.sleep(self.seconds)
        return []


@pytest.mark.parametrize(("takes", "polls_at"), [
    (0.0, [0, 10, 20, 30, 40, 50, 60]),
    (3.0, [0, 10, 20, 30, 40, 50, 60]),     # not 0, 13, 26, …: by deadline
    (25.0, [0, 30, 60]),                    # slower than the interval: missed polls skipped
])
async def test_polls_are_scheduled_by_deadline(takes: float, polls_at: list[int]) -> None:
    clock = FakeClock(auto_advance=True)
    metrics = SlowMetrics(clock, takes)
    start = clock.now()

    async def firing() -> int:
        return 1

    verify = Verify.model_validate({"promql": "up", "timeout": "60s", "interval": "10s"})
    verdict = await Verifier(clock, metrics, None).run(
        verify, context={}, target=None, started_at=start, firing=firing, wait=clock.sleep)
    assert not verdict.held
    assert [round(t - start.timestamp()) for t in metrics.started] == polls_at


@pytest.mark.parametrize(("late", "polls_at"), [
    (2.5, [2.5, 10, 20, 30]),        # the first poll late: the next ones on the grid
    (47.0, [47, 50, 60]),            # resumed 47 s in: polls 50 and the deadline at 60
])
async def test_the_grid_starts_when_the_verification_started(
        late: float, polls_at: list[float]) -> None:
    clock = FakeClock(auto_advance=True)
    metrics = SlowMetrics(clock, 0.0)
    start = clock.now()
    await clock.sleep(late)

    async def firing() -> int:
        return 1

    timeout = "30s" if late < 10 else "60s"
    verify = Verify.model_validate({"promql": "up", "timeout": timeout, "interval": "10s"})
    await Verifier(clock, metrics, None).run(
        verify, context={}, target=None, started_at=start, firing=firing, wait=clock.sleep)
    assert [t - start.timestamp() for t in metrics.started] == polls_at


@pytest.mark.parametrize(("phase", "polls_at"), [
    (-0.3, [0, 7, 17, 27, 30]),      # the second poll 0.7 intervals after the first
    (0.25, [0, 12.5, 22.5, 30]),     # 1.25 intervals; the last one at the timeout
    (0.10582, [0, 11.058, 21.058, 30]),  # not a whole microsecond: no poll twice
])
async def test_polls_after_the_first_keep_the_incidents_phase(
        phase: float, polls_at: list[float]) -> None:
    clock = FakeClock(auto_advance=True)
    metrics = SlowMetrics(clock, 0.0)
    start = clock.now()

    async def firing() -> int:
        return 1

    verify = Verify.model_validate({"promql": "up", "timeout": "30s", "interval": "10s"})
    await Verifier(clock, metrics, None).run(
        verify, context={}, target=None, started_at=start, firing=firing, wait=clock.sleep,
        phase=phase)
    assert [round(t - start.timestamp(), 3) for t in metrics.started] == polls_at


def test_a_storms_incidents_poll_spread_over_the_interval() -> None:
    phases = [poll_phase(f"inc-{i:05d}/0") for i in range(5000)]
    assert all(-0.5 <= p < 0.5 for p in phases)
    assert poll_phase("inc-00001/0") == phases[1]            # the same after a restart
    assert poll_phase("inc-00001/1") != phases[1]            # each step its own
    tenths = [sum(int((p + 0.5) * 10) == k for p in phases) for k in range(10)]
    assert 400 < min(tenths) <= max(tenths) < 600            # ~500 in each tenth


def test_next_due() -> None:
    assert next_due(100.0, 100.2, 10.0) == 110.0        # on time: one interval on
    assert next_due(100.0, 109.9, 10.0) == 110.0        # a slow check: still the grid
    assert next_due(100.0, 123.0, 10.0) == 130.0        # two polls missed: skipped
    assert next_due(100.0, 96.0, 10.0) == 100.0         # woken early: the due poll stays
    assert next_due(100.0, 99.9999997, 10.0) == 110.0   # the due poll (clock resolution)


async def test_each_poll_takes_no_answer_older_than_its_previous_poll() -> None:
    """The max_age a poll passes to a sharing adapter: the time since its own previous
    poll came back (3 s checks every 10 s: 7 s), so it is never given that answer again."""
    clock = FakeClock(auto_advance=True)
    metrics = SlowMetrics(clock, 3.0)

    async def firing() -> int:
        return 1

    verify = Verify.model_validate({"promql": "up", "timeout": "30s", "interval": "10s"})
    await Verifier(clock, metrics, None).run(
        verify, context={}, target=None, started_at=clock.now(), firing=firing,
        wait=clock.sleep)
    assert metrics.max_ages == [None, 7.0, 7.0, 7.0]
