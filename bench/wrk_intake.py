"""Intake of NEW alerts measured with wrk (C load generator), against a bare aiohttp server
in the same run.

A Python load generator is itself the bottleneck on 2 cores and flatters the ratio
(issue #20: bench/intake.py said 0.43 where wrk said 0.20 on the same build), so this
one drives the servers with ``wrk`` (``/usr/bin/wrk``, one thread, ``--connections``
keep-alive connections, default 32) and ``bench/wrk_alerts.lua``: every POST is an
Alertmanager v4 webhook with 3 *new* firing alerts (never-seen fingerprints) spread over
500 Deployments, the worst intake path (insert, route, open or attach to an incident).

Servers, one after the other, same load:

* ``baseline``: bench/_baseline.py, a bare aiohttp handler that parses the JSON body
  and answers 200, on the daemon's event loop;
* ``remediator``: ``remediator serve`` with durable SQLite (WAL, synchronous=FULL), the
  shipped playbooks, dry-run against the simulated cluster (its own process), JSON logs
  at INFO: a 200 means the alerts are committed;
* ``remediator-500`` (``--many-playbooks``): the same with 493 more playbooks loaded
  before the shipped ones, each matching ``alertname`` and a per-alert label
  (``instance="…"``), none of which matches the load: the router's memo on matched label
  values then misses on every alert (its key holds ``instance``).

Each server gets ``--warmup`` seconds of the same load first (discarded), then
``--seconds`` measured. Printed: webhooks/s, p50/p99 (wrk's, closed loop), non-2xx,
daemon CPU ms per webhook, and the ratios. ``--profile`` also records the daemon with
py-spy during the measured run and prints the top functions (own and cumulative time).

    .venv/bin/python bench/wrk_intake.py [--seconds 10] [--connections 32]
                                         [--many-playbooks] [--profile] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    BENCH,
    EVENT_LOOP,
    PY,
    RESULTS,
    SIM_DEPLOYMENTS,
    Proc,
    cpu_seconds,
    free_port,
    rss_mb,
    save,
    start_daemon,
    start_simulator,
    table,
    tmpdir,
    wait_ready,
    write_config,
    wrk_path,
)

LUA = BENCH / "wrk_alerts.lua"
SYNTHETIC = 493     # + the 7 shipped playbooks = 500

_runs = iter(range(1, 256))     # a number per wrk run: its alerts are new across runs


def wrk(url: str, seconds: float, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        [wrk_path(), "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "10s",
         "-s", str(LUA), url + "/api/v1/alerts", "--", str(next(_runs))],
        capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    r = json.loads(line.removeprefix("WRK_JSON "))
    secs = r["duration_us"] / 1e6
    return {"requests": r["requests"], "rps": r["requests"] / secs,
            "p50_ms": r["p50_us"] / 1e3, "p90_ms": r["p90_us"] / 1e3,
            "p99_ms": r["p99_us"] / 1e3, "max_ms": r["max_us"] / 1e3,
            "errors": r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"],
            "non2xx": r["non2xx"]}


def measure(url: str, pid: int, seconds: float, warmup: float, connections: int,
            profile: Path | None = None) -> dict[str, Any]:
    if warmup:
        wrk(url, warmup, connections)
    spy = None
    if profile is not None:
        spy = subprocess.Popen(
            [str(Path(PY).parent / "py-spy"), "record", "--pid", str(pid), "--format", "raw",
             "--rate", "200", "--duration", str(int(seconds)), "--output", str(profile),
             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu0 = cpu_seconds(pid)
    result = wrk(url, seconds, connections)
    result["cpu_ms_per_webhook"] = (cpu_seconds(pid) - cpu0) * 1e3 / max(1, result["requests"])
    result["peak_rss_mb"] = rss_mb(pid)[1]
    if spy is not None:
        spy.wait(timeout=60)
    return result


def top_functions(raw: Path, n: int = 15) -> tuple[list[tuple[str, float]],
                                                   list[tuple[str, float]]]:
    """(own, cumulative) shares of the samples per function, from py-spy's raw output
    (collapsed stacks: ``frame;frame;… count``)."""
    own: collections.Counter[str] = collections.Counter()
    cum: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        total += k
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += k
        for f in set(frames):
            cum[f] += k
    return ([(f, c / total) for f, c in own.most_common(n)],
            [(f, c / total) for f, c in cum.most_common(n)])


def _frame(frame: str) -> str:
    """``Router.select (/…/remediator/engine/routing.py:62)`` → ``Router.select (routing.py)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].rsplit(':', 1)[0].rstrip(')')})" if where else name


