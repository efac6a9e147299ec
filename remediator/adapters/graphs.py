"""The GraphRenderer on matplotlib (Agg, no display), in a small process pool.

matplotlib holds the GIL for much of a drawing, so drawing in worker threads still
makes the event loop late (bench/README.md "Graphs": p99 26 ms vs 3 ms). The graphs are
therefore drawn in worker processes (``spawn``: nothing of the daemon's state is
inherited): the pool is made on the first graph, holds at most ``workers`` processes,
is given plain data (a ``GraphSpec``) and returns the PNG's bytes; ``close`` shuts it
down with the daemon. If the pool cannot be started (or breaks), the graphs are drawn
in worker threads instead, and the log says so.

Only matplotlib's object API is used (a ``Figure`` with its own Agg canvas, no
pyplot state), so the thread fallback can draw several graphs at once too. Series and
points are capped (``ports.graphs``): a graph costs the same whatever Prometheus
returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC

from remediator.ports.graphs import HEIGHT, MAX_POINTS, MAX_SERIES, WIDTH, GraphSpec

DPI = 100
log = logging.getLogger("remediator.graphs")


def _thin(points: tuple[tuple[float, float], ...]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return list(points)
    every = -(-len(points) // MAX_POINTS)
    return list(points[::every])


def render_png(spec: GraphSpec) -> bytes:
    """Draw ``spec`` (blocking: call it off the event loop)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    def when(t: float) -> float:
        return t / 86400.0             # matplotlib's dates: days since 1970-01-01 UTC

    for series in spec.series[:MAX_SERIES]:
        points = _thin(series.points)
        ax.plot([when(t) for t, _ in points], [v for _, v in points], linewidth=1.4,
                label=series.label[:60], marker="o" if len(points) < 30 else None,
                markersize=3)
    if spec.threshold is not None:
        ax.axhline(spec.threshold, color="#A30200", linestyle="--", linewidth=1.2,
                   label=f"threshold {spec.threshold:g}")
    for t, label in spec.marks:
        ax.axvline(when(t), color="#555555", linestyle=":", linewidth=1.0)
        ax.annotate(label[:30], (when(t), 1.0), xycoords=("data", "axes fraction"),
                    rotation=90, va="top", ha="right", fontsize=7, color="#555555")
    ax.set_xlim(when(spec.start), when(spec.end))
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
    ax.set_title(spec.title[:90], fontsize=10)
    ax.set_xlabel("UTC" + (f" — {spec.note}" if spec.note else ""), fontsize=8)
    ax.grid(True, alpha=0.3)
    if spec.series or spec.threshold is not None:
        ax.legend(fontsize=7, loc="upper left")
    if not spec.series:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center")
    caption = spec.query if len(spec.query) <= 140 else spec.query[:139] + "…"
    if spec.left_out:
        caption += f"  (+{spec.left_out} series not drawn)"
    fig.text(0.01, 0.01, caption, fontsize=7, color="#333333")
    fig.subplots_adjust(bottom=0.18)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


#: how much lower a worker's scheduling priority is than the daemon's (``nice``): on a
#: busy machine the event loop gets the CPU first, the graphs wait
NICENESS = 10


def _warm() -> None:
    """A worker's initializer: it ends with the daemon, at a lower priority, with
    matplotlib imported once."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent.sentinel,), daemon=True,
                         name="parent-watch").start()
    with contextlib.suppress(OSError, AttributeError):    # not everywhere; not needed
        os.nice(NICENESS)
    from matplotlib.backends import backend_agg  # noqa: F401


def _end_with(sentinel: int) -> None:
    """Exit as soon as the daemon is gone (killed: no ``close``), not linger."""
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


class MatplotlibRenderer:
    """Implements ``GraphRenderer``: at most ``workers`` graphs drawn at once, in
    worker processes (made on the first graph), or in threads if those cannot start."""

    WORKERS = 1
    #: kept for the benchmark and the fallback: graphs drawn at once
    PARALLEL = WORKERS

    def __init__(self, workers: int = WORKERS, *, processes: bool = True) -> None:
        self.workers = workers
        self._slots = asyncio.Semaphore(max(1, workers))
        self._pool: ProcessPoolExecutor | None = None
        self._niced: set[int] = set()
        self._threads = not processes          # True: draw in threads (the fallback)
        self.closed = False

    @property
    def mode(self) -> str:
        """"processes" or "threads": where the graphs are (or will be) drawn."""
        return "threads" if self._threads else "processes"

    def _start_pool(self) -> ProcessPoolExecutor | None:
        if self._pool is None and not self._threads:
            try:
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_warm)
            except (OSError, ValueError, RuntimeError) as exc:
                self._fall_back(f"the process pool cannot start: {exc!r}")
        return self._pool

    def _fall_back(self, why: str) -> None:
        log.warning("graphs are drawn in worker threads (the event loop may be slowed "
                    "while they draw): %s", why)
        self._threads = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def render(self, spec: GraphSpec) -> bytes:
        if self.closed:
            raise RuntimeError("the graph renderer is closed")
        async with self._slots:
            pool = self._start_pool()
            if pool is not None:
                try:
                    done = asyncio.get_running_loop().run_in_executor(pool, render_png, spec)
                    self._lower_priority(pool)
                    return await done
                except (BrokenProcessPool, OSError) as exc:
                    if self.closed:
                        raise
                    self._fall_back(f"the process pool broke: {exc!r}")
            return await asyncio.to_thread(render_png, spec)

    def _lower_priority(self, pool: ProcessPoolExecutor) -> None:
        """Lower the priority of workers just started, from here: the worker's own
        ``os.nice`` (its initializer) comes only after its interpreter has started and
        imported the daemon's main module, which would compete with the event loop."""
        procs = getattr(pool, "_processes", None) or {}   # pid → process (CPython's)
        for pid in list(procs):
            if pid not in self._niced:
                self._niced.add(pid)
                with contextlib.suppress(OSError, AttributeError):
                    os.setpriority(os.PRIO_PROCESS, pid, NICENESS)

    async def close(self) -> None:
        """Stop the worker processes (waits for them to exit, off the event loop)."""
        self.closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
