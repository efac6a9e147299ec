"""Many incidents verifying at once, through the whole daemon (issue #20, part 3).

``--incidents`` alerts (default 5,000), each for a Deployment of its own, are posted to
``remediator serve`` (SQLite, durable; ``engine.max_parallel`` above the count, so all
of them verify at the same time; diagnosis off; dry run). Their playbook's one step
is a ``wait: 1s`` verified by ``promql: bench_ok{deployment="svc-NNNN"}`` every
``--interval`` seconds (default 5) for 10 minutes: a query of its own per incident,
which the fake Prometheus (bench/_prom_arrivals.py, its own process) answers with an
empty vector, so no check ever holds and every incident keeps polling. The fake notes
when each query arrives. Once every incident has polled (the fake has seen every
query), the next ``--seconds`` (default 30) are measured:

* a poll's lateness: its arrival after the time it was due. The due times are the
  incident's grid, origin + k x interval, with k counted from its first measured poll
  and the origin its least late poll (so lateness >= 0: the daemon's own grid starts
  a little earlier still, when the verification started); lateness as a share of the
  interval, p50/p99/max (target: p99 < 10%);
* the lateness against the daemon's own schedule: the step's ``verify_started_at``
  (from the daemon's SQLite journal, read after it stopped) + (k + phase) x interval,
  k the interval the poll falls in, phase the daemon's ``poll_phase`` of the incident
  (0 for a build from before it). The grid inferred above cannot see a delay that every
  poll of an incident shares, nor tell it from one that only some polls pay;
* the gap between two polls of one incident minus the interval (what
  "sleep after the check" scheduling lets grow);
* polls per interval against the incidents (every incident once per interval);
* the event loop's lag (``remediator_event_loop_lag_seconds``; target p99 < 10 ms),
  the daemon's CPU share, RSS and writes to storage (/proc/PID/io).

The baseline, in the same run: the same daemon build with ``--baseline`` incidents
(default 100). Ratio: lateness p99 at the load / at the baseline.

    .venv/bin/python bench/verifying.py [--incidents 5000] [--interval 5] [--seconds 30]
                                        [--baseline 100]

``BENCH_REMEDIATOR_SRC=DIR`` runs the daemon of an older copy (before/after).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sqlite3
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    PY,
    ROOT,
    Proc,
    alert,
    cpu_seconds,
    free_port,
    http_get,
    loop_lag,
    pct,
    rss_mb,
    save,
    start_daemon,
    table,
    tmpdir,
    wait_ready,
    webhook,
    write_config,
    written_bytes,
)

FIRST = 1                # Deployments svc-0001 …
PER_WEBHOOK = 50         # alerts (each a target of its own) per webhook
EXPR = 'bench_ok{{deployment="{name}"}}'

PLAYBOOK = """\
apiVersion: remediator/v1
kind: Playbook
metadata: {name: verifying}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}",
           name: "{{ labels.deployment }}"}
  steps:
    - name: hold on
      action: wait
      with: {duration: 1s}
      timeout: 15m
      verify:
        promql: 'bench_ok{deployment="{{ target.name }}"}'
        interval: %ds
        timeout: 10m
"""


def start_prometheus(tmp: Path) -> tuple[Proc, str, Path]:
    out = tmp / "prometheus.json"
    proc = Proc([PY, str(Path(__file__).parent / "_prom_arrivals.py"), str(out)],
                "verifying-prometheus")
    for _ in range(300):
        if out.exists() and out.read_text():
            return proc, json.loads(out.read_text())["prometheus"], out
        time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"the fake Prometheus did not start: see {proc.log_path}")


def post_alerts(url: str, incidents: int) -> None:
    for start in range(0, incidents, PER_WEBHOOK):
        alerts = [alert(i, dep=FIRST + i) for i in range(start, min(incidents,
                                                                    start + PER_WEBHOOK))]
        req = urllib.request.Request(url + "/api/v1/alerts",
                                     data=json.dumps(webhook(alerts)).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            if resp.status != 200:
                raise RuntimeError(f"webhook answered {resp.status}")


def wait_all_polling(prom_url: str, incidents: int, limit: float) -> float:
    t0 = time.time()
    while time.time() - t0 < limit:
        status, seen = http_get(prom_url + "/bench/seen")
        if status == 200 and seen and seen["queries"] >= incidents:
            return time.time() - t0
        time.sleep(0.2)
    raise RuntimeError(f"not every incident polled within {limit:.0f} s")


def lateness(arrivals: dict[str, list[float]], since: float, until: float,
             interval: float) -> dict[str, Any]:
    """Each incident's polls in [since, until): lateness against its grid, and gaps."""
    late: list[float] = []
    gaps: list[float] = []
    polls = 0
    for times in arrivals.values():
        window = sorted(t for t in times if since <= t < until)
        if not window:
            continue
        polls += len(window)
        steps = [round((t - window[0]) / interval) for t in window]
        origin = min(t - k * interval for t, k in zip(window, steps, strict=True))
        late += [t - origin - k * interval for t, k in zip(window, steps, strict=True)]
        gaps += [t - prev - interval for prev, t in itertools.pairwise(window)]
    share = [abs(x) / interval * 100 for x in late]
    return {"polls": polls, "per_interval": polls / ((until - since) / interval),
            "late_p50_ms": pct(late, 50) * 1e3, "late_p99_ms": pct(late, 99) * 1e3,
            "late_max_ms": max(late, default=math.nan) * 1e3,
            "late_p99_share_pct": pct(share, 99),
            "gap_excess_p50_ms": pct(gaps, 50) * 1e3, "gap_excess_p99_ms": pct(gaps, 99) * 1e3}


