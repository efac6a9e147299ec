"""Instructions per worst-case webhook, per thread, counted by valgrind's callgrind.

Timings on this shared 2-core VM drift by up to 50% within minutes, which hides a change
worth 2-5%. An instruction count does not drift: the daemon runs under callgrind, gets
``--warmup`` webhooks, its counters are dumped (reset), it gets ``--webhooks`` more over
32 connections (the intake benchmark's worst case: 3 new alerts each, 200 deployments),
and the second dump is divided by that number, per thread (1 is the event loop, 2 the
SQLite writer).

By default the engine is never woken (``Engine.wake`` is replaced in the daemon process
before it starts), so the count is the intake's alone and repeats to ~0.2%; ``--wake``
keeps the engine's incident runs in (±2%: how far they get under callgrind varies).
``--baseline`` counts the bare aiohttp handler of intake.py instead. ``--storm`` counts
the storm of storm.py (2,000 webhooks: 500 targets' groups of 5 alerts, each sent twice
at once as by an HA pair, then all again) after the same warm-up, per webhook of it.

Counts are not time (cache misses, system calls and waiting for the GIL are not in
them): use them to compare two versions of the code, then confirm with timed runs.

    .venv/bin/python bench/instructions.py [--webhooks 1000] [--warmup 300] [--wake]
                                           [--baseline] [--storm]
    BENCH_REMEDIATOR_SRC=DIR ...   # count the copy of the package in DIR

Needs ``valgrind`` (Debian: ``apt-get install -y valgrind``). Takes about a minute.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    BENCH,
    PY,
    ROOT,
    SIM_DEPLOYMENTS,
    free_port,
    http_get,
    run_load,
    start_simulator,
    storm_bodies,
    storm_plan,
    tmpdir,
    write_config,
)
from bench._load import intake_body

# Run in the daemon's process: optionally never wake the engine, then `remediator serve`.
_DAEMON = """\
import os, sys
if os.environ.get("BENCH_NO_WAKE") == "1":
    import remediator.engine.core as core
    core.Engine.wake = lambda self, *args, **kwargs: None
from remediator.cli import main
sys.argv = ["remediator", *sys.argv[1:]]
sys.exit(main())
"""


def post_all(url: str, first: int, count: int, tmp: Path,
             storm: list[bytes] | None = None) -> None:
    """Webhooks ``first`` … ``first + count - 1`` of the intake's worst case (or the
    ``storm``'s bodies), over 32 connections (bench/_load.py, one burst); every one must
    be answered 200."""
    bodies = tmp / f"bodies-{first}.jsonl"
    bodies.write_bytes(b"\n".join(storm if storm is not None else
                                  [intake_body(i) for i in range(first, first + count)]))
    result = run_load(storm_plan(url, bodies, burst=count, pause=0), tmp, f"post-{first}")
    failed = [r for r in result["records"] if r.get("status") != 200]
    if failed:
        raise SystemExit(f"{len(failed)} of {count} webhooks not answered 200: {failed[0]}")


def totals(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    return 0


def thread_label(path: Path) -> str:
    """callgrind numbers threads in the order they start: 1 is the event loop; with
    SQLite, 2 is the store's writer (its first task is the schema, in ``open``)."""
    number = int(path.name.rsplit("-", 1)[1])
    return {1: "event loop", 2: "thread 2 (writer)"}.get(number, f"thread {number}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--webhooks", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--wake", action="store_true", help="let the engine run the incidents")
    ap.add_argument("--baseline", action="store_true", help="the bare aiohttp handler")
    ap.add_argument("--storm", action="store_true",
                    help="measure storm.py's 2,000 webhooks instead of --webhooks new ones")
    args = ap.parse_args()
    storm = storm_bodies()[0] if args.storm else None
    if storm is not None:
        args.webhooks = len(storm)
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("valgrind is not installed (apt-get install -y valgrind)", file=sys.stderr)
        return 2
    tmp = tmpdir("instructions")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sim, _sim_url, kubeconfig = start_simulator(tmp, SIM_DEPLOYMENTS)
    with sim:
        if args.baseline:
            cmd, cwd = [PY, str(BENCH / "_baseline.py"), str(port)], ROOT
        else:
            cfg = write_config(tmp, store=tmp / "bench.db", port=port, kubeconfig=kubeconfig,
                               dry_run=True, budget=1_000_000)
            cwd = Path(os.environ.get("BENCH_REMEDIATOR_SRC") or ROOT)
            cmd = [PY, "-c", _DAEMON, "serve", "--config", str(cfg)]
        out = tmp / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(cwd),
               "BENCH_NO_WAKE": "0" if args.wake else "1"}
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             "--separate-threads=yes", "--compress-strings=no", *cmd],
            cwd=cwd, env=env, stdout=subprocess.DEVNULL,
            stderr=(tmp / "valgrind.log").open("w"))
        try:
            deadline = time.monotonic() + 300
            while http_get(url + "/readyz", timeout=5)[0] != 200:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"not ready; see {tmp / 'valgrind.log'}")
                time.sleep(1)
            post_all(url + "/api/v1/alerts", 0, args.warmup, tmp)
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                           capture_output=True)
            post_all(url + "/api/v1/alerts", args.warmup, args.webhooks, tmp, storm)
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                           capture_output=True)
        finally:
            proc.terminate()
            proc.wait(timeout=120)
    # dump 1 = start + warm-up, dump 2 = the measured webhooks; one file per thread
    parts = sorted(p for p in tmp.glob("callgrind.out.2-*") if re.search(r"\.2-\d+$", p.name))
    counts = [(thread_label(p), totals(p)) for p in parts]
    counts = [(name, n) for name, n in counts if n]
    what = "baseline" if args.baseline else ("remediator" + (" (engine woken)" if args.wake
                                                             else ""))
    print(f"{what}: instructions per webhook over {args.webhooks} "
          f"{'storm ' if storm is not None else ''}webhooks (after {args.warmup})")
    for name, n in counts:
        print(f"  {name:18s} {n / args.webhooks / 1e3:8.0f} k")
    print(f"  {'total':18s} {sum(n for _, n in counts) / args.webhooks / 1e3:8.0f} k")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
