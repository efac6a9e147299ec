"""``SharedQueries`` over the real Prometheus adapter (prometheus-api-client, over HTTP to
``FakePrometheus``): identical queries in flight or within the window are sent once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from remediator.adapters import shared_queries
from remediator.adapters.prometheus import PrometheusMetrics
from remediator.adapters.shared_queries import SharedQueries
from remediator.errors import PermanentError, TemporaryError
from remediator.testing.fake_prometheus import FakePrometheus

Q = 'deployment:http_errors:ratio_rate1m{namespace="shop",deployment="cart"} < 0.05'


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def prom() -> AsyncIterator[FakePrometheus]:
    fake = FakePrometheus(delay=0.05)
    await fake.start()
    fake.set(Q, 0.01)
    yield fake
    await fake.stop()


def shared(prom: FakePrometheus, ticks: Ticks, window: float = 5.0,
           max_concurrency: int = 16) -> SharedQueries:
    return SharedQueries(PrometheusMetrics(prom.base_url, timeout=5), window=window,
                         max_concurrency=max_concurrency, monotonic=ticks)


async def test_concurrent_identical_queries_are_sent_once(prom: FakePrometheus) -> None:
    metrics = shared(prom, Ticks())
    results = await asyncio.gather(*[metrics.query(Q) for _ in range(200)])
    assert prom.calls[Q] == 1
    assert (metrics.sent, metrics.shared) == (1, 199)
    assert all(r == results[0] for r in results)
    assert float(results[0][0]["value"][1]) == 0.01


async def test_answer_is_shared_within_the_window_then_asked_again(
        prom: FakePrometheus) -> None:
    ticks = Ticks()
    metrics = shared(prom, ticks, window=5.0)
    await metrics.query(Q)
    for step in range(49):                   # 49 callers spread over the next 4.9 s
        ticks.now = 100.0 + 0.1 * (step + 1)
        await metrics.query(Q)
    assert prom.calls[Q] == 1
    prom.set(Q, 0.2)
    ticks.now = 105.0                         # the window has passed: a fresh answer
    assert float((await metrics.query(Q))[0]["value"][1]) == 0.2
    assert prom.calls[Q] == 2


async def test_different_queries_are_not_shared_and_window_zero_is_off(
        prom: FakePrometheus) -> None:
    metrics = shared(prom, Ticks(), window=0.0)
    await metrics.query(Q)
    await metrics.query(Q)
    await metrics.query("up")
    assert prom.calls == {Q: 2, "up": 1}


async def test_with_window_zero_a_query_in_flight_is_still_sent_once(
        prom: FakePrometheus) -> None:
    metrics = shared(prom, Ticks(), window=0.0)
    await asyncio.gather(*[metrics.query(Q) for _ in range(20)])
    assert prom.calls[Q] == 1
    await metrics.query(Q)                    # nothing kept: asked again
    assert prom.calls[Q] == 2


async def test_errors_are_shared_but_not_kept(prom: FakePrometheus) -> None:
    metrics = shared(prom, Ticks())
    prom.fail(1)
    outcomes = await asyncio.gather(*[metrics.query(Q) for _ in range(5)],
                                    return_exceptions=True)
    assert all(isinstance(o, TemporaryError) for o in outcomes), outcomes
    assert prom.calls[Q] == 1
    assert float((await metrics.query(Q))[0]["value"][1]) == 0.01
    assert prom.calls[Q] == 2
    with pytest.raises(PermanentError):
        await metrics.query("")


async def test_a_cancelled_caller_does_not_cancel_the_others(prom: FakePrometheus) -> None:
    metrics = shared(prom, Ticks())
    first = asyncio.ensure_future(metrics.query(Q))
    second = asyncio.ensure_future(metrics.query(Q))
    await asyncio.sleep(0.01)
    first.cancel()
    assert float((await second)[0]["value"][1]) == 0.01
    assert prom.calls[Q] == 1


async def test_distinct_queries_in_flight_are_capped(prom: FakePrometheus) -> None:
    metrics = shared(prom, Ticks(), max_concurrency=2)
    await asyncio.gather(*[metrics.query(f"up{{i=\"{i}\"}}") for i in range(6)])
    assert sum(prom.calls.values()) == 6
    assert prom.peak == 2


async def test_the_adapter_itself_does_not_retry(prom: FakePrometheus) -> None:
    """prometheus-api-client mounts its own retrying adapter (5xx, refused, 1 s backoff):
    the engine's retry policy must be the only one."""
    prom.fail(1)
    with pytest.raises(TemporaryError, match="503"):
        await PrometheusMetrics(prom.base_url, timeout=5).query(Q)
    assert prom.calls[Q] == 1