def synthetic_playbooks(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(SYNTHETIC):
        (directory / f"aa-synthetic-{i:03d}.yaml").write_text(f"""\
apiVersion: remediator/v1
kind: Playbook
metadata: {{name: aa-synthetic-{i:03d}}}
spec:
  match: ['alertname="Synthetic{i % 50}"', 'instance="10.99.{i // 250}.{i % 250}:8080"']
  target: {{kind: Deployment, namespace: "{{{{ labels.namespace }}}}",
           name: "{{{{ labels.deployment }}}}"}}
  steps:
    - {{name: wait, action: wait, with: {{duration: 1m}}}}
""")
    return directory


def daemon_run(tmp: Path, kubeconfig: Path, name: str, args: argparse.Namespace,
               playbooks: list[Path] | None = None) -> dict[str, Any]:
    port = free_port()
    cfg = write_config(tmp / name, store=tmp / name / "remediator.db", port=port,
                       kubeconfig=kubeconfig, dry_run=True, budget=1_000_000,
                       playbooks=playbooks)
    url = f"http://127.0.0.1:{port}"
    with start_daemon(cfg, f"wrk-{name}") as daemon:
        wait_ready(url, daemon)
        prof = RESULTS / f"wrk-{name}.pyspy.txt" if args.profile else None
        result = measure(url, daemon.pid, args.seconds, args.warmup, args.connections, prof)
    if prof is not None and prof.exists():
        result["profile"] = dict(zip(("own", "cumulative"), top_functions(prof), strict=True))
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tmpdir("wrk-intake")
    data: dict[str, Any] = {"tool": "wrk -t1", "connections": args.connections,
                            "seconds": args.seconds, "alerts_per_webhook": 3, "targets": 500,
                            "event_loop": EVENT_LOOP}
    if not args.skip_baseline:
        port = free_port()
        with Proc([PY, str(BENCH / "_baseline.py"), str(port)], "wrk-baseline") as base:
            wait_ready(f"http://127.0.0.1:{port}", base)
            data["baseline"] = measure(f"http://127.0.0.1:{port}", base.pid, args.seconds,
                                       args.warmup, args.connections)
    sim, _url, kubeconfig = start_simulator(tmp, SIM_DEPLOYMENTS)
    with sim:
        (tmp / "shipped").mkdir()
        data["remediator"] = daemon_run(tmp, kubeconfig, "shipped", args)
        if args.many_playbooks:
            (tmp / "many").mkdir()
            synth = synthetic_playbooks(tmp / "synthetic")
            data["remediator_500"] = daemon_run(tmp, kubeconfig, "many", args,
                                                playbooks=[synth, None])
    report(data)
    return data


def report(data: dict[str, Any]) -> None:
    rows = []
    base = data.get("baseline")
    for key, label in (("baseline", "bare aiohttp"), ("remediator", "remediator, 7 playbooks"),
                       ("remediator_500", "remediator, 500 playbooks (instance matchers)")):
        r = data.get(key)
        if r is None:
            continue
        ratio = f"{r['rps'] / base['rps']:.2f} of bare" if base and key != "baseline" else ""
        rows.append((label, f"{r['rps']:,.0f}/s  p50 {r['p50_ms']:.1f}  p99 {r['p99_ms']:.1f} ms",
                     f"cpu {r['cpu_ms_per_webhook']:.2f} ms/wh, err {r['errors']}", ratio))
    if "remediator_500" in data:
        r5, r7 = data["remediator_500"], data["remediator"]
        rows.append(("500 / 7 playbooks throughput", f"{r5['rps'] / r7['rps']:.2f}", "", ""))
    met: dict[str, bool] = {}
    if base and "remediator" in data:
        data["ratio"] = data["remediator"]["rps"] / base["rps"]
        met["ratio_vs_bare_0.5"] = data["ratio"] >= 0.5
    if "remediator" in data:
        met["p99_under_20ms"] = data["remediator"]["p99_ms"] < 20.0
    if "remediator_500" in data:
        met["500_playbooks_within_10pct"] = (
            data["remediator_500"]["rps"] >= 0.9 * data["remediator"]["rps"])
    data["met"] = met
    print(table(rows))
    for key in ("remediator", "remediator_500"):
        prof = data.get(key, {}).get("profile")
        if prof:
            print(f"\npy-spy, {key}: own time")
            for f, share in prof["own"]:
                print(f"  {share:6.1%}  {f}")
            print(f"py-spy, {key}: cumulative")
            for f, share in prof["cumulative"]:
                print(f"  {share:6.1%}  {f}")
    print(f"results: {save('wrk-intake', data)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--many-playbooks", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true")
    run(parser.parse_args())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
