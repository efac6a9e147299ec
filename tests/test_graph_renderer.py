"""The graph renderer draws in worker processes (made on the first graph, stopped by
``close``), and in threads when the pool cannot start, saying so in the log."""

from __future__ import annotations

import asyncio
import io
import logging
import multiprocessing
import os
import sys

import pytest

from remediator.adapters.graphs import MatplotlibRenderer
from remediator.ports.graphs import HEIGHT, WIDTH, GraphSpec, Series

T0 = 1_785_578_400.0


def spec(n: int) -> GraphSpec:
    return GraphSpec(f"graph {n}", "up", (Series("pod=a", tuple(
        (T0 + i * 15, float(i % 5 + n)) for i in range(60))),), T0, T0 + 900,
        threshold=2.0, marks=((T0 + 300, "1. restart"),))


def size(png: bytes) -> tuple[int, int]:
    from PIL import Image
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
        return image.size


def workers() -> set[int | None]:
    return {p.pid for p in multiprocessing.active_children()}


async def test_graphs_are_drawn_in_worker_processes_made_on_the_first_graph() -> None:
    before = workers()
    renderer = MatplotlibRenderer(workers=2)
    try:
        assert workers() == before                   # nothing started until a graph
        pngs = await asyncio.gather(*(renderer.render(spec(n)) for n in range(3)))
        assert renderer.mode == "processes"
        started = workers() - before
        assert 1 <= len(started) <= 2
        assert [size(p) for p in pngs] == [(WIDTH, HEIGHT)] * 3
        assert len(set(pngs)) == 3                   # each its own graph
    finally:
        await renderer.close()
    assert workers() == before                       # the pool is gone
    with pytest.raises(RuntimeError, match="closed"):
        await renderer.render(spec(0))


async def test_closing_a_renderer_that_drew_nothing_starts_nothing() -> None:
    before = workers()
    renderer = MatplotlibRenderer()
    await renderer.close()
    assert workers() == before


async def test_a_pool_that_cannot_start_falls_back_to_threads_and_says_so(
        caplog: pytest.LogCaptureFixture) -> None:
    before = workers()
    renderer = MatplotlibRenderer(workers=0)         # ProcessPoolExecutor refuses 0
    with caplog.at_level(logging.WARNING, "remediator.graphs"):
        png = await renderer.render(spec(1))
    await renderer.close()
    assert size(png) == (WIDTH, HEIGHT)
    assert renderer.mode == "threads"
    assert workers() == before
    [record] = [r for r in caplog.records if r.name == "remediator.graphs"]
    assert "worker threads" in record.getMessage()
    assert "cannot start" in record.getMessage()


KILLED_DAEMON = """
import asyncio, os
from remediator.adapters.graphs import MatplotlibRenderer
from remediator.ports.graphs import GraphSpec, Series

async def main():
    renderer = MatplotlibRenderer()
    await renderer.render(GraphSpec("t", "q", (Series("a", ((0.0, 1.0), (60.0, 2.0))),),
                                    0.0, 60.0))
    print(*renderer._pool._processes, flush=True)
    os._exit(0)          # killed: no close()

asyncio.run(main())
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_worker_ends_when_the_daemon_is_killed() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_DAEMON, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    out = await asyncio.wait_for(proc.stdout.readline(), 60)   # type: ignore[union-attr]
    await proc.wait()
    [pid] = [int(p) for p in out.split()]
    for _ in range(500):                               # bounded: the worker sees EOF at once
        if not alive(pid):
            break
        await asyncio.sleep(0.01)
    assert not alive(pid)
    await proc.stdout.read()                           # type: ignore[union-attr]
