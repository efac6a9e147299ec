"""Alert storm: 10,000 firing alerts for 500 distinct targets, in bursts.

The storm (bench/_common.storm_bodies): 2,500 distinct alerts, 5 per target
(Deployment shop/svc-NNNN), grouped per target into webhooks of 5 alerts; every
group is posted by two "HA" Alertmanagers (identical payloads, adjacent, racing)
and re-posted once more later (repeat_interval), so 2,000 webhooks carry 10,000
alerts. They go out in bursts of 200 webhooks over 32 connections from a
separate load process, one burst every 50 ms (``--schedule open``, the default: the
whole storm is offered within 0.45 s, and webhooks wait for a free connection as
Alertmanager's would). ``--schedule closed`` is session 1's storm: each burst only
after the last reply to the one before, then 50 ms of pause, so that a server spends
0.45 s of its figure waiting for the client. ``--schedule flood`` offers the whole storm
at once and sends it with ``wrk`` (bench/wrk_storm.lua, 32 connections, each webhook
once, in order) instead of the Python load process, which tops out near 2,800
webhooks/s on this machine and would time itself: the storm at the daemon's own pace
(the open schedule cannot go under its 0.45 s, i.e. 22x a peer at 1,000 alerts/s).

The daemon is ``remediator serve``: durable SQLite (synchronous=FULL) or, with
``--store postgresql``, a fresh database on a throw-away PostgreSQL server
(tests/ha/pgserver.py on 127.0.0.1, stopped at the end; ``--pg-sync full`` = fsync and
synchronous_commit on, ``off`` = the test server's settings), the real playbooks,
dry-run on the simulated cluster (own process, kubeconfig). It
persists and matches each alert before it answers 200, so "all persisted and
matched" is the time from the first post to the last 200. Afterwards the API is
asked: exactly 500 incidents must exist (one per target), holding all 2,500
distinct alerts; the replies' outcome counts must be 2,500 new / 7,500 duplicate.
Peak RSS is the daemon's VmHWM (/proc) after the storm has been worked off.

Target: peak RSS < 200 MB; exactly 500 incidents.

``--sse-clients N``: the console's cost. The storm runs ``--rounds`` times without and
with N clients following ``GET /api/v1/events`` (a separate process, bench/_sse_clients.py,
all connected before the first webhook, disconnected after the engine settled),
alternating, each on a fresh daemon and store; prints the ratio of the median alerts/s
with clients to without, and the events each client received. Target: ratio > 0.9.

``--evidence both`` (issue #16: evidence must not slow the storm) runs the storm three
times per round (``--rounds``, default 2) in one invocation, on SQLite: no Slack
("off"), the fake Slack with ``notify.graphs: false`` ("slack": threads and logs) and
the fake Slack with graphs ("graphs"), with a playbook of its own
(``EVIDENCE_PLAYBOOK``: a dry-run restart whose verification polls the fake Prometheus
every 1 s and fails after 5 s, so every incident escalates). Every run has the fake
Prometheus (bench/_fakes.py, own process); with the fake Slack each escalation posts
to a thread (the first 20 incidents: the rest fold into the storm message) its logs
and, in "graphs", the incident's graphs (drawn by the daemon's graph renderer). Once
the storm has been worked into incidents and escalations start, ``--probes``
webhooks, each a new HighErrorRate alert for a target of its own, are posted one at a
time 50 ms apart; reaction = the probe incident's first step's start (its
``started_at``) - the post time (same machine, same clock). Target: reaction p99 of
"graphs" within 10% of "slack" (p99 over all rounds' probes).

    .venv/bin/python bench/storm.py [--store sqlite|postgresql] [--pg-sync full|off]
                                    [--sse-clients 100 [--rounds 2]]
    .venv/bin/python bench/storm.py --evidence both [--probes 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    BENCH,
    PG_SYNC,
    PY,
    SIM_DEPLOYMENTS,
    STORES,
    STORM_ALERTS_PER_TARGET,
    STORM_TARGETS,
    Proc,
    alert,
    cpu_seconds,
    dep_name,
    free_port,
    http_get,
    pct,
    result_name,
    rss_mb,
    run_load,
    save,
    settle,
    start_daemon,
    start_simulator,
    store_for,
    store_label,
    storm_bodies,
    storm_plan,
    table,
    tmpdir,
    tree_cpu_seconds,
    wait_ready,
    webhook,
    write_config,
    wrk_path,
)


def norm_ts(value: str) -> str:
    """One spelling per instant ("…Z" and "…+00:00" compare equal)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()


