"""The simulator behind the real kubernetes_asyncio adapters (cluster and inspector)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from remediator.adapters.k8s_inspect import KubernetesInspector
from remediator.adapters.kubernetes import KubernetesCluster
from remediator.clock import FakeClock
from remediator.simulator import Simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(clock=FakeClock())
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
def inspector(cluster: KubernetesCluster) -> KubernetesInspector:
    return KubernetesInspector(cluster)


@pytest.fixture
async def control(sim: Simulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A session on the simulator's control API (``/sim/v1/…``)."""
    async with aiohttp.ClientSession(base_url=sim.url,
                                     headers={"Authorization": f"Bearer {sim.token}"}) as s:
        yield s