async def test_the_adapters_errors_say_what_went_wrong(prom: FakePrometheus) -> None:
    adapter = PrometheusMetrics(prom.base_url, timeout=5)
    try:
        with pytest.raises(PermanentError, match=r"rejected the query '': .*400.*bad_data"):
            await adapter.query("")                 # a query Prometheus refuses
        prom.fail(1)
        with pytest.raises(TemporaryError, match=r"query failed: HTTP Status Code 503"):
            await adapter.query(Q)
        assert adapter.last_ok is True              # it answered
        await prom.stop()
        with pytest.raises(TemporaryError, match=r"Prometheus at .* unreachable: "):
            await adapter.query(Q)
        assert adapter.last_ok is False
    finally:
        await adapter.aclose()


async def test_an_answer_ages_from_when_it_was_asked(prom: FakePrometheus) -> None:
    """A poller whose query took long asks again one interval after it asked: it gets a
    fresh answer, not the one it received a moment ago."""
    ticks = Ticks()
    metrics = shared(prom, ticks, window=5.0)
    slow = asyncio.ensure_future(metrics.query(Q))
    await asyncio.sleep(0.01)
    ticks.now = 104.0                         # answered 4 s after it was asked
    await slow
    ticks.now = 105.0                         # the next poll, one interval after
    await metrics.query(Q)
    assert prom.calls[Q] == 2


async def test_expired_answers_are_swept(prom: FakePrometheus,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared_queries, "SWEEP_AT", 3)
    ticks = Ticks()
    metrics = shared(prom, ticks, window=5.0)
    for i in range(3):
        await metrics.query(f"up{{i=\"{i}\"}}")
    assert len(metrics._answers) == 3
    ticks.now += 5.0                          # all three expired
    await metrics.query("up")
    assert list(metrics._answers) == ["up"]


async def test_range_queries_pass_through_each_time(prom: FakePrometheus) -> None:
    from datetime import UTC, datetime, timedelta
    metrics = shared(prom, Ticks())
    end = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    for _ in range(2):                       # a graph asks its own window: never shared
        [series] = await metrics.query_range(Q, end - timedelta(minutes=1), end, 15)
        assert [float(v) for _, v in series["values"]] == [0.01] * 5
    assert prom.calls[f"range:{Q}"] == 2
    assert (metrics.sent, metrics.shared) == (0, 0)


def threads_calling(adapter: PrometheusMetrics, method: str) -> set[str]:
    """The names of the threads that will call prometheus-api-client's ``method``."""
    threads: set[str] = set()
    real = getattr(adapter._client, method)

    def spy(*args: object, **kwargs: object) -> object:
        threads.add(threading.current_thread().name)
        return real(*args, **kwargs)
    setattr(adapter._client, method, spy)
    return threads


async def test_instant_queries_run_on_the_loop_over_kept_alive_connections(
        prom: FakePrometheus) -> None:
    """Instant queries go out on the event loop (no thread, not prometheus-api-client's
    synchronous ``custom_query``), at most ``workers`` at once over as many kept-alive
    connections: no new connection per query."""
    adapter = PrometheusMetrics(prom.base_url, timeout=5, workers=3)
    threads = threads_calling(adapter, "custom_query")
    try:
        for _ in range(3):
            results = await asyncio.gather(*[adapter.query(Q) for _ in range(12)])
            assert all(float(r[0]["value"][1]) == 0.01 for r in results)
    finally:
        await adapter.aclose()
    assert threads == set()
    assert prom.calls[Q] == 36
    assert prom.peak <= 3
    assert 1 <= len(prom.clients) <= 3


