"""cordon, uncordon and drain against the simulator (Nodes, pods/eviction, PDBs),
through the real kubernetes_asyncio client; and the real kubectl's calls for the same verbs."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from remediator.actions.nodes import Cordon, Drain, Uncordon
from remediator.actions.params import CordonParams, DrainParams, UncordonParams
from remediator.clock import FakeClock
from remediator.engine.contract import Intent, RunContext
from remediator.errors import PermanentError
from remediator.simulator import Simulator
from remediator.simulator.controller import NODE, PDB, POD
from remediator.simulator.seed import DeploymentSeed, PdbSeed, Seed, WorkloadSeed

Ctx = Callable[..., RunContext]
KUBECTL = shutil.which("kubectl")


@pytest.fixture
def seed() -> Seed:
    # 2 nodes, 4 api pods (2 on each), a PDB keeping 3 of them: one eviction at a time.
    return Seed(nodes=3, deployments=[DeploymentSeed(namespace="prod", name="api", replicas=4,
                                                     image="example/api:1")],
                daemonsets=[WorkloadSeed(namespace="prod", name="agent", image="agent:1")],
                pdbs=[PdbSeed(namespace="prod", name="api", selector={"app": "api"},
                              min_available=3)])


def node_ctx(make_ctx: Ctx, name: str) -> RunContext:
    return make_ctx(kind="Node", namespace="", name=name)


def pods_on(sim: Simulator, node: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in sim.store.list(POD)
                  if p["spec"].get("nodeName") == node)


def unschedulable(sim: Simulator, node: str) -> bool:
    return bool(sim.store.get(NODE, None, node)["spec"].get("unschedulable"))


def add_pod(sim: Simulator, name: str, node: str, *, owner: dict[str, Any] | None = None,
            annotations: dict[str, str] | None = None, emptydir: bool = False) -> None:
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "c", "image": "x:1"}]}
    if emptydir:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    meta: dict[str, Any] = {"name": name, "annotations": annotations or {}}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner["kind"],
                                    "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"], "controller": True}]
    sim.store.create(POD, "prod", {"metadata": meta, "spec": spec})
    sim.controller.reconcile()


async def run_with_clock(clock: FakeClock, work: Awaitable[Any], limit: float = 120) -> Any:
    """Run ``work`` while the fake clock moves a second at a time (up to ``limit``)."""
    task = asyncio.ensure_future(work)
    for _ in range(int(limit)):
        await asyncio.sleep(0.02)
        if task.done():
            break
        await clock.advance(1.0)
    return await task


async def test_cordon_is_kubectls_patch_and_replays_to_nothing(sim: Simulator,
                                                              make_ctx: Ctx) -> None:
    ctx = node_ctx(make_ctx, "node-1")
    intent = await Cordon().plan(ctx, CordonParams(min_ready_nodes=2))
    assert intent.api_calls == ['PATCH /api/v1/nodes/node-1 {"spec":{"unschedulable":true}}']
    assert intent.description == "cordon Node node-1 (2 of 3 nodes healthy after, floor 2)"
    assert sim.control.writes() == []
    await Cordon().apply(ctx, intent)
    await Cordon().apply(ctx, intent)                       # replay: same state
    assert unschedulable(sim, "node-1")
    writes = sim.control.writes()
    assert [(w["method"], w["path"], w["content_type"], w["body"]) for w in writes] == [
        ("PATCH", "/api/v1/nodes/node-1", "application/strategic-merge-patch+json",
         {"spec": {"unschedulable": True}})] * 2
    again = await Cordon().plan(ctx, CordonParams(min_ready_nodes=2))
    assert again.noop
    assert again.api_calls == []
    # new pods go elsewhere
    sim.store.delete(POD, "prod", pods_on(sim, "node-1")[0])
    sim.controller.reconcile()
    assert len(pods_on(sim, "node-1")) == 1


async def test_cordon_refuses_below_the_healthy_node_floor(sim: Simulator,
                                                           make_ctx: Ctx) -> None:
    node = sim.store.get(NODE, None, "node-3")
    next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] = "False"
    sim.store.update(NODE, node, subresource="status")
    with pytest.raises(PermanentError, match=r"refusing to cordon Node node-1: 2 of 3 nodes "
                       r"are Ready and schedulable, 1 would be left, below the healthy-node "
                       r"floor \(min_ready_nodes 2\)"):
        await Cordon().plan(node_ctx(make_ctx, "node-1"), CordonParams(min_ready_nodes=2))
    with pytest.raises(PermanentError, match=r"min_ready_percent 50% of 3 nodes = 2"):
        await Drain().plan(node_ctx(make_ctx, "node-2"), DrainParams(min_ready_percent=50))
    # the not-ready node itself may be cordoned: the healthy count does not change
    intent = await Cordon().plan(node_ctx(make_ctx, "node-3"), CordonParams(min_ready_nodes=2))
    assert not intent.noop
    assert sim.control.writes() == []


async def test_uncordon(sim: Simulator, make_ctx: Ctx) -> None:
    ctx = node_ctx(make_ctx, "node-2")
    assert (await Uncordon().plan(ctx, UncordonParams())).noop
    node = sim.store.get(NODE, None, "node-2")
    node["spec"]["unschedulable"] = True
    sim.store.update(NODE, node)
    intent = await Uncordon().plan(ctx, UncordonParams())
    assert intent.api_calls == ['PATCH /api/v1/nodes/node-2 {"spec":{"unschedulable":null}}']
    await Uncordon().apply(ctx, intent)
    assert not unschedulable(sim, "node-2")


async def test_drain_skips_daemonset_and_mirror_pods_and_waits_out_the_pdb(
        sim: Simulator, make_ctx: Ctx, clock: FakeClock) -> None:
    agent = sim.store.list(by_kind_ds())[0]
    add_pod(sim, "agent-node-1", "node-1", owner=agent)
    add_pod(sim, "kube-proxy-node-1", "node-1",
            annotations={"kubernetes.io/config.mirror": "abc"})
    await clock.advance(5)                                 # everything Ready
    ctx = node_ctx(make_ctx, "node-1")
    api_pods = [p for p in pods_on(sim, "node-1") if p.startswith("api-")]
    assert len(api_pods) == 2
    intent = await Drain().plan(ctx, DrainParams(min_ready_nodes=2, retry_interval=1))
    assert intent.api_calls == [
        'PATCH /api/v1/nodes/node-1 {"spec":{"unschedulable":true}}',
        *(f'POST /api/v1/namespaces/prod/pods/{p}/eviction {{"apiVersion":"policy/v1",'
          f'"kind":"Eviction","metadata":{{"name":"{p}","namespace":"prod"}}}}'
          for p in api_pods)]
    assert "skipping prod/agent-node-1 (DaemonSet-managed), prod/kube-proxy-node-1 " \
           "(mirror pod)" in intent.description
    result = await run_with_clock(clock, Drain().apply(ctx, intent))
    assert sorted(result.details["evicted"]) == [f"prod/{p}" for p in api_pods]
    assert pods_on(sim, "node-1") == ["agent-node-1", "kube-proxy-node-1"]
    evictions = [c for c in sim.control.calls if c["path"].endswith("/eviction")]
    # the PDB allows one at a time: the second waited (429) until the replacement was Ready
    assert evictions[0]["status"] == 201
    assert 429 in [c["status"] for c in evictions]
    assert evictions[-1]["status"] == 201
    assert all(c["body"]["kind"] == "Eviction" for c in evictions)
    # replay after a crash: the pods are gone (by uid), nothing is evicted twice
    before = len(sim.control.writes())
    again = await Drain().apply(ctx, intent)
    assert again.details["evicted"] == []
    assert len(again.details["already_gone"]) == 2
    assert [w["path"] for w in sim.control.writes()[before:]] == ["/api/v1/nodes/node-1"]


def by_kind_ds() -> Any:
    from remediator.simulator.store import by_kind
    return by_kind("DaemonSet")


async def test_drain_fails_in_words_when_the_pdb_blocks_past_the_timeout(
        sim: Simulator, make_ctx: Ctx, clock: FakeClock) -> None:
    pdb = sim.store.get(PDB, "prod", "api")
    pdb["spec"]["minAvailable"] = 4
    sim.store.update(PDB, pdb)
    await clock.advance(5)
    assert sim.store.get(PDB, "prod", "api")["status"]["disruptionsAllowed"] == 0
    ctx = node_ctx(make_ctx, "node-2")
    intent = await Drain().plan(ctx, DrainParams(min_ready_nodes=1, timeout=30))
    with pytest.raises(PermanentError, match=r"drain of Node node-2 timed out: a "
                       r"PodDisruptionBudget kept pod prod/api-\S+ from being evicted: Cannot "
                       r"evict pod as it would violate the pod's disruption budget.; The "
                       r"disruption budget api needs 4 healthy pods and has 4 currently"):
        await run_with_clock(clock, Drain().apply(ctx, intent))
    assert len([p for p in pods_on(sim, "node-2") if p.startswith("api-")]) >= 1
    assert unschedulable(sim, "node-2")


async def test_drain_refuses_unmanaged_and_emptydir_pods_unless_told(
        sim: Simulator, make_ctx: Ctx, clock: FakeClock) -> None:
    add_pod(sim, "bare", "node-3")
    add_pod(sim, "cache", "node-3", owner=sim.store.list(by_kind_ds())[0] | {
        "kind": "StatefulSet"}, emptydir=True)
    ctx = node_ctx(make_ctx, "node-3")
    with pytest.raises(PermanentError) as err:
        await Drain().plan(ctx, DrainParams(min_ready_nodes=1))
    assert str(err.value) == (
        "refusing to drain Node node-3: cannot delete Pods that declare no controller (set "
        "force: true to override): prod/bare; cannot delete Pods with local storage (set "
        "delete_emptydir_data: true to override): prod/cache")
    intent = await Drain().plan(ctx, DrainParams(min_ready_nodes=1, force=True,
                                                 delete_emptydir_data=True))
    assert {"prod/bare", "prod/cache"} <= {f"prod/{p['name']}" for p in intent.args["pods"]}
    assert sim.control.writes() == []


def test_params_are_checked_at_load_time() -> None:
    with pytest.raises(ValueError, match="give exactly one of 'min_ready_nodes' or "
                                         "'min_ready_percent'"):
        CordonParams()
    with pytest.raises(ValueError, match="exactly one"):
        DrainParams(min_ready_nodes=1, min_ready_percent=50)
    with pytest.raises(ValueError, match="less than or equal to 100"):
        DrainParams(min_ready_percent=150)
    with pytest.raises(ValueError, match="at most 1h"):
        DrainParams(min_ready_nodes=1, timeout="2h")


def _intent_calls(sim: Simulator) -> list[tuple[str, str, str | None, Any]]:
    """The writes that succeeded (429s retried are left out)."""
    return [(w["method"], w["path"], w["content_type"], w["body"]) for w in sim.control.writes()
            if w["status"] < 300]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_our_cordon_uncordon_and_drain_send_what_kubectl_sends(
        sim: Simulator, make_ctx: Ctx, clock: FakeClock, kubeconfig: str,
        tmp_path: Path) -> None:
    env = {**os.environ, "KUBECONFIG": kubeconfig, "HOME": str(tmp_path)}

    async def kubectl(*args: str) -> str:
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        return out.decode()

    async def ours(action: Any, params: Any, node: str) -> Intent:
        ctx = node_ctx(make_ctx, node)
        intent = await action.plan(ctx, params)
        await run_with_clock(clock, action.apply(ctx, intent))
        return intent

    await clock.advance(5)
    await kubectl("cordon", "node-1")
    await kubectl("uncordon", "node-1")
    theirs = _intent_calls(sim)
    sim.control.calls.clear()
    await ours(Cordon(), CordonParams(min_ready_nodes=1), "node-1")
    await ours(Uncordon(), UncordonParams(), "node-1")
    assert _intent_calls(sim) == theirs
    # drain: the same cordon, the same eviction path and Eviction (kubectl adds empty
    # deleteOptions and a null creationTimestamp), and the same end state
    sim.control.calls.clear()
    # (the fake clock moves while kubectl retries its 429 every 5 wall-clock seconds)
    out = await run_with_clock(clock, kubectl("drain", "node-1", "--ignore-daemonsets",
                                              "--timeout=60s"), limit=3000)
    assert "node/node-1 drained" in out
    theirs = _intent_calls(sim)
    await clock.advance(5)
    sim.control.calls.clear()
    await ours(Drain(), DrainParams(min_ready_nodes=1, retry_interval=1), "node-2")
    mine = _intent_calls(sim)
    assert [c[0] for c in theirs] == [c[0] for c in mine] == ["PATCH"] + ["POST"] * 2
    assert theirs[0][2:] == mine[0][2:]
    for t, m in zip(theirs[1:], mine[1:], strict=True):
        assert t[1].rsplit("/", 2)[-1] == m[1].rsplit("/", 2)[-1] == "eviction"
        assert {k: t[3][k] for k in ("apiVersion", "kind")} == \
               {k: m[3][k] for k in ("apiVersion", "kind")}
    out = await kubectl("get", "nodes", "-o", "jsonpath={.items[*].spec.unschedulable}")
    assert out.split() == ["true", "true"]


NODE_PLAYBOOK = """\
apiVersion: remediator/v1
kind: Playbook
metadata: {{name: nodes}}
spec:
  match: ['alertname="X"']
  target: {{kind: Node, {target}name: "{{{{ labels.node }}}}"}}
  steps:
    - name: drain
      action: kubernetes.drain
      with: {{min_ready_nodes: 2, timeout: {timeout}}}
