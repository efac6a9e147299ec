"""Shared helpers for the benchmarks: processes, readiness, RSS, payloads, results.

Everything listens on 127.0.0.1 with ports picked by the kernel; every process a
benchmark starts is stopped by it (``Proc`` is a context manager that SIGTERMs,
then SIGKILLs, only the process it started).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PY = str(ROOT / ".venv" / "bin" / "python")
# the playbooks of the code under test (BENCH_REMEDIATOR_SRC: an older copy has its own)
PLAYBOOKS = Path(os.environ.get("BENCH_REMEDIATOR_SRC") or ROOT) / "playbooks"
SIM_TOKEN = "remediator-simulator-token"
# Deployments seeded into the simulated cluster. Few on purpose: the simulator's
# controller tick is O(n^2) in deployments (232 ms per 1 s tick at 20 deployments on
# this machine) and would steal CPU from the daemon under test. Targets that do not
# exist still cost the daemon its full path (the first API call answers 404).
SIM_DEPLOYMENTS = 3


#: the event loop ``server.event_loop: auto`` gives the daemon; the baseline runs on it too
EVENT_LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> tuple[float, float]:
    """(current VmRSS, peak VmHWM) of ``pid`` in MB, from /proc."""
    cur = peak = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return cur, peak


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by ``pid`` (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def written_bytes(pid: int) -> int:
    """Bytes ``pid`` has caused to be written to storage so far (``write_bytes`` of
    /proc/PID/io: its files, WAL and checkpoints included)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid``, its live descendants and the children it has reaped
    (PostgreSQL's backends: the postmaster reaps them)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        total += cpu_seconds(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        todo += [int(k) for k in kids]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        pass
    return total


def tree_rss_mb(pid: int) -> float:
    """Current RSS of ``pid`` plus all its descendants (MB)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        total += rss_mb(p)[0]
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        todo += [int(k) for k in kids]
    return total


class Proc:
    """A child process stopped (TERM, then KILL) on exit; its stderr goes to a log file."""

    def __init__(self, argv: list[str], name: str, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.log_path = RESULTS / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.started = time.perf_counter()
        self.popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self._log,
                                      env={**os.environ, **(env or {})}, cwd=cwd or ROOT,
                                      start_new_session=True)
        self.pid = self.popen.pid

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_get(url: str, timeout: float = 10.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


def loop_lag(url: str) -> dict[str, float]:
    """``remediator_event_loop_lag_seconds`` since start: samples, and how many were
    later than 10 / 50 / 100 ms."""
    buckets: dict[float, float] = {}
    count = 0.0
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("remediator_event_loop_lag_seconds_bucket"):
                le = line.split('le="')[1].split('"')[0]
                if le != "+Inf":
                    buckets[float(le)] = float(line.split()[1])
            elif line.startswith("remediator_event_loop_lag_seconds_count"):
                count = float(line.split()[1])
    return {"samples": count, **{f"over_{int(t * 1000)}ms": count - buckets.get(t, count)
                                 for t in (0.01, 0.05, 0.1)}}


def wait_ready(url: str, proc: Proc, timeout: float = 30.0, path: str = "/readyz") -> float:
    """Poll ``url+path`` every 5 ms until 200; seconds since the process was started."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"process exited ({proc.popen.returncode}); see {proc.log_path}")
        status, _ = http_get(url + path, timeout=1.0)
        if status == 200:
            return time.perf_counter() - proc.started
        time.sleep(0.005)
    raise RuntimeError(f"{url}{path} not ready after {timeout}s; see {proc.log_path}")


def write_seed(path: Path, deployments: int, namespace: str = "shop") -> Path:
    lines = ["nodes: 3", f"namespaces: [{namespace}]", "deployments:"]
    for i in range(deployments):
        lines.append(f"  - {{namespace: {namespace}, name: {dep_name(i)}, replicas: 1, "
                     f"image: example/app:1.0.0, history: [example/app:0.9.0]}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def dep_name(i: int) -> str:
    return f"svc-{i:04d}"


def start_simulator(tmp: Path, deployments: int) -> tuple[Proc, str, Path]:
    """The simulated cluster in its own process; (proc, url, kubeconfig path)."""
    port = free_port()
    seed = write_seed(tmp / "seed.yaml", deployments)
    kubeconfig = tmp / "sim.kubeconfig"
    proc = Proc([PY, "-m", "remediator.simulator", "--listen", f"127.0.0.1:{port}",
                 "--seed", str(seed), "--kubeconfig-out", str(kubeconfig)], "simulator")
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if kubeconfig.exists() and http_get(url + "/sim/v1/faults")[0] == 200:
            return proc, url, kubeconfig
        time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"simulator did not start; see {proc.log_path}")


def write_config(tmp: Path, *, store: Path | str, port: int, kubeconfig: Path | None,
                 dry_run: bool, console: bool = False, budget: int = 20,
                 log_level: str = "INFO", max_parallel: int = 32,
                 diagnosis: bool | None = None,
                 playbooks: list[Path | None] | None = None) -> Path:
    """``playbooks``: directories in load order (None: the shipped ones), default those."""
    dirs = ", ".join(f'"{d or PLAYBOOKS}"' for d in (playbooks or [None]))
    k8s = (f"kubernetes: {{mode: kubeconfig, kubeconfig: '{kubeconfig}'}}" if kubeconfig
           else "kubernetes: {mode: none}")
    cfg = tmp / f"config-{port}.yaml"
    cfg.write_text(f"""\
server: {{listen: "127.0.0.1:{port}"}}
store: {{path: "{store}", synchronous: FULL}}
playbooks: [{dirs}]
engine: {{dry_run: {str(dry_run).lower()}, action_budget: {budget}, max_parallel: {max_parallel}{
    "" if diagnosis is None else f", diagnosis: {{enabled: {str(diagnosis).lower()}}}"}}}
{k8s}
notify: {{console: {str(console).lower()}}}
log: {{level: {log_level}, format: json}}
""")
    return cfg


def start_daemon(cfg: Path, name: str = "remediator") -> Proc:
    """``remediator serve``; BENCH_REMEDIATOR_SRC=DIR runs the copy of the package in DIR
    (for before/after comparisons of a fix without touching the work tree)."""
    src = os.environ.get("BENCH_REMEDIATOR_SRC") or ROOT
    return Proc([PY, "-m", "remediator.cli", "serve", "--config", str(cfg)], name, cwd=src)


def alert(i: int, *, dep: int, instance: int = 0, starts: datetime | None = None,
          alertname: str = "HighErrorRate") -> dict[str, Any]:
    starts = starts or datetime(2026, 11, 21, 23, 0, tzinfo=UTC) + timedelta(seconds=i)
    labels = {"alertname": alertname, "deployment": dep_name(dep),
              "instance": f"10.0.{instance // 250}.{instance % 250}:8080", "job": dep_name(dep),
              "namespace": "shop", "severity": "critical"}
    fp = f"{zlib.crc32(alertname.encode()):08x}{dep:04x}{instance:04x}"
    return {"status": "firing", "labels": labels,
            "annotations": {"runbook_url": "https://runbooks.example/HighErrorRate",
                            "summary": "5xx ratio above 5% for 5m"},
            "startsAt": starts.isoformat().replace("+00:00", "Z"),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=job%3Ahttp_errors",
            "fingerprint": fp}


def webhook(alerts: list[dict[str, Any]], group: str = "") -> dict[str, Any]:
    """An Alertmanager v4 payload around ``alerts`` (shape of tests/data/webhooks)."""
    common = {"alertname": alerts[0]["labels"]["alertname"], "namespace": "shop"}
    return {"receiver": "remediator", "status": "firing", "alerts": alerts,
            "groupLabels": common, "commonLabels": common,
            "commonAnnotations": alerts[0]["annotations"], "externalURL": "http://am:9093",
            "version": "4", "groupKey": "{}:" + json.dumps(group or common, sort_keys=True),
            "truncatedAlerts": 0}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(pct(values, 50) * 1000, 3),
            "p99_ms": round(pct(values, 99) * 1000, 3),
            "max_ms": round(max(values) * 1000, 3) if values else float("nan"),
            "mean_ms": round(statistics.fmean(values) * 1000, 3) if values else float("nan")}


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu": cpu,
            "cores": os.cpu_count(), "mem_mb": mem, "python": sys.version.split()[0],
            "platform": platform.platform(), "commit": rev}


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **data}, indent=2,
                               default=str))
    return path


