"""The same storm against a peer: Ansible's event-driven engine (ansible-rulebook).

The peer runs from its own venv, bench/.peer-venv (gitignored), created on first
use with ``pip install ansible-rulebook ansible-core``. ansible-rulebook (≥ 1.0)
ships the ``eda.builtin.webhook`` source and the ``eda.builtin.event_splitter``
filter itself (no ansible.eda collection from Galaxy needed), and runs its rules in
Drools through drools-jpy, so it needs a JDK (17 here, found from ``java`` on
PATH). The rulebook: webhook source on 127.0.0.1, event_splitter on
``payload.alerts``, one rule ``event.status == "firing"`` whose action is
``debug`` printing the alert's fingerprint (stdout unbuffered, to a file).

Measured, with the storm of bench/storm.py (10,000 alerts in 2,000 webhooks,
bursts of 200 every 50 ms over 32 connections, load in a separate process):

1. throughput: alerts/s until every alert is *processed* (the peer acknowledges
   from an in-memory queue, so 200 is not enough: we count debug outputs), against
   remediator's alerts/s until every alert is persisted and matched (storm.py,
   same run); peak RSS of each (the peer's JVM is inside its Python process).
2. loss on SIGKILL: the load process kills the server right after the 800th
   acknowledged webhook (40% of the storm). Acked alerts = distinct
   (fingerprint, startsAt) in webhooks answered 200. remediator is restarted on the
   same SQLite file and its API (/api/v1/incidents) is asked which alerts it holds;
   the peer's processed alerts are the fingerprints its debug action printed.
   lost = acked − held/processed.

Targets (issue #20): remediator's storm ≥ 30× faster than the peer with a peak RSS
under 80 MB; zero acked alerts lost by remediator.

    .venv/bin/python bench/peer.py [--skip-remediator-storm] [--schedule open|flood]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import storm
from bench._common import (
    BENCH,
    RESULTS,
    SIM_DEPLOYMENTS,
    free_port,
    run_load,
    save,
    start_daemon,
    start_simulator,
    storm_bodies,
    storm_plan,
    table,
    tmpdir,
    tree_rss_mb,
    wait_ready,
    write_config,
)

PEER_VENV = BENCH / ".peer-venv"
KILL_AFTER_ACKS = 800
ALERT_LINE = re.compile(rb"^ALERT ([0-9a-f]{16})$", re.M)

RULEBOOK = """\
- name: alertmanager storm
  hosts: all
  sources:
    - eda.builtin.webhook:
        host: 127.0.0.1
        port: {port}
      filters:
        - eda.builtin.event_splitter:
            splitter_key: payload.alerts
  rules:
    - name: firing alert
      condition: event.status == "firing"
      action:
        debug:
          msg: "ALERT {{{{ event.fingerprint }}}}"
"""


def ensure_peer() -> tuple[Path, dict[str, str]]:
    """The peer's venv (created when missing) and the environment it runs with."""
    exe = PEER_VENV / "bin" / "ansible-rulebook"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "-q", "ansible-rulebook",
                        "ansible-core"], check=True)
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("no java on PATH: ansible-rulebook needs a JDK (17+)")
    java_home = Path(os.path.realpath(java)).parent.parent
    env = {"JAVA_HOME": str(java_home), "PYTHONUNBUFFERED": "1",
           "PATH": f"{PEER_VENV / 'bin'}:{os.environ.get('PATH', '')}",
           "ANSIBLE_LOCAL_TEMP": "/tmp/remediator-bench-ansible"}
    return exe, env


class Peer:
    """ansible-rulebook on a free port; stdout (the debug outputs) to a file."""

    def __init__(self, tmp: Path, name: str) -> None:
        exe, env = ensure_peer()
        self.port = free_port()
        rulebook = tmp / f"rulebook-{name}.yml"
        rulebook.write_text(RULEBOOK.format(port=self.port))
        inventory = tmp / "inventory.yml"
        inventory.write_text("all: {hosts: {localhost: {ansible_connection: local}}}\n")
        self.out_path = RESULTS / f"peer-{name}.out"
        self._out = open(self.out_path, "wb")  # noqa: SIM115
        self.started = time.perf_counter()
        self.popen = subprocess.Popen([str(exe), "-r", str(rulebook), "-i", str(inventory)],
                                      stdout=self._out, stderr=subprocess.STDOUT,
                                      env={**os.environ, **env}, cwd=tmp,
                                      start_new_session=True)
        self.pid = self.popen.pid
        self.url = f"http://127.0.0.1:{self.port}/alerts"

    def wait_ready(self, timeout: float = 60.0) -> float:
        import urllib.request
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"ansible-rulebook exited; see {self.out_path}")
            req = urllib.request.Request(self.url, data=b'{"alerts": []}',
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=1) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"ansible-rulebook not ready after {timeout}s")

    def processed(self) -> list[bytes]:
        self._out.flush()
        return ALERT_LINE.findall(self.out_path.read_bytes())

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._out.close()


