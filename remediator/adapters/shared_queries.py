"""A ``MetricsApi`` that sends an identical PromQL query once and shares the answer.

Thousands of incidents of one playbook verify with the same query (a fleet-wide
recording rule, or the same target folded from many alerts), each polling at its own
phase of the same interval. ``SharedQueries`` wraps the real adapter:

* a query already in flight is not sent again: every caller awaits the same request;
* an answer is reused for ``window`` seconds after it was asked for (``prometheus.share_window``;
  0 turns it off), so callers spread over an interval no longer than the window cost
  one query per interval; never for a caller whose ``max_age`` it exceeds: a
  verification that polls every 5 s with a 5 s window takes only an answer asked since
  its own previous poll, not that poll's own answer again;
* at most ``max_concurrency`` distinct queries are in flight at once
  (``prometheus.max_concurrency``); the others wait their turn.

Errors are shared by the callers of the failed request and never kept: the next caller
asks again. A caller that is cancelled does not cancel the request for the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from remediator.ports.metrics import MetricsApi, Sample

#: answers kept before the expired ones are swept out (then twice as many as are left:
#: with more live answers than this, e.g. 5,000 distinct queries in one window, a sweep
#: per new answer walked all of them, ~0.3 ms of CPU per query)
SWEEP_AT = 1024


class SharedQueries:
    def __init__(self, inner: MetricsApi, *, window: float, max_concurrency: int,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.window = window
        self._monotonic = monotonic
        self._limit = asyncio.Semaphore(max_concurrency)
        self._inflight: dict[str, tuple[float, asyncio.Future[list[Sample]]]] = {}
        self._answers: dict[str, tuple[float, list[Sample]]] = {}
        self._sweep_at = SWEEP_AT
        self.sweeps = 0         # sweeps of the answers (amortized: O(1) per answer)
        self.sent = 0           # queries sent to the inner adapter
        self.shared = 0         # calls answered by a request another caller made

    async def query(self, promql: str, *, max_age: float | None = None) -> list[Sample]:
        now = self._monotonic()
        young = self.window if max_age is None else min(self.window, max_age)
        answer = self._answers.get(promql)
        if answer is not None:
            if now - answer[0] < young:
                self.shared += 1
                return list(answer[1])
            if now - answer[0] >= self.window:
                del self._answers[promql]
        pending = self._inflight.get(promql)
        if pending is not None and (max_age is None or now - pending[0] < max_age):
            self.shared += 1             # in flight: joined whatever the window (even 0)
            return list(await asyncio.shield(pending[1]))
        if pending is not None:          # asked before the caller's previous poll: one of
            return await self._ask(promql, now)     # its own, beside it (not joined)
        future = asyncio.ensure_future(self._send(promql, now))
        self._inflight[promql] = (now, future)
        return list(await asyncio.shield(future))

    async def _ask(self, promql: str, asked: float) -> list[Sample]:
        """One request (within the cap), its answer kept for the window."""
        async with self._limit:
            self.sent += 1
            result = await self.inner.query(promql)
        self._keep(promql, asked, result)
        return list(result)

    def _keep(self, promql: str, asked: float, result: list[Sample]) -> None:
        kept = self._answers.get(promql)
        if self.window > 0 and (kept is None or asked >= kept[0]):     # never an older one
            if len(self._answers) >= self._sweep_at:
                self._sweep()
            # aged from when it was asked: a caller asking again one window after its
            # own (slow) request gets a fresh answer, never its own old one
            self._answers[promql] = (asked, result)

    async def _send(self, promql: str, asked: float) -> list[Sample]:
        """``_ask``, as the request in flight that callers of ``promql`` join."""
        try:
            return await self._ask(promql, asked)
        finally:
            del self._inflight[promql]

    async def query_range(self, promql: str, start: datetime, end: datetime,
                          step: float) -> list[Sample]:
        """Range queries (graphs) are rare and each asks its own window: passed through,
        within the same concurrency cap."""
        async with self._limit:
            return await self.inner.query_range(promql, start, end, step)

    def _sweep(self) -> None:
        now = self._monotonic()
        for key in [k for k, (at, _) in self._answers.items() if now - at >= self.window]:
            del self._answers[key]
        self.sweeps += 1
        self._sweep_at = max(SWEEP_AT, 2 * len(self._answers))
