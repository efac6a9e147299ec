"""Routing cost per alert: 7 shipped playbooks against 500 (493 matching on a per-alert
``instance`` label, loaded first), in process, CPU time.

20,000 firing HighErrorRate alerts over 500 Deployments, each with its own
``instance`` (so the router's memo on matched label values misses on every alert with
the 500), routed by ``Router.routes`` (select + target + incident key), twice per set
in alternation. ``--src DIR`` measures the ``remediator`` package of another checkout
(e.g. an older commit unpacked with ``git archive``) in a fresh interpreter.

    .venv/bin/python bench/routing.py [--src DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(src: Path, synthetic: Path) -> str:
    sys.path.insert(0, str(src))
    from remediator.engine.routing import Router
    from remediator.loader import load_paths
    from remediator.model.alerts import Alert, fingerprint
    shipped = load_paths([src / "playbooks"])
    many = load_paths([synthetic, src / "playbooks"])
    alerts = []
    for n in range(20_000):
        labels = {"alertname": "HighErrorRate", "deployment": f"svc-{n % 500:04d}",
                  "instance": f"10.{n // 65536}.{n // 256 % 256}.{n % 256}:8080",
                  "job": "x", "namespace": "shop", "severity": "critical"}
        alerts.append(Alert(status="firing", labels=labels, annotations={"summary": "s"},
                            startsAt=datetime(2026, 11, 22, tzinfo=UTC),
                            fingerprint=fingerprint(labels)))
    out = []
    for name, pbs in (("7", shipped), ("500", many), ("7", shipped), ("500", many)):
        router = Router(pbs)
        t0 = time.process_time()
        for a in alerts:
            router.routes(a, dry_run=True)
        out.append(f"{name} playbooks {(time.process_time() - t0) / len(alerts) * 1e6:.1f}")
    return " | ".join(out) + " µs/alert"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=str(ROOT))
    parser.add_argument("--synthetic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.synthetic:                       # the child: measure and print
        print(measure(Path(args.src).resolve(), Path(args.synthetic)))
        return 0
    sys.path.insert(0, str(ROOT))
    from bench.wrk_intake import synthetic_playbooks
    synthetic = synthetic_playbooks(Path(tempfile.mkdtemp(prefix="remediator-bench-")) / "s")
    # a fresh interpreter, so that only the package under --src is imported
    done = subprocess.run([sys.executable, __file__, "--src", args.src,
                           "--synthetic", str(synthetic)], cwd=tempfile.gettempdir(),
                          check=True, capture_output=True, text=True)
    print(f"{args.src}: {done.stdout.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
