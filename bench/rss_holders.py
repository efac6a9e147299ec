"""Who holds the memory of a daemon that resumed a backlog: tracemalloc, in process.

Starts the real daemon (``remediator.app.Daemon``) in this process from a config and
store kept by ``bench/restart_backlog.py --keep DIR`` (a SIGKILLed daemon's store with
10,000 open incidents), with tracemalloc tracing, lets it resume for ``--seconds``,
then prints RSS, the traced total and the top allocation sites grouped by line (and by
file), and stops it. A simulated cluster of its own (3 Deployments) stands in for the
one the config pointed at, as in the benchmark.

    .venv/bin/python bench/rss_holders.py DIR [--seconds 10] [--top 25] [--trim]
        [--mallocstats] [--census] [--collect] [--uvloop] [--no-settle] [--maps] [--no-trace]

As ``remediator serve`` does, the heap is frozen once started (``settle_heap``) unless
``--no-settle``; ``--uvloop`` runs on uvloop's loop as serve does when it is installed.

``BENCH_REMEDIATOR_SRC=DIR`` runs the package of an older copy (before/after).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import re
import shutil
import sys
import tempfile
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if os.environ.get("BENCH_REMEDIATOR_SRC"):     # an older copy of the package (before/after)
    sys.path.insert(0, os.environ["BENCH_REMEDIATOR_SRC"])

from bench._common import rss_mb, start_simulator
from remediator.app import Daemon, settle_heap
from remediator.settings import Settings, load_settings


def prepare(args: argparse.Namespace, work: Path, kubeconfig: Path) -> Settings:
    """A copy of the kept store and config in ``work``, pointed at ``kubeconfig``."""
    src = Path(args.dir)
    for f in src.glob("backlog.db*"):
        shutil.copy(f, work / f.name)
    cfg = next(src.glob("config-*.yaml"))
    text = cfg.read_text().replace(str(src / "backlog.db"), str(work / "backlog.db"))
    text = re.sub(r"kubeconfig: '[^']*'", f"kubeconfig: '{kubeconfig}'", text)
    (work / cfg.name).write_text(text)
    return load_settings(work / cfg.name)


async def main_async(args: argparse.Namespace, settings: Settings) -> None:
    if not args.no_trace:
        tracemalloc.start(args.frames)
    daemon = Daemon(settings)
    await daemon.start()
    if not args.no_settle:
        settle_heap()           # as ``remediator serve`` does once started (gc.freeze)
    for second in range(int(args.seconds)):
        await asyncio.sleep(1)
        print(f"{second + 1:3d} s: RSS {rss_mb(os.getpid())[0]:.0f} MB, "
              f"SQLite {sqlite_mb():.1f} MB, "
              f"traced {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MB, "
              f"{len(asyncio.all_tasks())} tasks, running {daemon.engine.running}")
    if args.maps:
        print_maps()
    if args.mallocstats:
        print_mallocstats()
    if args.census:
        print_census(args.top)
    if args.collect:
        import gc
        freed = gc.collect()
        print(f"gc.collect(): {freed} unreachable objects freed; RSS "
              f"{rss_mb(os.getpid())[0]:.0f} MB")
        if args.census:
            print_census(args.top)
    if args.trim:
        before = rss_mb(os.getpid())[0]
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        print(f"malloc_trim(0): RSS {before:.0f} -> {rss_mb(os.getpid())[0]:.0f} MB "
              f"(freed by the allocator but kept, until trimmed)")
    if not args.no_trace:
        await report(args)
    await daemon.stop()


def sqlite_mb() -> float:
    """SQLite's own heap (``sqlite3_memory_used``) of the library ``_sqlite3`` links."""
    try:
        lib = ctypes.CDLL("libsqlite3.so.0")
    except OSError:
        return float("nan")
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return float(lib.sqlite3_memory_used()) / 2**20


def print_mallocstats() -> None:
    """pymalloc's own account (``sys._debugmallocstats``, written to fd 2): arenas held,
    bytes in live blocks, free bytes inside used pools, unused pools. Live blocks well
    below the arenas' total is fragmentation (freed memory pymalloc cannot give back)."""
    with tempfile.TemporaryFile("w+") as out:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read()
    keep = ("arenas allocated current", "arenas highwater", "bytes/arena",
            "bytes in allocated blocks", "bytes in available blocks", "unused pools")
    for line in text.splitlines():
        if any(k in line for k in keep):
            print("  " + line.strip())


def print_census(top: int) -> None:
    """Objects the garbage collector tracks, by type: count and shallow bytes."""
    import gc
    from collections import Counter
    count: Counter[str] = Counter()
    size: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        count[name] += 1
        size[name] += sys.getsizeof(obj)
    print(f"gc-tracked objects: {sum(count.values())}, {sum(size.values()) / 2**20:.1f} MB "
          "shallow")
    for name, n in size.most_common(top):
        print(f"  {n / 2**20:7.2f} MB {count[name]:8d}  {name}")


def print_maps() -> None:
    """The process's largest memory mappings by RSS (/proc/self/smaps)."""
    maps: list[tuple[int, str]] = []
    name = ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if not line[0].isupper() or ":" not in line.split()[0]:
            name = line
        elif line.startswith("Rss:"):
            maps.append((int(line.split()[1]), name))
    for kb, where in sorted(maps, reverse=True)[:8]:
        print(f"  {kb / 1024:7.1f} MB  {where[:110]}")


async def report(args: argparse.Namespace) -> None:
    snap = tracemalloc.take_snapshot()
    current, peak = tracemalloc.get_traced_memory()
    print(f"RSS {rss_mb(os.getpid())[0]:.0f} MB; traced {current / 2**20:.1f} MB "
          f"(peak {peak / 2**20:.1f} MB)")
    for key in ("filename", "lineno"):
        print(f"\ntop by {key}:")
        for stat in snap.statistics(key)[:args.top]:
            frame = stat.traceback[0]
            where = "/".join(Path(frame.filename).parts[-2:])
            print(f"  {stat.size / 2**20:7.2f} MB {stat.count:8d}  {where}:"
                  f"{frame.lineno if key == 'lineno' else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--frames", type=int, default=1)
    parser.add_argument("--maps", action="store_true", help="largest mappings at the end")
    parser.add_argument("--mallocstats", action="store_true",
                        help="pymalloc's arenas, pools and free bytes at the end")
    parser.add_argument("--census", action="store_true",
                        help="gc-tracked objects by type at the end (count, shallow size)")
    parser.add_argument("--collect", action="store_true",
                        help="at the end, a full garbage collection (and the census again)")
    parser.add_argument("--no-settle", action="store_true",
                        help="without serve's settle_heap (gc.freeze) after the start")
    parser.add_argument("--uvloop", action="store_true",
                        help="on uvloop's event loop, as the daemon runs when it is installed")
    parser.add_argument("--no-trace", action="store_true", help="RSS over time only")
    parser.add_argument("--trim", action="store_true",
                        help="at the end, RSS before and after glibc's malloc_trim(0)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="remediator-bench-holders-"))
    sim, _url, kubeconfig = start_simulator(work, 3)
    with sim:
        settings = prepare(args, work, kubeconfig)
        if args.uvloop:                       # as ``remediator serve`` runs (event_loop: auto)
            import uvloop
            uvloop.run(main_async(args, settings))
        else:
            asyncio.run(main_async(args, settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