def table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("metric", "value", "target", "met")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    out = [" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
           "-+-".join("-" * w for w in widths)]
    out += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"remediator-bench-{prefix}-"))


STORM_TARGETS = 500
STORM_ALERTS_PER_TARGET = 5      # distinct alerts (instances) per target
STORM_HA = 2                     # identical copies, one per Alertmanager replica
STORM_REPEATS = 2                # repeat_interval re-sends of the same group


def storm_bodies() -> tuple[list[bytes], list[list[tuple[str, str]]]]:
    """The storm: 10,000 firing alerts for 500 targets, as 2,000 webhooks of 5 alerts.

    Each target's group (5 alerts) is sent by 2 HA Alertmanagers (adjacent, racing) and
    re-sent once more later (a repeat), so 2,500 distinct alerts arrive 4 times each.
    Within each pass the order is shuffled (seeded). Returns the bodies and, for each
    body, its alerts' (fingerprint, startsAt).
    """
    import random
    rng = random.Random(42)
    groups = []
    for dep in range(STORM_TARGETS):
        alerts = [alert(dep * STORM_ALERTS_PER_TARGET + k, dep=dep, instance=k)
                  for k in range(STORM_ALERTS_PER_TARGET)]
        groups.append(alerts)
    order: list[list[dict[str, Any]]] = []
    for _ in range(STORM_REPEATS):
        targets = list(range(STORM_TARGETS))
        rng.shuffle(targets)
        for dep in targets:
            order += [groups[dep]] * STORM_HA
    bodies = [json.dumps(webhook(a, group=f"svc={a[0]['labels']['deployment']}")).encode()
              for a in order]
    keys = [[(x["fingerprint"], x["startsAt"]) for x in a] for a in order]
    return bodies, keys