class RssSampler(threading.Thread):
    """Peak RSS of a process tree, sampled every 100 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._stop_evt = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self._stop_evt.wait(0.1):
            self.peak = max(self.peak, tree_rss_mb(self.pid))

    def stop(self) -> float:
        self._stop_evt.set()
        self.join()
        return self.peak


def acked_alerts(records: list[dict[str, Any]],
                 keys: list[list[tuple[str, str]]]) -> set[tuple[str, str]]:
    return {(fp, storm.norm_ts(ts)) for r in records if r and r["status"] == 200
            for fp, ts in keys[r["i"]]}


def peer_storm(tmp: Path, bodies_file: Path, total: int) -> dict[str, Any]:
    peer = Peer(tmp, "storm")
    try:
        ready_s = peer.wait_ready()
        sampler = RssSampler(peer.pid)
        sampler.start()
        result = run_load(storm_plan(peer.url, bodies_file), tmp, "peer-storm")
        # from the first post, as remediator's storm time (not from the load process's
        # start, which added its ~0.3 s of imports to the peer's time)
        t0 = min(r["sent"] for r in result["records"] if r)
        acked_s = max(r["done"] for r in result["records"]) - t0
        # processed: wait for every debug output, or 20 s without progress
        last_n, last_change, done_at = -1, time.time(), None
        while True:
            n = len(peer.processed())
            now = time.time()
            if n != last_n:
                last_n, last_change = n, now
            if n >= total:
                done_at = now
                break
            if now - last_change > 20:
                break
            time.sleep(0.05)
        peak = sampler.stop()
        processed_s = (done_at or last_change) - t0
        statuses: dict[str, int] = {}
        for r in result["records"]:
            statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
        return {"ready_s": ready_s, "acked_all_s": acked_s, "processed": last_n,
                "processed_all_s": processed_s if done_at else None,
                "alerts_per_s": last_n / processed_s, "statuses": statuses,
                "peak_rss_mb": peak, "rss_sampled": "process tree, every 100 ms"}
    finally:
        peer.stop()


def peer_kill(tmp: Path, bodies_file: Path, keys: list[list[tuple[str, str]]]) -> dict[str, Any]:
    peer = Peer(tmp, "kill")
    try:
        peer.wait_ready()
        result = run_load(storm_plan(peer.url, bodies_file, kill_pid=peer.pid,
                                     kill_after_acks=KILL_AFTER_ACKS), tmp, "peer-kill")
        peer.popen.wait(10)
        acked = acked_alerts(result["records"], keys)
        acked_fps = {fp for fp, _ in acked}
        printed = {fp.decode() for fp in peer.processed()}
        lost = acked_fps - printed
        return {"acked_webhooks": sum(1 for r in result["records"] if r["status"] == 200),
                "acked_alerts": len(acked_fps), "processed_alerts": len(acked_fps & printed),
                "lost_acked_alerts": len(lost), "killed": result["killed_at"] is not None}
    finally:
        peer.stop()


def remediator_kill(tmp: Path, bodies_file: Path,
                    keys: list[list[tuple[str, str]]]) -> dict[str, Any]:
    sim, _sim_url, kubeconfig = start_simulator(tmp, SIM_DEPLOYMENTS)
    with sim:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        store = tmp / "kill.db"
        cfg = write_config(tmp, store=store, port=port, kubeconfig=kubeconfig, dry_run=True,
                           budget=1_000_000)
        daemon = start_daemon(cfg, "remediator-kill")
        try:
            wait_ready(url, daemon)
            result = run_load(storm_plan(url + "/api/v1/alerts", bodies_file,
                                         kill_pid=daemon.pid, kill_after_acks=KILL_AFTER_ACKS),
                              tmp, "remediator-kill")
            daemon.popen.wait(10)
            killed_rc = daemon.popen.returncode
        finally:
            daemon.stop()
        acked = acked_alerts(result["records"], keys)
        with start_daemon(cfg, "remediator-kill-restart") as again:
            wait_ready(url, again)
            n_incidents, held = storm.incidents_and_alerts(url)
    lost = acked - held
    return {"acked_webhooks": sum(1 for r in result["records"] if r["status"] == 200),
            "acked_alerts": len(acked), "held_after_restart": len(acked & held),
            "lost_acked_alerts": len(lost), "incidents_after_restart": n_incidents,
            "killed": result["killed_at"] is not None, "exit_code": killed_rc}


# issue #20: the storm >= 30x the peer, with a peak RSS under 80 MB
SPEEDUP_MIN = 30
RSS_MAX = 80


def run(remediator_storm: bool = True, schedule: str = "open") -> dict[str, Any]:
    tmp = tmpdir("peer")
    bodies, keys = storm_bodies()
    bodies_file = tmp / "storm.jsonl"
    bodies_file.write_bytes(b"\n".join(bodies))
    total = sum(len(k) for k in keys)
    ours: dict[str, Any]
    if remediator_storm:
        ours = storm.run(schedule=schedule)
    else:
        import json
        ours = json.loads((RESULTS / "storm.json").read_text())
    theirs = peer_storm(tmp, bodies_file, total)
    kill_ours = remediator_kill(tmp, bodies_file, keys)
    kill_theirs = peer_kill(tmp, bodies_file, keys)
    speedup = ours["alerts_per_s"] / theirs["alerts_per_s"] if theirs["alerts_per_s"] else 0.0
    data = {"peer": "ansible-rulebook " + _peer_version(), "storm_alerts": total,
            "remediator": {"alerts_per_s": ours["alerts_per_s"],
                           "schedule": ours.get("schedule", "open"),
                           "peak_rss_mb": ours["peak_rss_mb"], "kill": kill_ours},
            "ansible_rulebook": {**theirs, "kill": kill_theirs},
            "speedup": speedup,
            "targets": {"speedup_min": SPEEDUP_MIN, "peak_rss_mb_max": RSS_MAX,
                        "remediator_lost_max": 0},
            "met": {"speedup": speedup >= SPEEDUP_MIN, "rss": ours["peak_rss_mb"] < RSS_MAX,
                    "no_loss": kill_ours["lost_acked_alerts"] == 0 and kill_ours["killed"]}}
    path = save("peer", data)
    print(table([
        ("remediator storm alerts/s (persisted+matched)", f"{ours['alerts_per_s']:.0f}", "", ""),
        ("ansible-rulebook alerts/s (processed)", f"{theirs['alerts_per_s']:.0f}"
         + ("" if theirs["processed_all_s"] else f" (only {theirs['processed']} processed)"),
         "", ""),
        ("speedup", f"{speedup:.1f}x", f">= {SPEEDUP_MIN}x",
         "yes" if speedup >= SPEEDUP_MIN else "NO"),
        ("peak RSS remediator / peer", f"{ours['peak_rss_mb']:.0f} / "
         f"{theirs['peak_rss_mb']:.0f} MB", f"< {RSS_MAX} MB (ours)",
         "yes" if ours["peak_rss_mb"] < RSS_MAX else "NO"),
        ("SIGKILL after 800 acks: remediator lost",
         f"{kill_ours['lost_acked_alerts']} of {kill_ours['acked_alerts']} acked", "0",
         "yes" if data["met"]["no_loss"] else "NO"),
        ("SIGKILL after 800 acks: peer lost",
         f"{kill_theirs['lost_acked_alerts']} of {kill_theirs['acked_alerts']} acked", "", ""),
    ]))
    print(f"results: {path}")
    return data


def _peer_version() -> str:
    try:
        out = subprocess.run([str(PEER_VENV / "bin" / "ansible-rulebook"), "--version"],
                             capture_output=True, text=True, timeout=60).stdout
        return out.split()[0] if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-remediator-storm", action="store_true",
                        help="reuse bench/results/storm.json instead of running storm.py")
    parser.add_argument("--schedule", choices=("open", "flood"), default="open",
                        help="remediator's storm: bursts every 50 ms from the Python load "
                             "process (open; it cannot finish under 0.45 s), or all at once "
                             "by wrk (flood). The peer always gets the open schedule: it "
                             "takes ~10 s, far slower than either load generator offers")
    args = parser.parse_args()
    run(not args.skip_remediator_storm, args.schedule)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