def incidents_and_alerts(url: str) -> tuple[int, set[tuple[str, str]]]:
    """Every incident (the list's pages, followed) and the alerts they hold (each one's
    full view: list rows carry no alerts)."""
    ids: list[str] = []
    query = "?limit=1000"
    while True:
        status, data = http_get(url + "/api/v1/incidents" + query, timeout=60)
        if status != 200 or data is None:
            raise RuntimeError(f"GET /api/v1/incidents: HTTP {status}")
        ids += [inc["id"] for inc in data["incidents"]]
        if data["next_cursor"] is None:
            break
        query = f"?limit=1000&cursor={data['next_cursor']}"
    alerts: set[tuple[str, str]] = set()
    for incident_id in ids:
        status, inc = http_get(f"{url}/api/v1/incidents/{incident_id}", timeout=60)
        if status != 200 or inc is None:
            raise RuntimeError(f"GET /api/v1/incidents/{incident_id}: HTTP {status}")
        alerts |= {(a["fingerprint"], norm_ts(a["startsAt"])) for a in inc["alerts"]}
    return len(ids), alerts


@contextlib.contextmanager
def sse_clients(url: str, n: int, tmp: Path) -> Iterator[dict[str, Any]]:
    """N event-stream clients connected (in their own process) for the block; their
    counts (clients, connected, events per client) fill the dict on exit."""
    found: dict[str, Any] = {}
    if n == 0:
        yield found
        return
    out = tmp / f"sse-{n}.json"
    ready = Path(f"{out}.ready")
    proc = Proc([PY, str(BENCH / "_sse_clients.py"), url + "/api/v1/events", str(n),
                 str(out)], f"sse-clients-{n}")
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"SSE clients did not connect (see {proc.log_path})")
            time.sleep(0.05)
        yield found
    finally:
        proc.stop(timeout=30)
    if out.exists():
        found.update(json.loads(out.read_text()))



