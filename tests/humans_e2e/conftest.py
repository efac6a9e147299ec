"""Fixtures for the humans-in-the-loop tests through the whole daemon: see ``harness.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from remediator.clock import FakeClock
from remediator.simulator import Simulator
from remediator.testing.fake_jira import FakeJira
from remediator.testing.fake_slack import FakeSlack

from .harness import FakePrometheus, Stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    sim = Simulator(None, clock=FakeClock())
    slack, jira, prom = FakeSlack(), FakeJira(flavour="cloud"), FakePrometheus()
    await sim.start()
    await slack.start()
    await jira.start()
    await prom.start()
    try:
        async with aiohttp.ClientSession() as http:
            s = Stack(tmp_path, sim, slack, jira, prom, http)
            try:
                yield s
            finally:
                await s.stop()
    finally:
        await prom.stop()
        await jira.stop()
        await slack.stop()
        await sim.stop()
