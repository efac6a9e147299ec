"""SIGKILL between a drain's journaled intent and its outcome: after a restart the drain
finishes from the journaled intent and no pod is evicted twice (the simulator's call
log shows it). Real processes, as in test_crash."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .procs import DaemonProc, SimProc, daemon_config
from .rig import alert
from .test_crash import post

pytestmark = pytest.mark.slow

PLAYBOOK = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: drain}
spec:
  match: ['alertname="KubeNodePressure"']
  target: {kind: Node, name: "{{ labels.node }}"}
  steps:
    - name: drain
      action: kubernetes.drain
      with: {min_ready_nodes: 1, timeout: 30s}
"""


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProc]:
    s = SimProc(tmp_path)
    yield s
    s.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def first_step(http: aiohttp.ClientSession, daemon: DaemonProc) -> dict[str, Any] | None:
    listed = (await daemon.get(http, "/api/v1/incidents"))["incidents"]
    if not listed:
        return None
    inc = await daemon.get(http, f"/api/v1/incidents/{listed[0]['id']}")
    return {"state": inc["state"], **inc["steps"][0]} if inc["steps"] else None


async def until(check: Any, limit: float) -> Any:
    deadline = time.monotonic() + limit
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_sigkill_mid_drain_evicts_each_pod_once(
        tmp_path: Path, sim: SimProc, http: aiohttp.ClientSession) -> None:
    await sim.ready(http)
    config = daemon_config(tmp_path, sim.kubeconfig, PLAYBOOK)
    # the second eviction is slow: the daemon dies with the drain's intent journaled,
    # the node cordoned and one pod evicted
    async with http.post(f"{sim.url}/sim/v1/faults", json={
            "method": "POST", "path": "/eviction$", "latency": 0.0, "count": 1}) as r:
        assert r.status == 201
    async with http.post(f"{sim.url}/sim/v1/faults", json={
            "method": "POST", "path": "/eviction$", "latency": 3.0, "count": 1}) as r:
        assert r.status == 201
    first = DaemonProc(tmp_path, config, "first")
    try:
        await first.ready(http)
        status, _ = await post(http, first.url, [alert("KubeNodePressure", node="node-1")])
        assert status == 200

        async def in_flight() -> dict[str, Any] | None:
            step = await first_step(http, first)
            evictions = [c for c in await sim.calls(http) if c["path"].endswith("/eviction")]
            return step if step and step["status"] == "intent" and evictions else None

        at_kill = await until(in_flight, 15)
        first.kill()
    finally:
        first.ensure_dead()
    planned = [f"/api/v1/namespaces/{p['namespace']}/pods/{p['name']}/eviction"
               for p in at_kill["intent"]["args"]["pods"]]
    assert len(planned) >= 2
    second = DaemonProc(tmp_path, config, "second")
    try:
        await second.ready(http)

        async def done() -> dict[str, Any] | None:
            step = await first_step(http, second)
            return step if step and step["status"] not in ("intent", "pending", "applied") \
                else None   # applied: journaled just before succeeded

        step = await until(done, 30)
        assert step["status"] == "succeeded", step
    finally:
        second.terminate()
        assert second.wait(15) == 0
        second.ensure_dead()
    calls = await sim.calls(http)
    evicted = [c["path"] for c in calls if c["path"].endswith("/eviction")
               and c["status"] == 201]
    assert sorted(evicted) == sorted(planned)           # each planned pod once, no other
    cordons = [c for c in calls if c["path"] == "/api/v1/nodes/node-1"]
    assert {str(c["body"]) for c in cordons} == {"{'spec': {'unschedulable': True}}"}


SEED = """
nodes: 3
deployments:
  - {namespace: prod, name: api, replicas: 4, image: example/api:1}
statefulsets:
  - {namespace: prod, name: db, replicas: 2, image: "postgres:16", history: ["postgres:15"]}
"""
TARGET_API = '{kind: Deployment, namespace: prod, name: api}'
CASES = {
    # action: (target, params, alert labels, (method, path regex of the slow call))
    "kubernetes.cordon": ('{kind: Node, name: node-1}', "{min_ready_nodes: 1}", {},
                          ("PATCH", "/nodes/node-1$")),
    "kubernetes.network_isolate": (TARGET_API, "{}", {"pod": "POD"},
                                   ("POST", "/networkpolicies$")),
    "kubernetes.isolate_pod": (TARGET_API, "{keep_for: 1h}", {"pod": "POD"},
                               ("PATCH", "/pods/api-")),
    "kubernetes.rollback": ('{kind: StatefulSet, namespace: prod, name: db}', "{}", {},
                            ("PATCH", "/statefulsets/db$")),
}