def wrk_storm(url: str, bodies_file: Path, connections: int = 32) -> dict[str, Any]:
    """The storm sent once by wrk (bench/wrk_storm.lua, one thread, ``connections``
    keep-alive connections), as fast as the daemon answers: a Python client posting
    2,000 webhooks is itself the bottleneck (~2,800/s on this machine) and would time
    itself. wrk stops after the last webhook's reply; its run time is the storm's."""
    wrk = subprocess.Popen(
        [wrk_path(), "-t1", f"-c{connections}", "-d120s", "--timeout", "30s", "-s",
         str(BENCH / "wrk_storm.lua"), url, "--", str(bodies_file)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert wrk.stdout is not None
    marks: dict[str, float] = {}
    try:
        for line in wrk.stdout:
            if line.startswith("STORM_"):
                marks[line.strip()] = time.perf_counter()
                if line.startswith("STORM_DONE"):
                    wrk.send_signal(signal.SIGINT)    # wrk then prints its summary
            elif line.startswith("WRK_JSON "):
                counts = json.loads(line.removeprefix("WRK_JSON "))
    finally:
        if wrk.poll() is None:
            wrk.kill()
        wrk.wait(timeout=30)
    if "STORM_DONE" not in marks:
        raise RuntimeError(f"wrk ended before the last reply: {counts}")
    counts["duration_us"] = (marks["STORM_DONE"] - marks["STORM_START"]) * 1e6
    return {"wrk": counts}


def _replies(result: dict[str, Any]) -> tuple[float, Counter[int], Counter[str], float]:
    """(first post to last reply in s, HTTP statuses, outcome counts, p99 latency in s) of
    a storm run by wrk or by bench/_load.py."""
    if "wrk" in result:
        w = result["wrk"]
        outcomes = Counter({k: w[k] for k in ("new", "duplicate", "resolved", "unmatched",
                                              "stale") if w[k]})
        return (w["duration_us"] / 1e6, Counter({200: w["ok"], 0: w["failed"]}) + Counter(),
                outcomes, w["p99_us"] / 1e6)
    records = result["records"]
    statuses = Counter(r["status"] for r in records)
    counts: Counter[str] = Counter()
    for r in records:
        if r["status"] == 200 and isinstance(r["body"], dict):
            counts.update(r["body"].get("alerts", {}))
    latencies = sorted(r["latency"] for r in records)
    return (max(r["done"] for r in records) - min(r["sent"] for r in records), statuses,
            counts, latencies[int(len(latencies) * .99)])


def run(store: str = "sqlite", pg_sync: str = "full", schedule: str = "open",
        sse: int = 0) -> dict[str, Any]:
    tmp = tmpdir("storm")
    bodies, _keys = storm_bodies()
    bodies_file = tmp / "storm.jsonl"
    bodies_file.write_bytes(b"\n".join(bodies))
    total_alerts = sum(len(k) for k in _keys)
    sim, _sim_url, kubeconfig = start_simulator(tmp, SIM_DEPLOYMENTS)
    with sim, store_for(store, tmp, "storm", pg_sync) as (store_path, store_info):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cfg = write_config(tmp, store=store_path, port=port, kubeconfig=kubeconfig,
                           dry_run=True, budget=1_000_000)
        with start_daemon(cfg, "remediator-storm") as daemon:
            wait_ready(url, daemon)
            rss_idle = rss_mb(daemon.pid)[0]
            pg_pid = store_info.pop("server_pid", None)
            with sse_clients(url, sse, tmp) as followers:
                cpu0 = cpu_seconds(daemon.pid), tree_cpu_seconds(pg_pid) if pg_pid else 0.0
                if schedule == "flood":
                    result = wrk_storm(url, bodies_file)
                else:
                    result = run_load(storm_plan(url + "/api/v1/alerts", bodies_file,
                                                 schedule=schedule), tmp, "storm")
                cpu_s = {"daemon": cpu_seconds(daemon.pid) - cpu0[0]}
                if pg_pid:
                    cpu_s["postgresql"] = tree_cpu_seconds(pg_pid) - cpu0[1]
                settled_s, still_running = settle(url)
                cpu_total = cpu_seconds(daemon.pid) - cpu0[0]
            persisted_s, statuses, outcomes, p99_s = _replies(result)
            n_incidents, stored = incidents_and_alerts(url)
            cur, peak = rss_mb(daemon.pid)
    distinct = STORM_TARGETS * STORM_ALERTS_PER_TARGET
    data = {
        "store": store_info, "schedule": schedule, "webhooks": len(bodies),
        "sse_clients": followers,
        "alerts": total_alerts,
        "distinct_alerts": distinct,
        "targets": STORM_TARGETS, "persisted_and_matched_s": persisted_s,
        "alerts_per_s": total_alerts / persisted_s, "statuses": dict(statuses),
        "outcomes": dict(outcomes), "engine_waited_s": settled_s,
        "runs_in_progress_after": still_running,
        "incidents": n_incidents, "alerts_in_incidents": len(stored),
        "cpu_s_during_storm": cpu_s, "daemon_cpu_s_storm_to_settled": cpu_total,
        "rss_idle_mb": rss_idle, "rss_after_mb": cur, "peak_rss_mb": peak,
        "latency_p99_ms": p99_s * 1e3, "load": "wrk" if schedule == "flood" else "_load.py",
        "wrk": result.get("wrk"),
        "targets_check": {"incidents": STORM_TARGETS, "peak_rss_mb_max": 200},
        "met": {"incidents": n_incidents == STORM_TARGETS and len(stored) == distinct,
                "all_200": set(statuses) == {200},
                "outcomes": outcomes.get("new", 0) == distinct
                and outcomes.get("duplicate", 0) == total_alerts - distinct,
                "rss": peak < 200},
    }
    path = save(result_name("storm", store, pg_sync) + (f"-sse{sse}" if sse else ""), data)
    print(f"store: {store_label(store_info)}; bursts: {schedule} schedule")
    print(table([
        ("alerts posted (webhooks)", f"{total_alerts} ({len(bodies)})", "", ""),
        ("all persisted + matched", f"{persisted_s:.2f} s", "", ""),
        ("alerts/s", f"{data['alerts_per_s']:.0f}", "", ""),
        ("CPU s during the storm", ", ".join(f"{k} {v:.1f}" for k, v in cpu_s.items()),
         "", ""),
        ("webhook p99 latency", f"{data['latency_p99_ms']:.1f} ms", "", ""),
        ("HTTP statuses", str(dict(statuses)), "all 200",
         "yes" if set(statuses) == {200} else "NO"),
        ("outcomes", str(dict(outcomes)),
         f"{distinct} new, {total_alerts - distinct} duplicate",
         "yes" if data["met"]["outcomes"] else "NO"),
        ("incidents (API)", str(n_incidents), str(STORM_TARGETS),
         "yes" if n_incidents == STORM_TARGETS else "NO"),
        ("distinct alerts in incidents", str(len(stored)), str(distinct),
         "yes" if len(stored) == distinct else "NO"),
        ("runs in progress after wait", f"{still_running} after {settled_s:.0f} s", "", ""),
        ("daemon RSS idle / peak", f"{rss_idle:.0f} / {peak:.0f} MB", "peak < 200 MB",
         "yes" if peak < 200 else "NO"),
    ]))
    print(f"results: {path}")
    return data


EVIDENCE_PLAYBOOK = """\
apiVersion: remediator/v1
kind: Playbook
metadata: {name: storm-evidence}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}",
           name: "{{ labels.deployment }}"}
  steps:
    - name: restart
      action: kubernetes.restart
      verify:
        promql: 'deployment:http_errors:ratio_rate1m{deployment="{{ target.name }}"} < 0.05'
        for: 1s
        timeout: 5s
        interval: 1s
"""
#: the probes' deployments (the storm's are svc-0000 … svc-0499)
PROBE_BASE = 7000


def start_fakes(tmp: Path) -> tuple[Proc, dict[str, Any], Path]:
    out = tmp / "fakes.json"
    proc = Proc([PY, str(Path(__file__).parent / "_fakes.py"), str(out)], "storm-fakes")
    for _ in range(300):
        if out.exists() and out.read_text():
            return proc, json.loads(out.read_text()), out
        time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"the fake servers did not start: see {proc.log_path}")


def post(url: str, body: bytes) -> float:
    """POST the webhook; the wall time just before it is sent."""
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    sent = time.time()
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()
    return sent


def escalated(url: str) -> int:
    _, data = http_get(url + "/api/v1/incidents?state=escalated&limit=1000", timeout=60)
    return len((data or {}).get("incidents") or [])


def probe_reactions(url: str, sent: dict[str, float], wait: float = 60.0) -> list[float]:
    """Each probe incident's first step start - its post time (ms), once all started."""
    deadline = time.time() + wait
    found: dict[str, float] = {}
    while time.time() < deadline and len(found) < len(sent):
        _, data = http_get(url + "/api/v1/incidents?limit=1000", timeout=60)
        for row in (data or {}).get("incidents") or []:
            name = str((row.get("target") or {}).get("name") or "")
            if name in sent and name not in found:
                _, inc = http_get(f"{url}/api/v1/incidents/{row['id']}", timeout=60)
                steps = (inc or {}).get("steps") or []
                if steps and steps[0].get("started_at"):
                    began = datetime.fromisoformat(steps[0]["started_at"]).timestamp()
                    found[name] = (began - sent[name]) * 1000
        time.sleep(0.5)
    return list(found.values())


def run_evidence_one(mode: str, probes: int) -> dict[str, Any]:
    """``mode``: "off" (no Slack), "slack" (Slack, ``notify.graphs: false``: the
    thread and the logs, no graphs), "graphs" (Slack with its graphs)."""
    tmp = tmpdir("storm-evidence")
    bodies, _keys = storm_bodies()
    bodies_file = tmp / "storm.jsonl"
    bodies_file.write_bytes(b"\n".join(bodies))
    books = tmp / "playbooks"
    books.mkdir()
    (books / "storm-evidence.yaml").write_text(EVIDENCE_PLAYBOOK)
    sim, _sim_url, kubeconfig = start_simulator(tmp, SIM_DEPLOYMENTS)
    fakes, where, out = start_fakes(tmp)
    with sim, fakes:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cfg = write_config(tmp, store=tmp / "storm.db", port=port, kubeconfig=kubeconfig,
                           dry_run=True, budget=1_000_000, max_parallel=1024,
                           playbooks=[books])
        extra = f"prometheus: {{url: '{where['prometheus']}'}}\n"
        if mode != "off":
            extra += (f"slack: {{token: '{where['token']}', base_url: '{where['slack']}/', "
                      f"default_channel: '#ops-alerts'}}\n")
        cfg.write_text(cfg.read_text().replace(
            "notify: {console: false}",
            f"notify: {{console: false, graphs: {str(mode == 'graphs').lower()}}}"))
        cfg.write_text(cfg.read_text() + extra)
        with start_daemon(cfg, f"remediator-storm-evidence-{mode}") as daemon:
            wait_ready(url, daemon)
            t0 = time.time()
            result = run_load(storm_plan(url + "/api/v1/alerts", bodies_file), tmp, "storm")
            while escalated(url) == 0 and time.time() - t0 < 60:
                time.sleep(0.2)                   # escalations (and graphs) begin
            sent: dict[str, float] = {}
            for k in range(probes):
                name = dep_name(PROBE_BASE + k)
                body = json.dumps(webhook([alert(k, dep=PROBE_BASE + k)])).encode()
                sent[name] = post(url + "/api/v1/alerts", body)
                time.sleep(0.05)
            probe_s = time.time() - t0
            reactions = probe_reactions(url, sent)
            n_escalated = escalated(url)
            cpu = cpu_seconds(daemon.pid)
        fakes.stop()
    done = json.loads(Path(f"{out}.done").read_text()) if Path(f"{out}.done").exists() else {}
    return {"mode": mode, "probes": probes, "probes_reacted": len(reactions),
            "reactions_ms": reactions, "reaction_p50_ms": pct(reactions, 50),
            "reaction_p99_ms": pct(reactions, 99),
            "storm_s": max(r["done"] for r in result["records"]) - t0,
            "probes_done_after_s": probe_s, "escalated_at_end": n_escalated,
            "daemon_cpu_s": cpu, "slack": done}


def run_evidence(probes: int, rounds: int) -> dict[str, Any]:
    """Each round: off, Slack without graphs, Slack with graphs (alternating rounds
    spread the shared machine's noise); p99s over all rounds' probes."""
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "slack": [], "graphs": []}
    for _ in range(rounds):
        for mode in runs:
            runs[mode].append(run_evidence_one(mode, probes))
            print(f"{mode}: p99 {runs[mode][-1]['reaction_p99_ms']:.1f} ms", flush=True)

    def p(mode: str, q: float) -> float:
        return pct([v for r in runs[mode] for v in r["reactions_ms"]], q)

    ratio = p("graphs", 99) / max(p("slack", 99), 1e-3)
    pngs = sum(r["slack"].get("pngs", 0) for r in runs["graphs"])
    data = {"runs": runs, "ratio_p99_graphs_vs_no_graphs": ratio,
            "met": {"reaction_p99_within_10pct": ratio <= 1.10, "graphs_drawn": pngs > 0,
                    "no_graphs_when_off": not any(r["slack"].get("pngs")
                                                  for r in runs["slack"])}}
    path = save("storm_evidence", data)
    print(table([
        ("probe reaction p50: off / Slack / +graphs",
         " / ".join(f"{p(m, 50):.1f}" for m in runs) + " ms", "", ""),
        ("probe reaction p99: off / Slack / +graphs",
         " / ".join(f"{p(m, 99):.1f}" for m in runs) + " ms",
         "graphs <= 1.10 x Slack", "yes" if ratio <= 1.10 else "NO"),
        ("probes reacted", " / ".join(str(sum(r["probes_reacted"] for r in runs[m]))
                                      for m in runs), str(probes * rounds), ""),
        ("PNGs uploaded (graphs)", str(pngs), "> 0", "yes" if pngs else "NO"),
        ("Slack messages (Slack / +graphs)", " / ".join(
            str(sum(r["slack"].get("messages", 0) for r in runs[m])) for m in ("slack", "graphs")),
         "", ""),
        ("daemon CPU s", " / ".join(f"{sum(r['daemon_cpu_s'] for r in runs[m]):.1f}"
                                    for m in runs), "", ""),
    ]))
    print(f"results: {path}")
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", choices=("open", "closed", "flood"), default="open",
                        help="bursts every 50 ms (open), each after the replies to the "
                             "last one and a 50 ms pause (closed), or all at once by wrk "
                             "(flood)")
    parser.add_argument("--store", choices=STORES, default="sqlite",
                        help="the daemon's store: a SQLite file, or a throw-away PostgreSQL")
    parser.add_argument("--pg-sync", choices=sorted(PG_SYNC), default="full",
                        help="PostgreSQL durability: full (fsync, synchronous_commit on) or "
                             "off (tests/ha/pgserver.py's settings)")
    parser.add_argument("--sse-clients", type=int, default=0,
                        help="also run the storm with this many event-stream clients "
                             "connected, and print the throughput ratio")
    parser.add_argument("--rounds", type=int, default=2,
                        help="with --sse-clients: storms without and with clients, each; "
                             "with --evidence: rounds of the three runs")
    parser.add_argument("--evidence", choices=("both",), default=None,
                        help="evidence off then on (fake Slack: graphs and logs at "
                             "escalation); probe reaction p99 compared")
    parser.add_argument("--probes", type=int, default=100)
    args = parser.parse_args()
    if args.evidence:
        run_evidence(args.probes, args.rounds)
        return 0
    if not args.sse_clients:
        run(args.store, args.pg_sync, args.schedule)
        return 0
    return compare_sse(args)


