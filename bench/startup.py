"""Startup: time from process start to the first /readyz 200, and idle RSS.

``remediator serve`` with the real playbooks and a fresh SQLite file (the schema
is created), in two Kubernetes modes: ``none`` and ``kubeconfig`` (pointing at the
simulated cluster in its own process, so kubernetes_asyncio is loaded and
connected). The clock starts just before ``Popen``; /readyz is polled every 5 ms.
Idle RSS is VmRSS two seconds after ready. Each mode is run ``--runs`` times; the
median is reported (the first run also pays for cold file caches).

Targets: ready < 1.5 s, idle RSS < 80 MB.

    .venv/bin/python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    SIM_DEPLOYMENTS,
    free_port,
    rss_mb,
    save,
    start_daemon,
    start_simulator,
    table,
    tmpdir,
    wait_ready,
    write_config,
)


def measure(tmp: Path, kubeconfig: Path | None, runs: int, name: str) -> dict[str, Any]:
    ready: list[float] = []
    rss: list[float] = []
    for n in range(runs):
        port = free_port()
        cfg = write_config(tmp, store=tmp / f"{name}-{n}.db", port=port, kubeconfig=kubeconfig,
                           dry_run=True)
        with start_daemon(cfg, f"remediator-startup-{name}") as daemon:
            ready.append(wait_ready(f"http://127.0.0.1:{port}", daemon))
            time.sleep(2.0)
            rss.append(rss_mb(daemon.pid)[0])
    return {"ready_s": ready, "ready_median_s": statistics.median(ready),
            "idle_rss_mb": rss, "idle_rss_median_mb": statistics.median(rss)}


def run(runs: int = 5) -> dict[str, Any]:
    tmp = tmpdir("startup")
    none = measure(tmp, None, runs, "none")
    sim, _url, kubeconfig = start_simulator(tmp, SIM_DEPLOYMENTS)
    with sim:
        kube = measure(tmp, kubeconfig, runs, "kubeconfig")
    worst_ready = max(none["ready_median_s"], kube["ready_median_s"])
    worst_rss = max(none["idle_rss_median_mb"], kube["idle_rss_median_mb"])
    data = {"runs": runs, "kubernetes_none": none, "kubernetes_kubeconfig": kube,
            "targets": {"ready_s_max": 1.5, "idle_rss_mb_max": 80},
            "met": {"ready": worst_ready < 1.5, "rss": worst_rss < 80}}
    path = save("startup", data)
    rows = []
    for label, m in (("mode none", none), ("mode kubeconfig", kube)):
        rows.append((f"{label}: start -> ready (median)", f"{m['ready_median_s']:.2f} s",
                     "< 1.5 s", "yes" if m["ready_median_s"] < 1.5 else "NO"))
        rows.append((f"{label}: idle RSS (median)", f"{m['idle_rss_median_mb']:.0f} MB",
                     "< 80 MB", "yes" if m["idle_rss_median_mb"] < 80 else "NO"))
    print(table(rows))
    print(f"results: {path}")
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    run(parser.parse_args().runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
