"""The web console's pages with many incidents: p99 of the list page and of an
incident page, on SQLite or PostgreSQL, against the JSON list of the same rows as the
baseline.

What it does, in process: a SQLite store with ``--incidents`` incidents (10
playbooks, one in five escalated) holding ``--alerts-per`` alerts each, filled as
``bench/incident_pages.py`` fills it (``SqliteStore.ingest``); the incident measured
gets three journaled steps and a dozen timeline entries. Then the real app
(``server.http.build_app`` plus ``console.setup``, no auth configured, aiohttp's test
server on this loop) is asked ``--requests`` times (after 10 warm-up ones) for:

* baseline: ``GET /api/v1/incidents?limit=50`` (JSON summaries of one page);
* ``GET /`` (the list page, 50 rows, counts per state, last step per row);
* ``GET /?state=escalated``, ``GET /?namespace=prod&q=app-9`` (a text filter that
  matches soon) and ``GET /?q=no-such-text`` (one that matches nothing: the store's
  query reads every incident);
* ``GET /incidents/{id}`` (alerts, ladder, timeline) and its live fragment.

Latency at the client (request to body read). ``--store postgresql``: a fresh database
on a throw-away PostgreSQL server (tests/ha/pgserver.py on 127.0.0.1, fsync and
synchronous_commit on, stopped at the end). Writes
``bench/results/console_pages.json`` (``console_pages-postgresql.json``).

    .venv/bin/python bench/console_pages.py [--incidents 10000] [--alerts-per 10]
                                            [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp.test_utils import TestClient, TestServer

from bench._common import STORES, result_name, store_for, store_label
from bench.incident_pages import PLAYBOOK, START, fill, pct
from remediator import console
from remediator.actions import registry
from remediator.clock import FakeClock
from remediator.engine.core import Engine
from remediator.loader import load
from remediator.model.incident import StepRecord, StepStatus, TimelineEntry
from remediator.server.http import ServerConfig, build_app
from remediator.store.postgres import PostgresStore
from remediator.store.sqlite import SqliteStore

RESULTS = Path(__file__).resolve().parent / "results"


async def journal_one(store: Any, incident_id: str) -> None:
    at = START + timedelta(hours=1)
    for index, status in enumerate((StepStatus.FAILED, StepStatus.FAILED,
                                    StepStatus.SUCCEEDED)):
        rec = StepRecord(index=index, name=f"step {index}", action="kubernetes.restart",
                         status=status, attempts=1, result="restarted Deployment prod/app-1",
                         intent={"description": "restart Deployment prod/app-1",
                                 "api_calls": ["PATCH /apis/apps/v1/…"], "mutates": True},
                         verify="held: rollout complete", started_at=at, finished_at=at)
        entries = tuple(TimelineEntry(at=at, kind="step", message=f"step {index}: {k}")
                        for k in range(4))
        await store.journal(incident_id, at, step=("ladder", rec), timeline=entries)


async def timed(client: TestClient[Any, Any], path: str) -> float:
    t = time.perf_counter()
    resp = await client.get(path)
    await resp.read()
    took = (time.perf_counter() - t) * 1000
    assert resp.status == 200, (path, resp.status)
    return took


def line(name: str, ms: list[float], base: float | None) -> dict[str, Any]:
    out = {"case": name, "requests": len(ms), "p50_ms": round(pct(ms, 50), 2),
           "p99_ms": round(pct(ms, 99), 2), "max_ms": round(max(ms), 2)}
    ratio = f"  x{out['p50_ms'] / base:.1f} of the baseline's p50" if base else ""
    print(f"{name:<46} p50 {out['p50_ms']:>7.2f} ms  p99 {out['p99_ms']:>7.2f} ms  "
          f"max {out['max_ms']:>7.2f} ms{ratio}", flush=True)
    return out


async def measure(args: argparse.Namespace, db: str) -> list[dict[str, Any]]:
    store: Any = SqliteStore(Path(db)) if args.store == "sqlite" else PostgresStore(db)
    await store.open()
    t = time.perf_counter()
    await fill(store, args.incidents, args.alerts_per)
    if args.store == "postgresql":
        # the planner's statistics, as autovacuum's autoanalyze gathers them soon after a
        # bulk load: without them the list query picks a plan 15x slower (17 ms, not 1 ms)
        import asyncpg
        conn = await asyncpg.connect(db)
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
    ids = await store.active_incident_ids()
    target = ids[len(ids) // 2]
    await journal_one(store, target)
    print(f"filled {args.incidents:,} incidents, {args.incidents * args.alerts_per:,} "
          f"alerts in {time.perf_counter() - t:.1f} s", flush=True)
    engine = Engine(store=store, playbooks=load(PLAYBOOK), clock=FakeClock(),
                    catalogue=registry)
    app, api = build_app(engine, ServerConfig())
    console.setup(app, api)
    api.ready = True
    client = TestClient(TestServer(app))
    await client.start_server()
    cases = [("baseline: GET /api/v1/incidents?limit=50", "/api/v1/incidents?limit=50"),
             ("console: GET /", "/"),
             ("console: GET /?state=escalated", "/?state=escalated"),
             ("console: GET /?namespace=prod&q=app-9", "/?namespace=prod&q=app-9"),
             ("console: GET /?q=no-such-text (matches none)", "/?q=no-such-text"),
             ("console: GET /incidents/{id}", f"/incidents/{target}"),
             ("console: GET /incidents/{id}?fragment=1", f"/incidents/{target}?fragment=1")]
    results: list[dict[str, Any]] = []
    base: float | None = None
    try:
        for name, path in cases:
            for _ in range(10):
                await timed(client, path)
            ms = [await timed(client, path) for _ in range(args.requests)]
            results.append(line(name, ms, base))
            base = base or results[-1]["p50_ms"]
    finally:
        await client.close()
        await engine.stop(grace=0.1)
        await store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--alerts-per", type=int, default=10)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--store", choices=STORES, default="sqlite")
    args = parser.parse_args()
    print(f"{platform.node()} {platform.machine()} python {platform.python_version()}, "
          f"{datetime.now(UTC):%Y-%m-%d}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, \
            store_for(args.store, Path(tmp), "console") as (db, info):
        print(f"store: {store_label(info)}", flush=True)
        results = asyncio.run(measure(args, db))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{result_name('console_pages', args.store)}.json").write_text(json.dumps(
        {"incidents": args.incidents, "alerts_per": args.alerts_per, "store": info,
         "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
