"""Fixtures: a simulator on a FakeClock, and the real adapter pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from remediator.adapters.kubernetes import KubernetesCluster
from remediator.clock import FakeClock
from remediator.engine.contract import RunContext
from remediator.model.incident import TargetRef
from remediator.simulator import Simulator
from remediator.simulator.seed import Seed


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def seed() -> Seed | None:
    """Override in a test module to start from another cluster."""
    return None


@pytest.fixture
async def sim(clock: FakeClock, seed: Seed | None) -> AsyncIterator[Simulator]:
    simulator = Simulator(seed, clock=clock)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def kubeconfig(sim: Simulator, tmp_path: Path) -> str:
    return sim.write_kubeconfig(str(tmp_path / "kubeconfig"))


@pytest.fixture
async def cluster(kubeconfig: str) -> AsyncIterator[KubernetesCluster]:
    c = await KubernetesCluster.connect(kubeconfig=kubeconfig, request_timeout=2.0)
    yield c
    await c.close()


@pytest.fixture
def make_ctx(cluster: KubernetesCluster, clock: FakeClock) -> Callable[..., RunContext]:
    def make(kind: str = "Deployment", namespace: str = "prod", name: str = "api",
             alerts: list[dict[str, Any]] | None = None, **kw: Any) -> RunContext:
        return RunContext(incident_id="inc-1", incident_key="k", playbook="pb", step="s",
                             target=TargetRef(kind=kind, namespace=namespace, name=name),
                             alerts=alerts or [], clock=clock, cluster=cluster, **kw)
    return make


Settle = Callable[[float], Awaitable[None]]


@pytest.fixture
def settle(clock: FakeClock) -> Settle:
    """Advance the simulated time a second (one controller tick) at a time."""
    async def run(seconds: float) -> None:
        elapsed = 0.0
        while elapsed < seconds:
            await clock.advance(1.0)
            elapsed += 1.0
    return run
