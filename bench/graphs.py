"""Incident graphs: how long one PNG takes, and what drawing them costs the event loop.

Draws ``--graphs`` graphs (3 series of 240 points, a threshold, 3 step marks: what an
escalation's verification graph holds) as ``adapters.graphs.MatplotlibRenderer`` does
(matplotlib Agg in its worker processes, ``WORKERS`` at once; the pool is started and
warmed by one graph before the measure) while a ticker on the event loop sleeps 5 ms
again and again and records how late each wake-up is. Baseline, in the same run: the
same ticker with nothing drawing. For contrast, the same graphs drawn in worker threads
(``THREADS`` at once: what the daemon did before the pool; its fallback now) and on the event loop
itself. Printed: render p50/p99 (ms; in processes: the round trip, in threads: the
drawing), the ticker's lateness p50/p99 per mode and the ratios to the baseline.
Bounded: a fixed number of graphs, nothing listens on a port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from remediator.adapters.graphs import MatplotlibRenderer, render_png
from remediator.ports.graphs import GraphSpec, Series

T0 = 1_785_578_400.0
#: graphs drawn at once in worker threads (the daemon before the process pool)
THREADS = 2


def spec(n: int) -> GraphSpec:
    series = tuple(Series(f"pod=api-{k}", tuple(
        (T0 + i * 15, 0.05 + 0.02 * k + 0.01 * ((i + n) % 7)) for i in range(240)))
        for k in range(3))
    return GraphSpec("verification of step 1 (restart)",
                     'deployment:http_errors:ratio_rate1m{deployment="api"}', series,
                     T0, T0 + 240 * 15, threshold=0.05,
                     marks=((T0 + 1900, "1. restart"), (T0 + 2500, "2. scale out"),
                            (T0 + 3100, "3. roll back")))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def ticker(stop: asyncio.Event, late: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(0.005)
        late.append((loop.time() - start - 0.005) * 1000)


async def measure(graphs: int, mode: str, renderer: MatplotlibRenderer | None = None
                  ) -> tuple[list[float], list[float]]:
    """(render ms of each graph, the ticker's lateness in ms)."""
    stop = asyncio.Event()
    late: list[float] = []
    took: list[float] = []
    tick = asyncio.create_task(ticker(stop, late))
    slots = asyncio.Semaphore(renderer.workers if renderer else THREADS)

    def timed(n: int) -> None:          # the drawing itself, not the wait for a slot
        start = time.perf_counter()
        render_png(spec(n))
        took.append((time.perf_counter() - start) * 1000)

    async def one(n: int) -> None:
        if mode == "process":           # the renderer itself (its pool already warm)
            async with slots:
                start = time.perf_counter()
                await renderer.render(spec(n))
                took.append((time.perf_counter() - start) * 1000)
        elif mode == "thread":          # the renderer's fallback
            async with slots:
                await asyncio.to_thread(timed, n)
        else:
            timed(n)
            await asyncio.sleep(0)

    if mode == "idle":
        await asyncio.sleep(graphs * 0.05)
    else:
        await asyncio.gather(*(one(n) for n in range(graphs)))
    stop.set()
    await tick
    return took, late


async def main_async(graphs: int, workers: int) -> dict[str, float]:
    render_png(spec(0))                                # imports and fonts, once
    renderer = MatplotlibRenderer(workers)
    try:
        start = time.perf_counter()
        await asyncio.gather(*(renderer.render(spec(0)) for _ in range(renderer.workers)))
        warm = (time.perf_counter() - start) * 1000    # the pool's start and imports
        _, idle = await measure(graphs, "idle")
        took_p, in_processes = await measure(graphs, "process", renderer)
        took, threaded = await measure(graphs, "thread")
        _, on_loop = await measure(graphs, "loop")
    finally:
        await renderer.close()
    base = max(pct(idle, 0.99), 1e-3)
    return {"graphs": graphs, "workers": workers, "pool_start_ms": warm,
            "render_p50_ms_processes": statistics.median(took_p),
            "render_p99_ms_processes": pct(took_p, 0.99),
            "render_p50_ms_threads": statistics.median(took),
            "render_p99_ms_threads": pct(took, 0.99),
            "loop_late_p50_ms_baseline": statistics.median(idle),
            "loop_late_p99_ms_baseline": pct(idle, 0.99),
            "loop_late_p50_ms_processes": statistics.median(in_processes),
            "loop_late_p99_ms_processes": pct(in_processes, 0.99),
            "loop_late_p99_ms_threads": pct(threaded, 0.99),
            "loop_late_p99_ms_on_loop": pct(on_loop, 0.99),
            "ratio_processes_vs_baseline_p99": pct(in_processes, 0.99) / base,
            "ratio_threads_vs_baseline_p99": pct(threaded, 0.99) / base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=MatplotlibRenderer.WORKERS,
                        help="the renderer's worker processes (and threads)")
    args = parser.parse_args()
    result = asyncio.run(main_async(args.graphs, args.workers))
    for key, value in result.items():
        print(f"{key:34} {value:10.2f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "graphs.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