async def test_range_queries_run_on_the_adapters_own_threads(prom: FakePrometheus) -> None:
    from datetime import UTC, datetime, timedelta
    adapter = PrometheusMetrics(prom.base_url, timeout=5, workers=2)
    threads = threads_calling(adapter, "custom_query_range")
    end = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    try:
        await asyncio.gather(*[adapter.query_range(Q, end - timedelta(minutes=1), end, 15)
                               for _ in range(6)])
    finally:
        await adapter.aclose()
    assert threads
    assert all(name.startswith("prometheus") for name in threads)
    assert len(threads) <= 2


async def test_many_live_answers_are_not_swept_on_every_query(
        prom: FakePrometheus, monkeypatch: pytest.MonkeyPatch) -> None:
    """More distinct queries in one window than SWEEP_AT: the answers are swept a
    logarithmic number of times, not once per new answer (each sweep walks them all)."""
    monkeypatch.setattr(shared_queries, "SWEEP_AT", 4)
    ticks = Ticks()
    metrics = shared(prom, ticks, window=5.0)
    for i in range(64):                       # all within the window: nothing expires
        await metrics.query(f"up{{i=\"{i}\"}}")
    assert len(metrics._answers) == 64
    assert metrics.sweeps <= 5                # at 4, 8, 16, 32 (and 64) answers
    ticks.now += 5.0                          # all expired: the next sweep drops them
    for i in range(70):
        await metrics.query(f"down{{i=\"{i}\"}}")
    assert all(k.startswith("down") for k in metrics._answers)


async def test_a_caller_never_gets_an_answer_older_than_its_own_previous_poll(
        prom: FakePrometheus) -> None:
    """A verification polling on its grid (every 5 s, by deadline) with a 5 s window:
    its previous answer is a little under 5 s old when the next poll is due. With
    ``max_age`` (the time since its own previous poll came back) it asks again; another
    caller in the same window still shares."""
    ticks = Ticks()
    metrics = shared(prom, ticks, window=5.0)
    ticks.now = 100.2                         # the poll due at 100.0, 0.2 s late
    await metrics.query(Q)                    # … came back at 100.25
    assert prom.calls[Q] == 1
    ticks.now = 101.0                         # another incident: shares the answer
    await metrics.query(Q, max_age=5.0)
    assert prom.calls[Q] == 1
    prom.set(Q, 0.2)
    ticks.now = 105.0                         # the next poll, due 105.0, on time
    assert float((await metrics.query(Q))[0]["value"][1]) == 0.01     # any: the old one
    assert float((await metrics.query(Q, max_age=4.75))[0]["value"][1]) == 0.2
    assert prom.calls[Q] == 2


async def test_a_request_in_flight_since_before_the_previous_poll_is_not_joined(
        prom: FakePrometheus) -> None:
    ticks = Ticks()
    metrics = shared(prom, ticks, window=5.0)
    prom.delay = 0.2
    slow = asyncio.ensure_future(metrics.query(Q))       # asked at 100.0, answers late
    await asyncio.sleep(0.05)
    ticks.now = 103.0
    joined = await metrics.query(Q, max_age=5.0)         # asked since its last poll: joins
    ticks.now = 104.0
    own = await metrics.query(Q, max_age=2.0)            # its last poll came back at 102
    assert joined == await slow                          # the same answer (its eval time)
    assert own != joined                                 # one asked on its own
    assert prom.calls[Q] == 2


def test_the_environment_is_read_once_as_requests_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from remediator.adapters.prometheus import environment_for
    rc = tmp_path / "netrc"
    rc.write_text("machine prom.example login reader password s3cret\n")
    rc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(rc))
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)      # lower case would win
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal")
    assert environment_for("http://prom.example:9090") == (
        "http://proxy.example:3128", {"Authorization": "Basic cmVhZGVyOnMzY3JldA=="})
    assert environment_for("http://prometheus.internal:9090") == (None, {})
    assert environment_for("http://u:p@prom.example:9090")[1] == {}      # the URL's own