def daemon_phase() -> Callable[[str], float]:
    """The daemon's ``poll_phase`` (where in its interval an incident polls after its
    first poll), or none (0) for a build from before it (``BENCH_REMEDIATOR_SRC``)."""
    src = Path(os.environ.get("BENCH_REMEDIATOR_SRC") or ROOT)
    if "def poll_phase" not in (src / "remediator/engine/verification.py").read_text():
        return lambda key: 0.0
    from remediator.engine.verification import poll_phase
    return poll_phase


def verify_starts(db: Path, interval: float) -> dict[str, float]:
    """Each incident's query and the origin of its polls' grid in the daemon (unix
    seconds), from the daemon's journal: when its verification started, moved by its
    phase."""
    starts: dict[str, float] = {}
    phase = daemon_phase()
    con = sqlite3.connect(db)
    try:
        for incident_id, target, record in con.execute(
                "SELECT i.id, i.target, s.record FROM incidents i JOIN steps s "
                "ON s.incident_id = i.id WHERE s.phase = 'ladder' AND s.idx = 0"):
            started = json.loads(record).get("verify_started_at")
            if target and started:
                name = json.loads(target)["name"]
                starts[f'bench_ok{{deployment="{name}"}}'] = datetime.fromisoformat(
                    started).timestamp() + phase(f"{incident_id}/0") * interval
    finally:
        con.close()
    return starts


def scheduled_lateness(arrivals: dict[str, list[float]], starts: dict[str, float],
                       since: float, until: float, interval: float) -> dict[str, Any]:
    """Lateness of the polls in [since, until) against the daemon's schedule: the
    origin of its grid + k x interval, k the interval the poll arrived in."""
    late = [(t - start) % interval for query, times in arrivals.items()
            if (start := starts.get(query)) is not None
            for t in times if since <= t < until]
    share = [x / interval * 100 for x in late]
    return {"sched_polls": len(late), "sched_late_p50_ms": pct(late, 50) * 1e3,
            "sched_late_p99_ms": pct(late, 99) * 1e3,
            "sched_late_p99_share_pct": pct(share, 99)}


def run_one(incidents: int, interval: int, seconds: float) -> dict[str, Any]:
    tmp = tmpdir("verifying")
    books = tmp / "playbooks"
    books.mkdir()
    (books / "verifying.yaml").write_text(PLAYBOOK % interval)
    prom, prom_url, out = start_prometheus(tmp)
    with prom:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cfg = write_config(tmp, store=tmp / "verifying.db", port=port, kubeconfig=None,
                           dry_run=True, budget=1_000_000, max_parallel=incidents + 64,
                           diagnosis=False, playbooks=[books])
        cfg.write_text(cfg.read_text() + f"prometheus: {{url: '{prom_url}'}}\n")
        with start_daemon(cfg, f"verifying-{incidents}") as daemon:
            wait_ready(url, daemon)
            post_alerts(url, incidents)
            warm = wait_all_polling(prom_url, incidents, limit=120 + incidents / 50)
            time.sleep(interval)               # every incident on its grid
            lag0 = loop_lag(url)
            cpu0, since = cpu_seconds(daemon.pid), time.time()
            written0 = written_bytes(daemon.pid)
            prom_cpu0 = cpu_seconds(prom.pid)
            time.sleep(seconds)
            until = time.time()
            cpu = (cpu_seconds(daemon.pid) - cpu0) / (until - since)
            written = (written_bytes(daemon.pid) - written0) / (until - since)
            prom_cpu = (cpu_seconds(prom.pid) - prom_cpu0) / (until - since)
            lag1 = loop_lag(url)
            rss, peak = rss_mb(daemon.pid)
        prom.stop()
    arrivals = json.loads(Path(f"{out}.done").read_text())["arrivals"]
    result = lateness(arrivals, since, until, interval)
    result.update(scheduled_lateness(arrivals, verify_starts(tmp / "verifying.db", interval),
                                     since, until, interval))
    samples = lag1["samples"] - lag0["samples"]
    result.update({"incidents": incidents, "interval_s": interval, "seconds": seconds,
                   "all_polling_after_s": warm, "daemon_cpu_share": cpu,
                   "prometheus_cpu_share": prom_cpu, "daemon_written_mb_s": written / 1e6,
                   "rss_mb": rss, "peak_rss_mb": peak, "loop_lag_samples": samples,
                   "loop_lag_over_10ms": lag1["over_10ms"] - lag0["over_10ms"],
                   "loop_lag_over_50ms": lag1["over_50ms"] - lag0["over_50ms"]})
    return result


