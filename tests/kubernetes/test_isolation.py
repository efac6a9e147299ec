"""isolate_pod and network_isolate against the simulator, through the real client; and
the engine's Quarantine undoing them when the incident closes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from remediator.actions.isolation import IsolatePod, NetworkIsolate
from remediator.actions.params import IsolatePodParams, NetworkIsolateParams
from remediator.adapters.kubernetes import KubernetesCluster
from remediator.clock import FakeClock
from remediator.engine.contract import RunContext
from remediator.engine.quarantine import Quarantine
from remediator.engine.supervisor import Supervisor
from remediator.errors import PermanentError
from remediator.simulator import Simulator
from remediator.simulator.controller import POD
from remediator.simulator.seed import DeploymentSeed, Seed, WorkloadSeed
from remediator.simulator.store import by_kind
from remediator.store.sqlite import SqliteStore

Ctx = Callable[..., RunContext]
NETPOL = by_kind("NetworkPolicy")


@pytest.fixture
def seed() -> Seed:
    # 4 replicas with maxUnavailable 25%: one pod may be taken out; web: none may
    return Seed(deployments=[
        DeploymentSeed(namespace="prod", name="api", replicas=4, image="example/api:1"),
        DeploymentSeed(namespace="prod", name="web", replicas=2, image="example/web:1")],
        statefulsets=[WorkloadSeed(namespace="prod", name="db", replicas=2,
                                   image="postgres:16")])


def api_pods(sim: Simulator) -> list[str]:
    return sorted(p["metadata"]["name"] for p in sim.store.list(POD, "prod", labels="app=api"))


def with_pod(make_ctx: Ctx, pod: str, **kw: str) -> RunContext:
    return make_ctx(alerts=[{"labels": {"pod": pod}}], **kw)


async def test_isolate_pod_relabels_it_out_and_a_replacement_starts(
        sim: Simulator, make_ctx: Ctx) -> None:
    victim = api_pods(sim)[0]
    uid = sim.store.get(POD, "prod", victim)["metadata"]["uid"]
    ctx = with_pod(make_ctx, victim)
    intent = await IsolatePod().plan(ctx, IsolatePodParams(keep_for="30m"))
    hash_ = sim.store.get(POD, "prod", victim)["metadata"]["labels"]["pod-template-hash"]
    body = {"metadata": {
        "labels": {"app": None, "pod-template-hash": None, "remediator.io/isolated": "api",
                   "remediator.io/incident": "inc-1"},
        "annotations": {"remediator.io/isolated-from": "Deployment prod/api",
                        "remediator.io/delete-after": "2026-08-01T10:30:00Z",
                        "remediator.io/original-labels":
                            json.dumps({"app": "api", "pod-template-hash": hash_},
                                       separators=(",", ":"))}}}
    assert intent.api_calls == [f"PATCH /api/v1/namespaces/prod/pods/{victim} "
                                f"{json.dumps(body, separators=(',', ':'))}"]
    assert sim.control.writes() == []
    await IsolatePod().apply(ctx, intent)
    await IsolatePod().apply(ctx, intent)                   # replay: no second patch
    assert len(sim.control.writes()) == 1
    pod = sim.store.get(POD, "prod", victim)
    assert pod["metadata"]["uid"] == uid                    # still running, for debugging
    assert "app" not in pod["metadata"]["labels"]
    assert not pod["metadata"].get("ownerReferences")       # released by its ReplicaSet
    assert victim not in api_pods(sim)
    assert len(api_pods(sim)) == 4                          # a replacement started
    again = await IsolatePod().plan(ctx, IsolatePodParams())
    assert again.noop
    assert "already isolated" in again.description
    # max_isolated: one at a time per target
    with pytest.raises(PermanentError, match=r"1 pod\(s\) of Deployment prod/api are isolated "
                                             r"already .*max_isolated is 1"):
        await IsolatePod().plan(with_pod(make_ctx, api_pods(sim)[0]), IsolatePodParams())


async def test_isolate_pod_refuses_a_statefulset_saying_why(sim: Simulator,
                                                            make_ctx: Ctx) -> None:
    """The replacement of a StatefulSet's pod needs the isolated pod's own name: the
    refusal says so, and nothing is called."""
    before = len(sim.control.writes())
    with pytest.raises(PermanentError) as info:
        await IsolatePod().plan(with_pod(make_ctx, "db-0", kind="StatefulSet", name="db"),
                                IsolatePodParams())
    assert str(info.value).startswith(
        "kubernetes.isolate_pod cannot act on a StatefulSet: a StatefulSet's pods have "
        "fixed names (db-0, db-1, …): relabelled out, the isolated pod keeps its name, so "
        "the StatefulSet cannot start a replacement (it needs that same name")
    assert len(sim.control.writes()) == before


async def test_isolate_pod_keeps_the_available_minimum(sim: Simulator, make_ctx: Ctx,
                                                       clock: FakeClock) -> None:
    await clock.advance(5)
    [pod] = [p["metadata"]["name"] for p in sim.store.list(POD, "prod", labels="app=web")][:1]
    with pytest.raises(PermanentError, match=r"2 available pod\(s\) of Deployment prod/web "
                                             r"would fall below the minimum of 2"):
        await IsolatePod().plan(with_pod(make_ctx, pod, name="web"), IsolatePodParams())
    with pytest.raises(PermanentError, match="does not belong to Deployment prod/api"):
        await IsolatePod().plan(with_pod(make_ctx, pod), IsolatePodParams())


async def test_network_isolate_creates_a_deny_all_policy_and_labels_the_pod(
        sim: Simulator, make_ctx: Ctx) -> None:
    victim = api_pods(sim)[1]
    ctx = with_pod(make_ctx, victim)
    intent = await NetworkIsolate().plan(ctx, NetworkIsolateParams())
    policy = intent.args["policy"]
    value = policy["spec"]["podSelector"]["matchLabels"]["remediator.io/quarantine"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy["spec"]
    assert "egress" not in policy["spec"]
    assert intent.api_calls[0].startswith(
        "POST /apis/networking.k8s.io/v1/namespaces/prod/networkpolicies {")
    assert intent.api_calls[1] == (f"PATCH /api/v1/namespaces/prod/pods/{victim} "
                                   f'{{"metadata":{{"labels":{{"remediator.io/quarantine":'
                                   f'"{value}"}}}}}}')
    await NetworkIsolate().apply(ctx, intent)
    result = await NetworkIsolate().apply(ctx, intent)      # replay: exists, label again
    assert result.details["created"] is False
    [stored] = sim.store.list(NETPOL, "prod")
    assert stored["spec"]["podSelector"] == policy["spec"]["podSelector"]
    assert sim.store.get(POD, "prod", victim)["metadata"]["labels"][
        "remediator.io/quarantine"] == value
    assert victim in api_pods(sim)                          # still serving its workload
    assert (await NetworkIsolate().plan(ctx, NetworkIsolateParams())).noop


async def test_quarantine_is_undone_when_the_incident_closes(
        sim: Simulator, make_ctx: Ctx, cluster: KubernetesCluster, clock: FakeClock,
        tmp_path: object) -> None:
    first, second = api_pods(sim)[:2]
    ctx = with_pod(make_ctx, first)
    await NetworkIsolate().apply(ctx, await NetworkIsolate().plan(ctx, NetworkIsolateParams()))
    ctx2 = with_pod(make_ctx, second)
    await IsolatePod().apply(ctx2, await IsolatePod().plan(ctx2, IsolatePodParams(
        keep_for="1m")))
    store = SqliteStore(f"{tmp_path}/r.db")
    await store.open()
    tasks = Supervisor()
    try:
        q = Quarantine([cluster], store, clock, tasks)
        await q.incident_closed("inc-other")               # another incident's: untouched
        assert sim.store.list(NETPOL, "prod")
        await q.incident_closed("inc-1")
        assert sim.store.list(NETPOL, "prod") == []
        assert "remediator.io/quarantine" not in sim.store.get(POD, "prod", first)[
            "metadata"]["labels"]
        assert sim.store.find(POD, "prod", second) is not None     # kept for a minute
        await clock.advance(59)
        assert sim.store.find(POD, "prod", second) is not None
        await clock.advance(2)
        for _ in range(50):
            if sim.store.find(POD, "prod", second) is None:
                break
            await asyncio.sleep(0.02)
        assert sim.store.find(POD, "prod", second) is None
        deletes = [c for c in sim.control.writes() if c["method"] == "DELETE"]
        assert len(deletes) == 2
        assert "/networkpolicies/remediator-quarantine-q" in deletes[0]["path"]
        assert deletes[1]["path"] == f"/api/v1/namespaces/prod/pods/{second}"
        assert deletes[1]["body"]["preconditions"]["uid"]
    finally:
        await tasks.close()
        await store.close()


async def test_the_start_sweep_undoes_what_closed_incidents_left(
        sim: Simulator, make_ctx: Ctx, cluster: KubernetesCluster, clock: FakeClock,
        tmp_path: object) -> None:
    victim = api_pods(sim)[0]
    ctx = with_pod(make_ctx, victim)               # incident "inc-1": not in the store
    await NetworkIsolate().apply(ctx, await NetworkIsolate().plan(ctx, NetworkIsolateParams()))
    store = SqliteStore(f"{tmp_path}/r.db")
    await store.open()
    tasks = Supervisor()
    try:
        await Quarantine([cluster], store, clock, tasks).sweep()
        assert sim.store.list(NETPOL, "prod") == []
    finally:
        await tasks.close()
        await store.close()


async def test_a_pod_both_isolated_and_cut_off_stays_cut_off_until_deleted(
        sim: Simulator, make_ctx: Ctx, cluster: KubernetesCluster, clock: FakeClock,
        tmp_path: object) -> None:
    victim = api_pods(sim)[0]
    ctx = with_pod(make_ctx, victim)
    await NetworkIsolate().apply(ctx, await NetworkIsolate().plan(ctx, NetworkIsolateParams()))
    await IsolatePod().apply(ctx, await IsolatePod().plan(ctx, IsolatePodParams(keep_for="30s")))
    store = SqliteStore(f"{tmp_path}/r.db")
    await store.open()
    tasks = Supervisor()
    try:
        await Quarantine([cluster], store, clock, tasks).incident_closed("inc-1")
        assert len(sim.store.list(NETPOL, "prod")) == 1     # still cut off while kept
        await clock.advance(31)
        for _ in range(50):
            if not sim.store.list(NETPOL, "prod"):
                break
            await asyncio.sleep(0.02)
        assert sim.store.find(POD, "prod", victim) is None
        assert sim.store.list(NETPOL, "prod") == []
    finally:
        await tasks.close()
        await store.close()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_kubectl_sees_the_quarantine(sim: Simulator, make_ctx: Ctx, kubeconfig: str,
                                           tmp_path: Path) -> None:
    victim = api_pods(sim)[0]
    ctx = with_pod(make_ctx, victim)
    intent = await NetworkIsolate().plan(ctx, NetworkIsolateParams())
    await NetworkIsolate().apply(ctx, intent)
    value = intent.args["label"]["metadata"]["labels"]["remediator.io/quarantine"]
    env = {**os.environ, "KUBECONFIG": kubeconfig, "HOME": str(tmp_path)}
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    proc = await asyncio.create_subprocess_exec(
        kubectl, "get", "networkpolicies", "-n", "prod", "-o",
        "jsonpath={.items[*].spec.podSelector.matchLabels}", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out) == {"remediator.io/quarantine": value}
    proc = await asyncio.create_subprocess_exec(
        kubectl, "get", "pods", "-n", "prod", "-l", f"remediator.io/quarantine={value}",
        "-o", "name", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert out.decode().split() == [f"pod/{victim}"], err.decode()
