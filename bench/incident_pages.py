"""The incident list API with many incidents: p99 of a page of 100, before and after
cursor pagination, and of one incident, on SQLite or PostgreSQL.

What it does, in process: a store with ``--incidents`` incidents (10 playbooks, one in
five escalated) holding ``--alerts-per`` alerts each, written through the store's
``ingest`` as the daemon writes them; then the real HTTP app
(``server.http.build_app``, aiohttp's test server on this loop, no engine work: the
incidents belong to playbooks nobody loaded) is asked ``--requests`` times for:

* before: today's list before this change, ``?limit=100``: ``list_incidents`` (each row
  with its alerts) dumped row by row, served on the same app at ``/bench/before``;
* after: ``GET /api/v1/incidents`` (summaries, keyset on ``(created_at, id)``): the
  first page, every page of 100 followed by its cursor to the end, and the first page
  filtered by ``state`` and by ``playbook``;
* one incident: ``GET /api/v1/incidents/{id}`` of 300 incidents spread over the table
  (each with its 10 alerts), in turn.

Latency is measured at the client (request to body read), so HTTP is in both.
``--store postgresql``: a fresh database on a throw-away PostgreSQL server
(tests/ha/pgserver.py on 127.0.0.1, fsync and synchronous_commit on, stopped at the
end), ``ANALYZE``d after the fill as autovacuum's autoanalyze would soon after a bulk
load. Writes ``bench/results/incident_pages.json`` (``incident_pages-postgresql.json``).

    .venv/bin/python bench/incident_pages.py [--incidents 10000] [--alerts-per 10]
                                             [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bench._common import STORES, result_name, store_for, store_label
from remediator.actions import registry
from remediator.clock import FakeClock
from remediator.engine.core import Engine
from remediator.loader import load
from remediator.model.incident import IncidentState, TargetRef
from remediator.ports.store import AlertRecord, IngestItem, Routing, Store
from remediator.server.http import ServerConfig, build_app
from remediator.store.postgres import PostgresStore
from remediator.store.sqlite import SqliteStore

TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START = datetime(2026, 1, 1, tzinfo=UTC)
RESULTS = Path(__file__).resolve().parent / "results"
PLAYBOOK = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: loaded}
spec:
  match: ['alertname="NeverFires"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
  steps:
    - {name: wait, action: wait, with: {duration: 1h}}
"""


async def fill(store: Store, incidents: int, alerts_per: int) -> None:
    batch: list[IngestItem] = []
    at = START
    for n in range(incidents):
        pb = f"pb{n % 10}"
        target = TargetRef(kind="Deployment", namespace="prod", name=f"app-{n}")
        route = (Routing(pb, f"{pb}/Deployment/prod/app-{n}", target),)
        for k in range(alerts_per):
            fp = f"{n:010x}{k:06x}"
            labels = {"alertname": "HighErrorRate", "namespace": "prod",
                      "deployment": f"app-{n}", "pod": f"app-{n}-{k}"}
            batch.append(IngestItem(AlertRecord(fp, at, None, "firing", labels,
                                                {"summary": "error rate above 5%"}), route))
        if len(batch) >= 500:
            await store.ingest(batch, at)
            batch, at = [], at + timedelta(seconds=1)
    if batch:
        await store.ingest(batch, at)
    ids = await store.active_incident_ids()
    for incident_id in ids[::5]:
        await store.set_state(incident_id, IncidentState.ESCALATED, at)


def before_handler(store: Store) -> Any:
    """The list handler before cursor pagination (its body, unchanged)."""
    async def handler(request: web.Request) -> web.Response:
        limit = min(1000, max(1, int(request.query.get("limit", "100"))))
        views = await store.list_incidents(state=request.query.get("state"), limit=limit)
        return web.json_response({"incidents": [v.model_dump(mode="json") for v in views]})
    return handler


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 \
        else max(values)


async def timed(client: TestClient[Any, Any], path: str) -> tuple[float, dict[str, Any]]:
    t = time.perf_counter()
    resp = await client.get(path, headers=AUTH)
    body = await resp.json()
    took = (time.perf_counter() - t) * 1000
    assert resp.status == 200, body
    return took, body


def line(name: str, ms: list[float], rows: int) -> dict[str, Any]:
    out = {"case": name, "requests": len(ms), "rows": rows, "p50_ms": round(pct(ms, 50), 2),
           "p99_ms": round(pct(ms, 99), 2), "max_ms": round(max(ms), 2)}
    print(f"{name:<44} {len(ms):>5} req  {rows:>4} rows  p50 {out['p50_ms']:>7.2f} ms  "
          f"p99 {out['p99_ms']:>7.2f} ms  max {out['max_ms']:>7.2f} ms", flush=True)
    return out