def _judged(name: str, target: str, ok: bool) -> tuple[str, str]:
    """The target and met columns: filled for the load run only."""
    return (target, "yes" if ok else "NO") if name == "load" else ("", "")


def main() -> int:
    run(parser().parse_args())
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=5000)
    parser.add_argument("--baseline", type=int, default=100)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both runs, the table; the results (saved as bench/results/verifying.json)."""
    base = run_one(args.baseline, args.interval, args.seconds)
    load = run_one(args.incidents, args.interval, args.seconds)
    ratio = load["late_p99_ms"] / max(base["late_p99_ms"], 1e-3)
    lag_share = load["loop_lag_over_10ms"] / max(load["loop_lag_samples"], 1) * 100
    met = {"poll lateness p99 < 10% of the interval": load["late_p99_share_pct"] < 10,
           "loop lag p99 < 10 ms": lag_share < 1}
    rows = []
    for name, r in (("baseline", base), ("load", load)):
        n = r["incidents"]
        rows += [
            (f"{name} ({n} incidents): polls per interval (of {n})",
             f"{r['per_interval']:.0f}", "", ""),
            (f"{name}: poll lateness p50 / p99 / max",
             f"{r['late_p50_ms']:.0f} / {r['late_p99_ms']:.0f} / {r['late_max_ms']:.0f} ms "
             f"(p99 {r['late_p99_share_pct']:.1f}% of {r['interval_s']} s)",
             *_judged(name, "p99 < 10%", r["late_p99_share_pct"] < 10)),
            (f"{name}: against the daemon's schedule: p50 / p99 "
             f"({r['sched_polls']} polls)",
             f"{r['sched_late_p50_ms']:.0f} / {r['sched_late_p99_ms']:.0f} ms "
             f"(p99 {r['sched_late_p99_share_pct']:.1f}%)", "", ""),
            (f"{name}: gap between polls - interval, p50 / p99",
             f"{r['gap_excess_p50_ms']:.0f} / {r['gap_excess_p99_ms']:.0f} ms", "", ""),
            (f"{name}: loop lag samples over 10 / 50 ms",
             f"{r['loop_lag_over_10ms']:.0f} / {r['loop_lag_over_50ms']:.0f} "
             f"of {r['loop_lag_samples']:.0f}",
             *_judged(name, "p99 < 10 ms", met["loop lag p99 < 10 ms"])),
            (f"{name}: fake Prometheus CPU", f"{r['prometheus_cpu_share'] * 100:.0f}% of a core",
             "", ""),
            (f"{name}: daemon CPU, RSS / peak",
             f"{r['daemon_cpu_share'] * 100:.0f}% of a core, {r['rss_mb']:.0f} / "
             f"{r['peak_rss_mb']:.0f} MB", "", ""),
            (f"{name}: daemon writes to storage",
             f"{r['daemon_written_mb_s']:.2f} MB/s", "", ""),
        ]
    rows.append(("lateness p99 ratio (load / baseline)", f"{ratio:.1f}x", "", ""))
    print(table(rows))
    print(f"loop lag over 10 ms: {lag_share:.2f}% of samples")
    out = {"baseline": base, "load": load, "ratio": ratio, "met": met}
    print(f"results: {save('verifying', out)}")
    return out


if __name__ == "__main__":
    sys.exit(main())
