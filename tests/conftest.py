"""Suite-wide rules.

``no_leaked_tasks``: every asyncio test must leave no task of its own running once its
fixtures are torn down. The engine owns its tasks in one ``Supervisor`` and stops them
on ``stop()``; a task left behind is a run, a timer or a delivery loop nobody owns.
It also fails a test that leaves a worker process of its own running (the graph
renderer's pool must be shut down with whatever owns it).
"""

from __future__ import annotations

import asyncio
import inspect
import multiprocessing
from collections.abc import AsyncIterator

import pytest

LEAK_GRACE = 1.0        # real seconds a task may take to finish after teardown


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and inspect.iscoroutinefunction(function) \
                and isinstance(item, pytest.Function):
            # first: set up before, torn down after, every other fixture of the test
            item.fixturenames.insert(0, "no_leaked_tasks")


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = set(asyncio.all_tasks())
    children = {p.pid for p in multiprocessing.active_children()}
    yield
    _no_leaked_processes(children)
    mine = asyncio.current_task()

    def leaked() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() - before if t is not mine and not t.done()]
    for _ in range(int(LEAK_GRACE / 0.01)):     # closing transports and cancelled tasks
        if not leaked():                         # settle: there is no event to wait for
            break
        await asyncio.sleep(0.01)
    left = leaked()
    for task in left:
        task.cancel()
    if left:
        names = ", ".join(sorted(f"{t.get_name()} ({t.get_coro()!r})" for t in left))
        pytest.fail(f"the test left {len(left)} asyncio task(s) running: {names}")


def _no_leaked_processes(before: set[int | None]) -> None:
    """Fail if a multiprocessing child started during the test is still running."""
    left = [p for p in multiprocessing.active_children() if p.pid not in before]
    if left:
        for p in left:
            p.kill()
            p.join(5)
        pytest.fail(f"the test left {len(left)} worker process(es) running: "
                    + ", ".join(f"{p.name} (pid {p.pid})" for p in left))