"""


@pytest.mark.parametrize(("target", "timeout", "message"), [
    ("namespace: prod, ", "1m", "a Node is cluster-scoped: give no 'namespace'"),
    ("", "5m", "the drain's timeout (300s) does not fit in the step's time for its action "
               "(120s): raise the step's 'timeout' or lower this one"),
])
def test_node_playbooks_are_checked_at_load_time(target: str, timeout: str,
                                                 message: str) -> None:
    from remediator.errors import ConfigError
    from remediator.loader import load
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(NODE_PLAYBOOK.format(target=target, timeout=timeout), "nodes.yaml")
    [pb] = load(NODE_PLAYBOOK.format(target="", timeout="1m"), "nodes.yaml")
    assert pb.spec.target is not None
    assert pb.spec.target.namespace == ""


def test_a_workload_target_still_needs_a_namespace() -> None:
    from remediator.errors import ConfigError
    from remediator.loader import load
    text = NODE_PLAYBOOK.format(target="", timeout="1m").replace(
        "kind: Node", "kind: Deployment").replace("kubernetes.drain", "kubernetes.restart"
                                                  ).replace("{min_ready_nodes: 2, timeout: 1m}",
                                                            "{}")
    with pytest.raises(ConfigError, match="a Deployment target needs a 'namespace'"):
        load(text, "x.yaml")


async def test_simulator_nodes_pdbs_and_the_eviction_subresource(clock: FakeClock) -> None:
    import aiohttp
    seed = Seed(nodes=3, unready_nodes=["node-3"],
                deployments=[DeploymentSeed(namespace="prod", name="api", replicas=4,
                                            image="example/api:1")],
                pdbs=[PdbSeed(namespace="prod", name="api", selector={"app": "api"},
                              max_unavailable=1)])
    sim = Simulator(seed, clock=clock)
    await sim.start()
    try:
        node3 = sim.store.get(NODE, None, "node-3")
        assert [c["status"] for c in node3["status"]["conditions"] if c["type"] == "Ready"] \
            == ["Unknown"]
        before = {p["metadata"]["name"] for p in sim.store.list(POD, "prod")}
        victim = sorted(before)[0]
        sim.store.delete(POD, "prod", victim)
        sim.controller.reconcile()
        await asyncio.sleep(0.05)              # the controller's loop waits on the clock
        await clock.advance(5)
        [new] = [p for p in sim.store.list(POD, "prod") if p["metadata"]["name"] not in before]
        assert new["spec"]["nodeName"] in ("node-1", "node-2")     # not the NotReady node
        status = sim.store.get(PDB, "prod", "api")["status"]
        assert (status["expectedPods"], status["currentHealthy"], status["desiredHealthy"],
                status["disruptionsAllowed"]) == (4, 4, 3, 1)
        pods = sorted(p["metadata"]["name"] for p in sim.store.list(POD, "prod"))
        headers = {"Authorization": f"Bearer {sim.token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async def evict(name: str, body: Any = None) -> tuple[int, Any]:
                async with http.post(f"{sim.url}/api/v1/namespaces/prod/pods/{name}/eviction",
                                     json=body or {"apiVersion": "policy/v1",
                                                   "kind": "Eviction",
                                                   "metadata": {"name": name}}) as r:
                    return r.status, await r.json()
            assert (await evict(pods[0]))[0] == 201
            code, body = await evict(pods[1])
            assert code == 429
            assert body["reason"] == "TooManyRequests"
            assert body["details"]["causes"][0]["reason"] == "DisruptionBudget"
            assert (await evict("nope"))[0] == 404
            assert (await evict(pods[1], {"kind": "Pod"}))[0] == 400
            sim.store.create(PDB, "prod", {"metadata": {"name": "second"}, "spec": {
                "selector": {"matchLabels": {"app": "api"}}, "minAvailable": 0}})
            sim.controller.reconcile()
            code, body = await evict(pods[1])
            assert code == 500
            assert "more than one PodDisruptionBudget" in body["message"]
    finally:
        await sim.stop()