async def kill_mid_step_then_finish(tmp_path: Path, http: aiohttp.ClientSession,
                                    sim: SimProc, config: dict[str, Any],
                                    firing: dict[str, Any], method: str,
                                    path: str) -> dict[str, Any]:
    """Run a daemon until the step's intent is journaled and its (slow) call is in flight,
    SIGKILL it, start another and wait for the step's end; that step."""
    first = DaemonProc(tmp_path, config, "first")
    try:
        await first.ready(http)
        status, _ = await post(http, first.url, [firing])
        assert status == 200

        async def in_flight() -> dict[str, Any] | None:
            step = await first_step(http, first)
            calls = [c for c in await sim.calls(http) if c["method"] == method
                     and re.search(path, c["path"])]
            return step if step and step["status"] == "intent" and calls else None

        await until(in_flight, 15)
        first.kill()
    finally:
        first.ensure_dead()
    second = DaemonProc(tmp_path, config, "second")
    try:
        await second.ready(http)

        async def done() -> dict[str, Any] | None:
            step = await first_step(http, second)
            return step if step and step["status"] not in ("intent", "pending", "applied") \
                else None   # applied: journaled just before succeeded

        step: dict[str, Any] = await until(done, 30)
    finally:
        second.terminate()
        assert second.wait(15) == 0
        second.ensure_dead()
    return step


@pytest.mark.parametrize("action", sorted(CASES))
async def test_sigkill_between_intent_and_outcome_acts_once(
        tmp_path: Path, http: aiohttp.ClientSession, action: str) -> None:
    target, params, labels, (method, path) = CASES[action]
    sim = SimProc(tmp_path, SEED)
    try:
        await sim.ready(http)
        pods = [c for c in await sim.pods(http, "prod") if c.startswith("api-")]
        labels = {k: (pods[0] if v == "POD" else v) for k, v in labels.items()}
        playbook = (f"apiVersion: remediator/v1\nkind: Playbook\nmetadata: {{name: once}}\n"
                    f"spec:\n  match: ['alertname=\"Once\"']\n  target: {target}\n"
                    f"  steps:\n    - name: act\n      action: {action}\n"
                    f"      with: {params}\n")
        config = daemon_config(tmp_path, sim.kubeconfig, playbook)
        async with http.post(f"{sim.url}/sim/v1/faults", json={
                "method": method, "path": path, "latency": 3.0, "count": 1}) as r:
            assert r.status == 201
        step = await kill_mid_step_then_finish(tmp_path, http, sim, config,
                                               alert("Once", **labels), method, path)
        assert step["status"] == "succeeded", step
        calls = [c for c in await sim.calls(http) if c["method"] == method
                 and re.search(path, c["path"])]
        succeeded = [c for c in calls if 200 <= c["status"] < 300]
        # done once: a replay either found it done (no call) or repeated the very same
        # idempotent call (the cordon patch, the rollback patch)
        assert {json.dumps(c["body"], sort_keys=True) for c in succeeded} == \
            {json.dumps(calls[0]["body"], sort_keys=True)}
        if action in ("kubernetes.network_isolate", "kubernetes.isolate_pod"):
            assert len(succeeded) == 1, calls
        if action == "kubernetes.rollback":
            db = await sim.get(http, "/apis/apps/v1/namespaces/prod/statefulsets/db")
            assert db["spec"]["template"]["spec"]["containers"][0]["image"] == "postgres:15"
            revisions = await sim.get(
                http, "/apis/apps/v1/namespaces/prod/controllerrevisions")
            assert sorted(cr["revision"] for cr in revisions["items"]) == [2, 3]
    finally:
        sim.stop()