def compare_sse(args: argparse.Namespace) -> int:
    runs: dict[int, list[dict[str, Any]]] = {0: [], args.sse_clients: []}
    for _ in range(args.rounds):
        for n in runs:
            runs[n].append(run(args.store, args.pg_sync, args.schedule, sse=n))
    rate = {n: statistics.median(d["alerts_per_s"] for d in r) for n, r in runs.items()}
    ratio = rate[args.sse_clients] / rate[0]
    cpu = {n: statistics.median(d["daemon_cpu_s_storm_to_settled"] for d in r)
           for n, r in runs.items()}
    events = [e for d in runs[args.sse_clients] for e in d["sse_clients"].get("events", [])]
    connected = [d["sse_clients"].get("connected", 0) for d in runs[args.sse_clients]]
    summary = {"store": args.store, "rounds": args.rounds, "clients": args.sse_clients,
               "alerts_per_s": {str(n): [round(d["alerts_per_s"]) for d in r]
                                for n, r in runs.items()},
               "median_alerts_per_s": {str(n): round(v) for n, v in rate.items()},
               "ratio": ratio, "connected": connected,
               "daemon_cpu_s_storm_to_settled": {
                   str(n): [d["daemon_cpu_s_storm_to_settled"] for d in r]
                   for n, r in runs.items()},
               "daemon_cpu_ratio": cpu[args.sse_clients] / cpu[0],
               "events_per_client_min_max": [min(events, default=0), max(events, default=0)],
               "met": ratio > 0.9}
    path = save(result_name("storm", args.store, args.pg_sync) + "-sse-compare", summary)
    print(f"storm throughput (alerts/s, median of {args.rounds}): without clients "
          f"{rate[0]:.0f} {summary['alerts_per_s']['0']}; with {args.sse_clients} SSE clients "
          f"{rate[args.sse_clients]:.0f} {summary['alerts_per_s'][str(args.sse_clients)]}; "
          f"ratio {ratio:.3f} (target > 0.9: {'yes' if ratio > 0.9 else 'NO'})")
    print(f"daemon CPU s from the storm until settled (median): without {cpu[0]:.2f}, with "
          f"{cpu[args.sse_clients]:.2f}: x{summary['daemon_cpu_ratio']:.3f}")
    print(f"clients connected per run: {connected}; events received per client: "
          f"{summary['events_per_client_min_max'][0]}..{summary['events_per_client_min_max'][1]}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
