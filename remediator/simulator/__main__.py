"""``remediator simulator`` / ``python -m remediator.simulator``: run the simulated cluster.

    python -m remediator.simulator --listen 127.0.0.1:8001 --seed seed.yaml \
        --kubeconfig-out /tmp/sim.kubeconfig

Runs on the system clock until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from remediator.simulator import seed as seeds
from remediator.simulator.server import Simulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remediator simulator",
        description="A simulated Kubernetes API server (and /metrics) for demos and tests.")
    parser.add_argument("--listen", default="127.0.0.1:8001", metavar="HOST:PORT",
                        help="address to serve on (port 0: any free port)")
    parser.add_argument("--seed", metavar="FILE", help="seed YAML (default: an example cluster)")
    parser.add_argument("--kubeconfig-out", metavar="FILE",
                        help="write a kubeconfig pointing at the simulator here")
    return parser


async def _serve(sim: Simulator, host: str, port: int, kubeconfig: str | None) -> None:
    url = await sim.start(host, port)
    if kubeconfig:
        sim.write_kubeconfig(kubeconfig)
    print(f"simulator listening on {url}" + (f"; kubeconfig {kubeconfig}" if kubeconfig else ""),
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        print(f"--listen: expected HOST:PORT, got {args.listen!r}", file=sys.stderr)
        return 2
    try:
        seed = seeds.load_file(args.seed) if args.seed else None
    except (OSError, ValueError) as err:
        print(f"--seed {args.seed}: {err}", file=sys.stderr)
        return 2
    asyncio.run(_serve(Simulator(seed), host, int(port), args.kubeconfig_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