async def analyze(url: str) -> None:
    """PostgreSQL: the planner's statistics, as autovacuum's autoanalyze gathers them
    soon after a bulk load (without them the list query picks a 15x slower plan)."""
    import asyncpg
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def measure(args: argparse.Namespace, db: str) -> list[dict[str, Any]]:
    store: Any = SqliteStore(Path(db)) if args.store == "sqlite" else PostgresStore(db)
    await store.open()
    t = time.perf_counter()
    await fill(store, args.incidents, args.alerts_per)
    if args.store == "postgresql":
        await analyze(db)
    print(f"filled {args.incidents:,} incidents, {args.incidents * args.alerts_per:,} "
          f"alerts in {time.perf_counter() - t:.1f} s", flush=True)
    engine = Engine(store=store, playbooks=load(PLAYBOOK), clock=FakeClock(),
                    catalogue=registry)
    app, api = build_app(engine, ServerConfig(bearer_token=TOKEN))
    app.router.add_get("/bench/before", before_handler(store))
    api.ready = True
    client = TestClient(TestServer(app))
    await client.start_server()
    results = []
    try:
        cases = [("before: list ?limit=100 (rows with alerts)", "/bench/before?limit=100"),
                 ("after: first page ?limit=100", "/api/v1/incidents?limit=100"),
                 ("after: ?state=escalated&limit=100",
                  "/api/v1/incidents?state=escalated&limit=100"),
                 ("after: ?playbook=pb3&limit=100", "/api/v1/incidents?playbook=pb3&limit=100"),
                 ("after: ?state=open&playbook=pb3&limit=100",
                  "/api/v1/incidents?state=open&playbook=pb3&limit=100")]
        for name, path in cases:
            for _ in range(10):                                  # warm up
                await timed(client, path)
            ms = []
            for _ in range(args.requests):
                took, body = await timed(client, path)
                ms.append(took)
            results.append(line(name, ms, len(body["incidents"])))
        # every page, to the end, by the cursors (deep pages cost the same)
        ms, rows, seen = [], 0, set()
        for _ in range(max(1, args.requests // (args.incidents // 100))):
            path = "/api/v1/incidents?limit=100"
            while True:
                took, body = await timed(client, path)
                ms.append(took)
                rows += len(body["incidents"])
                seen |= {r["id"] for r in body["incidents"]}
                if body["next_cursor"] is None:
                    break
                path = f"/api/v1/incidents?limit=100&cursor={body['next_cursor']}"
        assert len(seen) == args.incidents, len(seen)
        results.append(line("after: every page of 100 by cursor", ms, 100))
        results.append(await one_incident(client, sorted(seen), args.requests))
    finally:
        await client.close()
        await engine.stop(grace=0.1)
        await store.close()
    return results


async def one_incident(client: TestClient[Any, Any], ids: list[str],
                       requests: int) -> dict[str, Any]:
    """``GET /api/v1/incidents/{id}`` of ``requests`` incidents spread over the table."""
    step = max(1, len(ids) // requests)
    picked = [ids[(k * step) % len(ids)] for k in range(requests)]
    for incident_id in picked[:10]:                              # warm up
        await timed(client, f"/api/v1/incidents/{incident_id}")
    ms, alerts = [], 0
    for incident_id in picked:
        took, body = await timed(client, f"/api/v1/incidents/{incident_id}")
        assert body["id"] == incident_id, body
        ms.append(took)
        alerts = len(body["alerts"])
    return line("one incident: GET /api/v1/incidents/{id}", ms, 1) | {"alerts": alerts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--alerts-per", type=int, default=10)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--store", choices=STORES, default="sqlite")
    args = parser.parse_args()
    print(f"{platform.node()} {platform.machine()} python {platform.python_version()}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M}, load {' '.join(load_average())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, \
            store_for(args.store, Path(tmp), "pages") as (db, info):
        print(f"store: {store_label(info)}", flush=True)
        info.pop("server_pid", None)
        results = asyncio.run(measure(args, db))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{result_name('incident_pages', args.store)}.json").write_text(json.dumps(
        {"incidents": args.incidents, "alerts_per": args.alerts_per, "store": info,
         "results": results}, indent=2) + "\n")


def load_average() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


if __name__ == "__main__":
    main()
