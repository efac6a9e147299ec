"""End-to-end fixtures: one session-wide stack (see ``harness``), and the tail of every
process's log attached to the report of a failing e2e test."""

from __future__ import annotations

import atexit
from collections.abc import Iterator

import pytest

from .harness import Stack, start_stack

_STACK: list[Stack] = []



@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("e2e"))
    _STACK.append(s)
    atexit.register(s.stop)         # also when the session dies before teardown
    try:
        yield s
    finally:
        _STACK.remove(s)
        s.stop()
        atexit.unregister(s.stop)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and report.when in ("setup", "call") and _STACK and "e2e" in item.keywords:
        for name, text in _STACK[0].log_tails():
            report.sections.append((f"e2e log: {name} (tail)", text))
