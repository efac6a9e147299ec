"""What a promql verification says when a filtering comparison drops every series."""

from __future__ import annotations

from typing import Any

import pytest

from remediator.clock import FakeClock
from remediator.engine.verification import NO_SERIES, Verifier, comparison_lhs, samples_hold
from remediator.errors import TemporaryError
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

    async def query(self, promql: str) -> list[dict[str, Any]]:
        self.queries.append(promql)
        answer = self.answers[promql]
        if isinstance(answer, Exception):
            raise answer
        return list(answer)


async def _summary(metrics: FakeMetrics, promql: str = QUERY) -> str:
    clock = FakeClock(auto_advance=True)

    async def firing() -> int:
        return 1

    verify = Verify.model_validate({"promql": promql, "timeout": "30s", "interval": "10s"})
    verdict = await Verifier(clock, metrics, None).run(
        verify, context={}, target=None, started_at=clock.now(), firing=firing,
        wait=clock.sleep)
    assert not verdict.held
    return verdict.summary


def _sample(value: str) -> dict[str, Any]:
    return {"metric": {}, "value": [1785578400, value]}


async def test_the_left_side_is_reported() -> None:
    metrics = FakeMetrics({QUERY: [], LHS: [_sample("0.1234")]})
    assert await _summary(metrics) == (
        "did not hold within 30s: promql: condition not met (the query returned no series; "
        "the left side is now 0.1234)")
    assert metrics.queries[:2] == [QUERY, LHS]


async def test_several_series_on_the_left() -> None:
    metrics = FakeMetrics({QUERY: [], LHS: [_sample(v) for v in ("0.1", "0.2", "0.3", "0.4")]})
    assert (await _summary(metrics)).endswith("the left side is now 0.1, 0.2, 0.3, …)")


async def test_no_series_on_the_left_either() -> None:
    metrics = FakeMetrics({QUERY: [], LHS: []})
    assert (await _summary(metrics)).endswith(
        "(the query returned no series; its left side has no series either)")


async def test_a_failing_left_query_keeps_the_plain_wording() -> None:
    metrics = FakeMetrics({QUERY: [], LHS: TemporaryError("Prometheus down")})
    assert await _summary(metrics) == f"did not hold within 30s: promql: {NO_SERIES}"


async def test_no_extra_query_when_it_is_not_a_simple_comparison() -> None:
    metrics = FakeMetrics({"up": []})
    assert await _summary(metrics, "up") == f"did not hold within 30s: promql: {NO_SERIES}"
    assert set(metrics.queries) == {"up"}


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
