"""Many incidents polling Prometheus: queries sent, and how late each poll completes.

``--incidents`` pollers (default 1,000), each standing for an incident whose step
verifies with PromQL every ``--interval`` seconds (default 5) from a random phase,
scheduled by deadline (the next poll is due one interval after the last one was due,
not after it returned). Each poll is one ``MetricsApi.query`` through the real adapter
(prometheus-api-client over HTTP, a worker thread per query) to ``FakePrometheus``
(an aiohttp server in this process, counting the queries it receives), for
``--seconds`` (default 20). Two ports, same load, in the same run:

* ``adapter``: ``PrometheusMetrics`` alone (before: every poll is a query);
* ``shared``: ``SharedQueries`` around it (``prometheus.share_window`` = the interval,
  ``prometheus.max_concurrency`` 16).

``--distinct K`` spreads the pollers over K different queries (default 1: the same
query for all, e.g. a fleet-wide rule; K = incidents: no two alike, nothing to share).
Printed per port: queries received by the fake, queries per interval, polls, and the
lateness of a poll's answer after its due time (p50/p99/max, and p99 as a share of the
interval), and the event loop's lag meanwhile (a 0.1 s timer's lateness, sampled as the
daemon's ``remediator_event_loop_lag_seconds`` is; target p99 < 10 ms). Not the
engine: this measures the port the verification calls.

    .venv/bin/python bench/shared_queries.py [--incidents 1000] [--distinct 1]
                                             [--interval 5] [--seconds 20]
                                             [--workers 4] [--ports adapter shared]

``BENCH_REMEDIATOR_SRC=DIR`` measures the package of an older copy (before/after).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if os.environ.get("BENCH_REMEDIATOR_SRC"):     # an older copy of the package (before/after)
    sys.path.insert(0, os.environ["BENCH_REMEDIATOR_SRC"])

from bench._common import pct, save, table
from remediator.adapters.prometheus import PrometheusMetrics
from remediator.adapters.shared_queries import SharedQueries
from remediator.ports.metrics import MetricsApi
from remediator.testing.fake_prometheus import FakePrometheus

LAG_EVERY = 0.1     # s between two samples of the event loop's lag


def query_of(i: int, distinct: int) -> str:
    return (f'deployment:http_errors:ratio_rate1m{{namespace="shop",'
            f'deployment="svc-{i % distinct:04d}"}} < 0.05')


async def poller(metrics: MetricsApi, promql: str, interval: float, start: float,
                 until: float, late: list[float], errors: list[str]) -> None:
    due = start
    loop = asyncio.get_running_loop()
    while due < until:
        await asyncio.sleep(max(0.0, due - loop.time()))
        try:
            await metrics.query(promql)
        except Exception as exc:
            errors.append(type(exc).__name__)
        late.append(loop.time() - due)
        due += interval


async def loop_lag(lag: list[float], until: float, every: float = LAG_EVERY) -> None:
    """How late a timer runs, every ``every`` s until ``until`` (loop time): what the
    daemon exports as ``remediator_event_loop_lag_seconds`` (same method)."""
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        due = time.perf_counter() + every
        await asyncio.sleep(every)
        lag.append(max(0.0, time.perf_counter() - due))


async def one(port: str, args: argparse.Namespace) -> dict[str, Any]:
    prom = FakePrometheus()
    await prom.start()
    for i in range(args.distinct):
        prom.set(query_of(i, args.distinct), 0.01)
    # --workers: the adapter's own pool (builds that have one); else asyncio.to_thread
    own_pool = "workers" in inspect.signature(PrometheusMetrics).parameters
    adapter = (PrometheusMetrics(prom.base_url, timeout=10, workers=args.workers) if own_pool
               else PrometheusMetrics(prom.base_url, timeout=10))
    metrics: MetricsApi = adapter if port == "adapter" else SharedQueries(
        adapter, window=args.interval, max_concurrency=16)
    loop = asyncio.get_running_loop()
    rng = random.Random(20)
    t0 = loop.time() + 0.5
    until = t0 + args.seconds
    late: list[float] = []
    errors: list[str] = []
    cpu0 = time.process_time()
    lag: list[float] = []
    sampler = asyncio.ensure_future(loop_lag(lag, until))
    await asyncio.gather(*[
        poller(metrics, query_of(i, args.distinct), args.interval,
               t0 + rng.uniform(0, args.interval), until, late, errors)
        for i in range(args.incidents)])
    await sampler
    cpu = time.process_time() - cpu0
    await prom.stop()
    sent = sum(prom.calls.values())
    return {"queries": sent, "queries_per_interval": sent / (args.seconds / args.interval),
            "polls": len(late), "errors": len(errors), "cpu_s": cpu,
            "late_p50_ms": pct(late, 50) * 1e3, "late_p99_ms": pct(late, 99) * 1e3,
            "late_max_ms": max(late) * 1e3,
            "late_p99_of_interval": pct(late, 99) / args.interval,
            "loop_lag_p50_ms": pct(lag, 50) * 1e3, "loop_lag_p99_ms": pct(lag, 99) * 1e3,
            "loop_lag_max_ms": max(lag) * 1e3}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {"incidents": args.incidents, "distinct": args.distinct,
                            "interval_s": args.interval, "seconds": args.seconds}
    for port in args.ports:
        data[port] = await one(port, args)
    rows = []
    for port in args.ports:
        r = data[port]
        rows.append((f"{port}: queries sent (per {args.interval:g}s interval)",
                     f"{r['queries']:,} ({r['queries_per_interval']:,.1f})",
                     f"polls {r['polls']:,}, errors {r['errors']}", f"cpu {r['cpu_s']:.1f}s"))
        rows.append((f"{port}: poll answered late p50 / p99 / max ms",
                     f"{r['late_p50_ms']:.1f} / {r['late_p99_ms']:.1f} / {r['late_max_ms']:.0f}",
                     "p99 < 10% of interval",
                     f"{r['late_p99_of_interval']:.1%}"))
        rows.append((f"{port}: event loop lag p50 / p99 / max ms",
                     f"{r['loop_lag_p50_ms']:.1f} / {r['loop_lag_p99_ms']:.1f} / "
                     f"{r['loop_lag_max_ms']:.0f}", "p99 < 10 ms",
                     "yes" if r["loop_lag_p99_ms"] < 10 else "NO"))
    print(table(rows))
    print(f"results: {save(f'shared-queries-{args.incidents}-{args.distinct}', data)}")
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--distinct", type=int, default=1)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=4,
                        help="the adapter's threads and connections (builds that have them)")
    parser.add_argument("--ports", nargs="+", default=["adapter", "shared"],
                        choices=["adapter", "shared"])
    args = parser.parse_args()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
