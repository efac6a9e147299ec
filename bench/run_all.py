"""Run every benchmark in turn (startup, intake, wrk, reaction, storm, peer, backlog,
verifying); a summary.

Each one starts what it needs on 127.0.0.1, runs a bounded load, stops what it
started and writes bench/results/NAME.json; this script then writes
bench/results/summary.json. About ten minutes on a 2-core machine (the first run
also creates bench/.peer-venv for ansible-rulebook).

    .venv/bin/python bench/run_all.py [--skip NAME ...] [--store sqlite|postgresql]
                                      [--pg-sync full|off]

``--store postgresql`` runs intake and storm against a throw-away PostgreSQL server
(one per benchmark, fresh database) and skips the others, which do not depend on the
store (startup, reaction) or compare against SQLite's figures (peer) unless named
with ``--only`` (``--only backlog --store postgresql``: the restart on PostgreSQL).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (
    intake,
    peer,
    reaction,
    restart_backlog,
    startup,
    storm,
    verifying,
    wrk_intake,
)
from bench._common import PG_SYNC, RESULTS, STORES, machine, result_name, table

ORDER = ("startup", "intake", "wrk", "reaction", "storm", "peer", "backlog", "verifying")
STORE_AWARE = ("intake", "storm")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", nargs="*", default=[], choices=ORDER)
    parser.add_argument("--only", nargs="*", default=None, choices=ORDER)
    parser.add_argument("--store", choices=STORES, default="sqlite",
                        help="store for intake and storm (postgresql: a throw-away server)")
    parser.add_argument("--pg-sync", choices=sorted(PG_SYNC), default="full")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    failed = []
    only = args.only if args.only is not None else (
        ORDER if args.store == "sqlite" else STORE_AWARE)
    for name in ORDER:
        if name in args.skip or name not in only:
            continue
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        try:
            if name == "startup":
                results[name] = startup.run()
            elif name == "intake":
                results[name] = intake.run(store=args.store, pg_sync=args.pg_sync)
            elif name == "reaction":
                results[name] = reaction.run()
            elif name == "wrk":
                results[name] = wrk_intake.run(argparse.Namespace(
                    seconds=10.0, warmup=2.0, connections=32, many_playbooks=True,
                    profile=False, skip_baseline=False))
            elif name == "backlog":
                results[name] = restart_backlog.run(argparse.Namespace(
                    targets=10_000, alerts_per_target=10, keep=None, follow=120.0,
                    settled=False, store=args.store, owner=None))
            elif name == "verifying":
                results[name] = verifying.run(verifying.parser().parse_args([]))
            elif name == "storm":
                results[name] = storm.run(args.store, args.pg_sync)
            else:
                results[name] = peer.run(remediator_storm=False) if "storm" in results \
                    else peer.run()
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"({name}: {time.perf_counter() - t0:.0f} s)", flush=True)
    rows = []
    for name, data in results.items():
        for what, ok in data.get("met", {}).items():
            rows.append((name, what, "met" if ok else "NOT met", ""))
    print(f"\n=== targets (store: {args.store}) ===")
    print(table(rows) if rows else "no results")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{result_name('summary', args.store, args.pg_sync)}.json").write_text(json.dumps(
        {"machine": machine(), "store": args.store,
         "pg_sync": args.pg_sync if args.store == "postgresql" else None,
         "met": {n: d.get("met") for n, d in results.items()},
         "failed": failed}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