def storm_plan(url: str, bodies_file: Path, *, concurrency: int = 32, burst: int = 200,
               pause: float = 0.05, kill_pid: int | None = None,
               kill_after_acks: int | None = None, schedule: str = "open") -> dict[str, Any]:
    """Bursts of ``burst`` webhooks every ``pause`` seconds (``open``), or each one
    ``pause`` after the last reply to the one before (``closed``: a slow server slows
    the storm down, and a fast one waits out every pause)."""
    n = len(bodies_file.read_bytes().splitlines())
    if schedule == "flood":       # every burst released at once: the server's own pace
        schedule, pause = "open", 0.0
    return {"url": url, "concurrency": concurrency, "mode": "bursts",
            "bodies_file": str(bodies_file), "bursts": [burst] * -(-n // burst),
            "pause": pause, "schedule": schedule, "kill_pid": kill_pid,
            "kill_after_acks": kill_after_acks}


def run_load(plan: dict[str, Any], tmp: Path, name: str, timeout: float = 600) -> dict[str, Any]:
    """Run bench/_load.py in its own process on ``plan``; its result."""
    plan_file, out = tmp / f"plan-{name}.json", tmp / f"result-{name}.json"
    plan_file.write_text(json.dumps(plan))
    proc = Proc([PY, str(BENCH / "_load.py"), str(plan_file), str(out)], f"load-{name}")
    try:
        proc.popen.wait(timeout=timeout)
    finally:
        proc.stop()
    return dict(json.loads(out.read_text()))


# --- the store under test -----------------------------------------------------------

STORES = ("sqlite", "postgresql")
# PostgreSQL settings of a run: "full" is as durable as SQLite's synchronous=FULL (each
# commit flushed to disk before the reply); "off" keeps tests/ha/pgserver.py's own settings
# (fsync, synchronous_commit and full_page_writes off: fast, not crash-safe).
PG_SYNC = {"full": {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"},
           "off": {}}
_PG_SHOWN = ("server_version", "fsync", "synchronous_commit", "full_page_writes",
             "wal_level", "shared_buffers", "max_connections")


def _pg_bindir(real: Path, settings: dict[str, str], tmp: Path) -> Path:
    """A bindir for tests/ha/pgserver.PgServer whose ``postgres`` appends ``settings``
    (later ``-c`` options win over PgServer's own); the other programs are symlinks."""
    if not settings:
        return real
    bindir = tmp / "pgbin"
    bindir.mkdir()
    for prog in real.iterdir():
        if prog.name != "postgres":
            (bindir / prog.name).symlink_to(prog)
    extra = " ".join(f"-c {k}={v}" for k, v in settings.items())
    wrapper = bindir / "postgres"
    wrapper.write_text(f'#!/bin/sh\nexec "{real / "postgres"}" "$@" {extra}\n')
    wrapper.chmod(0o755)
    for d in (tmp, bindir):            # the server runs as the postgres user when we are root
        d.chmod(0o755)
    return bindir


@contextlib.contextmanager
def store_for(kind: str, tmp: Path, name: str, pg_sync: str = "full"
              ) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(store.path, description)`` for a daemon run: a SQLite file in ``tmp``, or a fresh
    database on a throw-away PostgreSQL server (tests/ha/pgserver.py) on 127.0.0.1,
    stopped (and its data directory removed) on exit."""
    if kind == "sqlite":
        yield str(tmp / f"{name}.db"), {"store": "sqlite", "journal_mode": "WAL",
                                         "synchronous": "FULL"}
        return
    if kind != "postgresql":
        raise ValueError(f"unknown store {kind!r}")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.ha.pgserver import PgServer, find_bindir

    real = find_bindir()
    if real is None or not (real / "postgres").exists():
        raise RuntimeError("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin)")
    wrapdir = Path(tempfile.mkdtemp(prefix=f"remediator-bench-pgbin-{name}-"))
    server = PgServer(_pg_bindir(real, PG_SYNC[pg_sync], wrapdir))
    try:
        server.start()
        url = server.create_database(name)
        shown = subprocess.run(
            [str(real / "psql"), "-d", "postgres", "-Atc",
             "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY('{"
             + ",".join(_PG_SHOWN) + "}') ORDER BY name"],
            env=server.env, capture_output=True, text=True, check=True, timeout=30).stdout
        settings = {}
        for line in shown.splitlines():
            key, value = line.split("|", 1)
            settings[key] = value
        if pg_sync == "full" and settings.get("fsync") != "on":
            raise RuntimeError(f"PostgreSQL settings not applied: {settings}")
        assert server.proc is not None
        yield url, {"store": "postgresql", "pg_sync": pg_sync, "server": settings,
                    "database": url.rsplit("/", 1)[1], "server_pid": server.proc.pid}
    finally:
        server.stop()
        shutil.rmtree(wrapdir, ignore_errors=True)


def store_label(info: dict[str, Any]) -> str:
    if info["store"] == "sqlite":
        return "SQLite (WAL, synchronous=FULL)"
    s = info["server"]
    return (f"PostgreSQL {s.get('server_version', '?')} (fsync={s.get('fsync')}, "
            f"synchronous_commit={s.get('synchronous_commit')})")


def result_name(base: str, store: str, pg_sync: str = "full") -> str:
    """``base`` for SQLite (as before), ``base-postgresql`` or ``base-postgresql-sync-off``."""
    if store == "sqlite":
        return base
    return f"{base}-{store}" + ("" if pg_sync == "full" else f"-sync-{pg_sync}")


def settle(url: str, seconds: float = 20.0, allowed: int = 0) -> tuple[float, int]:
    """Wait until at most ``allowed`` incident runs are in progress, at most ``seconds``;
    (waited, still running).

    Runs may legitimately stay in progress (a verification waiting out its ``for``)."""
    t0 = time.perf_counter()
    running = -1
    while time.perf_counter() - t0 < seconds:
        status, data = http_get(url + "/api/v1/status")
        running = int(data.get("running_incidents", -1)) if status == 200 and data else -1
        if 0 <= running <= allowed:
            break
        time.sleep(0.2)
    return time.perf_counter() - t0, running


def wrk_path() -> str:
    """The ``wrk`` load generator (Debian's package), or a clear exit: the benchmarks that
    need it do not fall back to a Python client, which is itself the bottleneck here."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: `apt-get install -y wrk` (Debian), then run "
                         "this benchmark again")
    return path
