"""A month of alert storms on a fake clock, and the SQLite store's size as days pass.

What it does, in process (no daemon, no HTTP: the store is what grows): for each
simulated day, a few storms at random hours (``--alerts`` over ``--days`` in all, each
storm spread over ~20 targets of one playbook), written through ``SqliteStore`` as the
daemon writes them: ``ingest`` in webhook-sized batches, per incident a step journaled
three times (intent, applied, succeeded), five timeline notes and a context merge, three
notification events delivered to two sinks (console, slack) and the Slack thread's sink
state; ten simulated minutes later the alerts resolve and the incident closes
(recovered). Every simulated hour the retention pass runs (``store.retention.Retention``
on a ``FakeClock`` at the simulated time: prune, then incremental vacuum), and at the end
of each day the file's size is read after a WAL checkpoint (database + WAL).

Runs: ``--retention 7d`` (kept for a week, so that a month shows the bound) and
``none`` (what every release before it did), on fresh files with ``synchronous=NORMAL``
(fsyncs change the time, not the sizes). Then the backlog case: the month kept without
retention is pruned at once (retention switched on at day 30) while webhooks of 10
alerts keep arriving every 10 ms; their ``ingest`` latency (p50, p99, max) during the
pass is printed beside the same load with no pass.

    .venv/bin/python bench/retention.py [--days 30] [--alerts 50000] [--retention 7d]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from remediator.clock import FakeClock
from remediator.metrics import Metrics
from remediator.model.durations import parse_duration
from remediator.model.incident import (
    IncidentState,
    StepRecord,
    StepStatus,
    TargetRef,
    TimelineEntry,
)
from remediator.ports.store import AlertRecord, IngestItem, Routing
from remediator.store.retention import Retention
from remediator.store.sqlite import SqliteStore

START = datetime(2026, 1, 1, tzinfo=UTC)
SINKS = ("console", "slack")
WEBHOOK = 25            # alerts a webhook carries
TARGETS = 20            # targets a storm spreads over
RESULTS = Path(__file__).resolve().parent / "results"


def _alert(n: int, target: int, at: datetime, status: str = "firing") -> AlertRecord:
    labels = {"alertname": "HighErrorRate", "namespace": f"team-{target % 7}",
              "deployment": f"api-{target}", "pod": f"api-{target}-7d9f8c-{n % 97:05d}",
              "severity": "critical", "instance": f"10.0.{target}.{n % 250}:8080",
              "job": "api", "team": f"team-{target % 7}", "cluster": "prod-eu-1"}
    annotations = {"summary": f"5xx ratio above 5% on api-{target}",
                   "description": "The share of HTTP 5xx answers stayed above 5% for 5 "
                                  "minutes; a bad rollout is the usual cause. " * 2,
                   "runbook_url": "https://runbooks.example.com/api/high-error-rate"}
    return AlertRecord(f"{n:016x}", at, at + timedelta(minutes=10) if status == "resolved"
                       else None, status, labels, annotations,
                       "http://prometheus:9090/graph?g0.expr=job%3Ahttp_errors%3Aratio5m")


def _route(target: int) -> Routing:
    return Routing("api-error-rate", f"api-error-rate/Deployment/team-{target % 7}/api-{target}",
                   TargetRef(kind="Deployment", namespace=f"team-{target % 7}",
                             name=f"api-{target}"))


async def _journal(store: SqliteStore, inc: str, at: datetime) -> None:
    rec = StepRecord(index=0, name="restart", action="kubernetes.restart", started_at=at)
    for status in (StepStatus.INTENT, StepStatus.APPLIED, StepStatus.SUCCEEDED):
        rec.status = status
        rec.intent = {"action": "kubernetes.restart", "mutates": True,
                      "summary": "restart Deployment api: set restartedAt",
                      "params": {"restartedAt": at.isoformat()}}
        await store.save_step(inc, "ladder", rec, at)
    for message in ("incident opened by HighErrorRate", "step restart: intent journaled",
                    "step restart: applied (restartedAt set)",
                    "verify: job:http_errors:ratio5m = 0.012 < 0.05 held for 2m",
                    "incident remediating"):
        await store.add_timeline(inc, TimelineEntry(at=at, kind="step", message=message,
                                                    data={"value": 0.012}))
    await store.merge_context(inc, {"storm": False, "notified": True}, at)
    await store.sink_set(inc, "slack:ts", "1767225600.000100")
    for kind in ("opened", "step", "closed"):
        event = await store.append_event(inc, json.dumps({"kind": kind, "incident": inc,
                                                          "message": "x" * 120}), at)
        for sink in SINKS:
            await store.mark_delivered(sink, event)


async def _storm(store: SqliteStore, first: int, count: int, at: datetime) -> None:
    """``count`` alerts over TARGETS targets; incidents journaled, then all resolved and
    closed ten minutes later."""
    alerts = [(first + i, random.randrange(TARGETS)) for i in range(count)]
    opened: list[str] = []
    for i in range(0, count, WEBHOOK):
        items = [IngestItem(_alert(n, t, at), (_route(t),)) for n, t in alerts[i:i + WEBHOOK]]
        for outcome in await store.ingest(items, at):
            opened.extend(outcome.created)
    for inc in opened:
        await _journal(store, inc, at)
    later = at + timedelta(minutes=10)
    for i in range(0, count, WEBHOOK):
        await store.ingest([IngestItem(_alert(n, t, at, "resolved"), ())
                            for n, t in alerts[i:i + WEBHOOK]], later)
    for inc in opened:
        await store.set_state(inc, IncidentState.RECOVERED, later,
                              summary="verified: 5xx ratio back under 5%")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


async def _checkpoint(store: SqliteStore) -> None:
    await store._write(lambda c: None)
    await asyncio.get_running_loop().run_in_executor(
        store._checkpointer,
        lambda: store._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())


async def month(path: Path, days: int, alerts: int, retention: float | None
                ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    random.seed(7)
    store = SqliteStore(path, synchronous="NORMAL")
    await store.open()
    clock = FakeClock(START)
    pass_ = Retention(store, clock, Metrics(), retention=retention, interval=3600.0,
                      sinks=SINKS)
    per_day = alerts // days
    pruned: dict[str, int] = {}
    sizes: list[dict[str, Any]] = []
    sent = 0
    try:
        for day in range(days):
            hours = sorted(random.sample(range(24), 4))
            shares = [per_day // 4] * 3 + [per_day - 3 * (per_day // 4)]
            for hour in range(24):
                now = START + timedelta(days=day, hours=hour)
                await clock.advance((now - clock.now()).total_seconds())
                if hour in hours:
                    n = shares[hours.index(hour)]
                    await _storm(store, sent, n, now)
                    sent += n
                counts = await pass_.prune_once()
                for table, rows in (counts or {}).items():
                    pruned[table] = pruned.get(table, 0) + rows
            await _checkpoint(store)
            sizes.append({"day": day + 1, "alerts": sent, "bytes": _size(path)})
            print(f"  day {day + 1:2d}: {sent:6d} alerts, {_size(path) / 1e6:6.1f} MB",
                  flush=True)
    finally:
        await store.close()
    return sizes, pruned


async def backlog(path: Path, retention: float) -> dict[str, Any]:
    """Prune a kept month at once while webhooks arrive; their latency with and without."""
    store = SqliteStore(path, synchronous="NORMAL")
    await store.open()
    try:
        end = START + timedelta(days=31)
        quiet = await _latencies(store, end, 2.0, None)
        pass_ = Retention(store, FakeClock(end), Metrics(), retention=retention,
                          interval=3600.0, sinks=SINKS)
        started = time.perf_counter()
        pruning = asyncio.ensure_future(pass_.prune_once())
        during = await _latencies(store, end, None, pruning)
        seconds = time.perf_counter() - started
        counts = pruning.result() or {}
    finally:
        await store.close()
    return {"pass_seconds": round(seconds, 2), "rows": sum(counts.values()),
            "quiet": quiet, "during": during}


async def _latencies(store: SqliteStore, at: datetime, seconds: float | None,
                     until: asyncio.Future[Any] | None) -> dict[str, float]:
    """Webhooks of 10 new alerts every 10 ms: ``ingest`` latency in ms."""
    out: list[float] = []
    deadline = time.perf_counter() + (seconds or 1e9)
    n = 10_000_000 + random.randrange(1_000_000) * 100
    while time.perf_counter() < deadline and not (until is not None and until.done()):
        items = [IngestItem(_alert(n + i, i, at), ()) for i in range(10)]
        n += 10
        t = time.perf_counter()
        await store.ingest(items, at)
        out.append((time.perf_counter() - t) * 1000)
        await asyncio.sleep(0.01)
    out.sort()
    return {"webhooks": len(out), "p50_ms": round(statistics.median(out), 2),
            "p99_ms": round(out[int(len(out) * 0.99) - 1], 2), "max_ms": round(out[-1], 2)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--alerts", type=int, default=50_000)
    parser.add_argument("--retention", default="7d")
    args = parser.parse_args()
    keep = parse_duration(args.retention)
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as tmp:
        runs: dict[str, Any] = {}
        for name, retention in ((f"retention {args.retention}", keep), ("none", None)):
            print(f"{name}:", flush=True)
            sizes, pruned = await month(Path(tmp) / f"{name[:4]}.db", args.days, args.alerts,
                                        retention)
            runs[name] = {"sizes": sizes, "pruned": pruned}
        print("backlog: the month kept without retention, pruned at once", flush=True)
        runs["backlog"] = await backlog(Path(tmp) / "none.db", keep)
    print(f"\n{'day':>4} {'alerts':>7} " + " ".join(f"{n:>16}" for n in runs if n != "backlog"))
    names = [n for n in runs if n != "backlog"]
    for i in range(args.days):
        row = [runs[n]["sizes"][i] for n in names]
        print(f"{row[0]['day']:>4} {row[0]['alerts']:>7} "
              + " ".join(f"{r['bytes'] / 1e6:>13.1f} MB" for r in row))
    for n in names:
        print(f"{n}: pruned {runs[n]['pruned']}")
    print(f"backlog: {json.dumps(runs['backlog'])}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "retention.json").write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
