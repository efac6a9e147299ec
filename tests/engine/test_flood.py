"""A flood: 5,000 alerts for 200 targets (repeats, HA duplicates, batches) → exactly
200 incidents, each acted on once; with a low budget, one storm escalation."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from remediator.model.incident import IncidentState, TargetRef
from remediator.settings import EngineSettings

from .rig import Hooks, Rig, alert, ladder_playbook

TARGETS = 200


class FakeCluster:
    """The adapter methods ``kubernetes.restart`` uses, in memory, recording writes.
    (The simulator is too slow to seed 200 Deployments: see the report.)"""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []
        self.annotations: dict[str, dict[str, str]] = {}

    async def read_workload(self, t: TargetRef) -> dict[str, Any]:
        ann = self.annotations.get(str(t), {})
        return {"metadata": {"generation": 1},
                "spec": {"template": {"metadata": {"annotations": dict(ann)}}}}

    async def patch_workload(self, t: TargetRef, patch: dict[str, Any], *,
                             content_type: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        self.writes.append(("PATCH", str(t)))
        self.annotations[str(t)] = patch["spec"]["template"]["metadata"]["annotations"]
        return {"metadata": {"generation": 2}}


@pytest.fixture
async def rig(tmp_path: Path, hooks: Hooks) -> AsyncIterator[Rig]:
    async with aiohttp.ClientSession() as http:
        r = Rig(tmp_path, None, FakeCluster(), hooks, http)
        yield r
        if r.client is not None:
            await r.stop()


def writes(rig: Rig) -> list[tuple[str, str]]:
    assert isinstance(rig.cluster, FakeCluster)
    return rig.cluster.writes


async def flood(rig: Rig) -> int:
    distinct = [alert(deployment=f"app-{i}") for i in range(TARGETS)]
    stream: list[dict[str, Any]] = [distinct[i % TARGETS] for i in range(2500)]
    random.Random(7).shuffle(stream)
    batches = [stream[i:i + 50] for i in range(0, len(stream), 50)]
    sent = 0
    for chunk in range(0, len(batches), 10):
        # every batch is posted twice at once: two HA Alertmanagers
        group = batches[chunk:chunk + 10]
        await asyncio.gather(*(rig.post(b, group=str(n)) for n, b in enumerate(group)
                               for _ in range(2)))
        sent += 2 * sum(len(b) for b in group)
    return sent


async def test_flood_makes_one_incident_per_target_acted_once(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url),
                    EngineSettings(action_budget=10_000, max_parallel=64))
    rig.metrics.holding = {"step1_ok"}
    assert await flood(rig) == 5000
    await rig.settle(60)
    incs = await rig.store.list_incidents(limit=10_000)
    assert len(incs) == TARGETS
    assert {i.state for i in incs} == {IncidentState.RECOVERED}
    paths = [path for _, path in writes(rig)]
    assert len(paths) == TARGETS
    assert len(set(paths)) == TARGETS
    assert rig.hooks.calls == []


async def test_flood_with_a_low_budget_pauses_with_one_escalation(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url),
                    EngineSettings(action_budget=10, action_budget_window=86400,
                                 max_parallel=64))
    rig.metrics.holding = {"step1_ok"}
    await flood(rig)
    await rig.settle(60)
    incs = await rig.store.list_incidents(limit=10_000)
    assert len(incs) == TARGETS
    assert len(writes(rig)) == 10
    assert len(rig.hooks.calls) == 1              # only one incident ran escalation actions
    states = [i.state for i in incs]
    assert states.count(IncidentState.RECOVERED) == 10
    assert states.count(IncidentState.ESCALATED) == TARGETS - 10
    storm = [i for i in incs if "remediation storm" in i.summary]
    assert len(storm) == 1
    assert rig.hooks.calls[0]["incident"] == storm[0].id
    paused = await rig.engine.guards.paused()
    assert paused is not None
    assert paused.kind == "budget"
