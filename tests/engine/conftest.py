"""Fixtures for the engine tests: see ``rig.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from remediator.adapters.kubernetes import KubernetesCluster
from remediator.clock import FakeClock
from remediator.simulator import Simulator
from remediator.simulator.seed import Seed

from .rig import Hooks, Rig


@pytest.fixture
def seed() -> Seed | None:
    """Override in a test module to start from another cluster."""
    return None


@pytest.fixture
async def sim(seed: Seed | None) -> AsyncIterator[Simulator]:
    simulator = Simulator(seed, clock=FakeClock())
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def cluster(sim: Simulator, tmp_path: Path) -> AsyncIterator[KubernetesCluster]:
    c = await KubernetesCluster.connect(kubeconfig=sim.write_kubeconfig(
        str(tmp_path / "kubeconfig")))
    yield c
    await c.close()


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    h = Hooks()
    await h.server.start_server()
    yield h
    await h.server.close()


@pytest.fixture
async def rig(tmp_path: Path, sim: Simulator, cluster: KubernetesCluster,
              hooks: Hooks) -> AsyncIterator[Rig]:
    async with aiohttp.ClientSession() as http:
        r = Rig(tmp_path, sim, cluster, hooks, http)
        yield r
        if r.client is not None:
            await r.stop()
