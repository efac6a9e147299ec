"""The simulator against the real semantics (integrations.md, kubectl and the controllers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from kubernetes_asyncio import client, watch
from prometheus_client.parser import text_string_to_metric_families

from remediator.adapters.kubernetes import KubernetesCluster
from remediator.clock import FakeClock
from remediator.model.incident import TargetRef
from remediator.simulator import Simulator, seed
from remediator.simulator.__main__ import main
from remediator.simulator.controller import DEPLOY, RS
from remediator.simulator.patching import PatchError, json_patch, merge_patch, strategic_merge_patch

Settle = Callable[[float], Awaitable[None]]
API = TargetRef(kind="Deployment", namespace="prod", name="api")
SMP = "application/strategic-merge-patch+json"


def test_patch_flavours() -> None:
    doc = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}],
                    "x": 1}}
    assert strategic_merge_patch(doc, {"spec": {"containers": [{"name": "b", "image": "2"}]}}) \
        == {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}],
                     "x": 1}}
    assert merge_patch(doc, {"spec": {"containers": [{"name": "b"}], "x": None}}) \
        == {"spec": {"containers": [{"name": "b"}]}}
    assert json_patch(doc, [{"op": "replace", "path": "/spec/x", "value": 2},
                            {"op": "remove", "path": "/spec/containers/0"}]) \
        == {"spec": {"containers": [{"name": "b", "image": "1"}], "x": 2}}
    with pytest.raises(PatchError, match="missing key"):
        json_patch(doc, [{"op": "replace", "path": "/spec/y", "value": 1}])


async def test_rollout_moves_a_pod_at_a_time_with_kubectls_status_sequence(
        sim: Simulator, cluster: KubernetesCluster, settle: Settle) -> None:
    before = sim.store.get(DEPLOY, "prod", "api")["metadata"]["generation"]
    await cluster.patch_workload(API, {"metadata": {"labels": {"team": "x"}}}, content_type=SMP)
    assert sim.store.get(DEPLOY, "prod", "api")["metadata"]["generation"] == before
    await cluster.patch_workload(API, {"spec": {"template": {"metadata": {"annotations": {
        "k": "v"}}}}}, content_type=SMP)
    d = sim.store.get(DEPLOY, "prod", "api")
    assert d["metadata"]["generation"] == before + 1 == d["status"]["observedGeneration"]
    new = [rs for rs in sim.store.list(RS, "prod", labels="app=api")
           if rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"]
    assert len(new) == 1
    h = new[0]["spec"]["template"]["metadata"]["labels"]["pod-template-hash"]
    assert new[0]["metadata"]["name"] == f"api-{h}"
    assert new[0]["spec"]["selector"]["matchLabels"] == {"app": "api", "pod-template-hash": h}
    assert new[0]["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    seen = []
    for _ in range(40):
        seen.append((await cluster.rollout_status(API)).message)
        await settle(1)
    messages = list(dict.fromkeys(seen))
    assert messages[0] == ('Waiting for deployment "api" rollout to finish: 0 out of 3 new '
                           "replicas have been updated...")
    assert ('Waiting for deployment "api" rollout to finish: 1 old replicas are pending '
            "termination...") in messages
    assert ('Waiting for deployment "api" rollout to finish: 1 out of 3 new replicas have '
            "been updated...") in messages
    assert messages[-1] == 'deployment "api" successfully rolled out'
    status = sim.store.get(DEPLOY, "prod", "api")["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert conditions["Available"]["status"] == "True"


async def test_paused_deployment_does_not_roll_out_but_scales(
        sim: Simulator, cluster: KubernetesCluster, settle: Settle) -> None:
    worker = TargetRef(kind="Deployment", namespace="prod", name="worker")
    await cluster.patch_workload(worker, {"spec": {"template": {"metadata": {"annotations": {
        "k": "v"}}}}}, content_type=SMP)
    await settle(5)
    assert len(sim.store.list(RS, "prod", labels="app=worker")) == 1
    await cluster.patch_scale(worker, 2)
    await settle(5)
    assert sim.store.get(DEPLOY, "prod", "worker")["status"]["readyReplicas"] == 2


async def test_scale_subresource_shape_and_stale_update_conflict(
        sim: Simulator, cluster: KubernetesCluster) -> None:
    apps = client.AppsV1Api(cluster.api_client)      # the generated client and its models
    scale = await apps.read_namespaced_deployment_scale("api", "prod")
    assert (scale.kind, scale.api_version, scale.status.selector) == (
        "Scale", "autoscaling/v1", "app=api")
    scale.metadata.resource_version = "1"
    scale.spec.replicas = 4
    with pytest.raises(client.ApiException) as info:
        await apps.replace_namespaced_deployment_scale("api", "prod", scale)
    assert info.value.status == 409


async def test_selectors_events_and_watch(sim: Simulator, cluster: KubernetesCluster,
                                          clock: FakeClock) -> None:
    core, apps = client.CoreV1Api(cluster.api_client), client.AppsV1Api(cluster.api_client)
    pods = await core.list_namespaced_pod("prod", label_selector="app in (api,web)")
    assert len(pods.items) == 5
    await cluster.patch_scale(API, 4)
    events = await core.list_namespaced_event(
        "prod", field_selector="involvedObject.kind=Deployment,involvedObject.name=api")
    assert events.items
    assert all(e.involved_object.name == "api" for e in events.items)
    w = watch.Watch()
    seen: list[tuple[str, int]] = []

    async def follow() -> None:
        async for event in w.stream(apps.list_namespaced_deployment, "prod",
                                    field_selector="metadata.name=api", timeout_seconds=30):
            seen.append((event["type"], event["object"].spec.replicas))
            if event["object"].spec.replicas == 6:
                w.stop()

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.2)
    await cluster.patch_scale(API, 6)
    await asyncio.wait_for(task, 5)
    assert seen[0] == ("ADDED", 4)
    assert seen[-1] == ("MODIFIED", 6)


async def test_leases(sim: Simulator, cluster: KubernetesCluster) -> None:
    api = client.CoordinationV1Api(cluster.api_client)
    body = client.V1Lease(metadata=client.V1ObjectMeta(name="remediator", namespace="default"),
                          spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15))
    created = await api.create_namespaced_lease("default", body)
    created.spec.holder_identity = "b"
    updated = await api.replace_namespaced_lease("remediator", "default", created)
    assert updated.spec.holder_identity == "b"
    with pytest.raises(client.ApiException) as info:      # stale resourceVersion
        await api.replace_namespaced_lease("remediator", "default", created)
    assert info.value.status == 409
    assert (await api.read_namespaced_lease("remediator", "default")).spec.holder_identity == "b"


async def test_control_endpoints_and_metrics(sim: Simulator, cluster: KubernetesCluster,
                                             settle: Settle) -> None:
    async with aiohttp.ClientSession(sim.url) as http:
        async with http.post("/sim/v1/bad-images", json={"image": "example/api:1.3.0"}) as r:
            assert "example/api:1.3.0" in (await r.json())["images"]
        await cluster.patch_workload(API, {"spec": {"template": {"spec": {"containers": [
            {"name": "api", "image": "example/api:1.3.0"}]}}}}, content_type=SMP)
        async with http.get("/sim/v1/calls") as r:
            calls = (await r.json())["calls"]
        assert [(c["method"], c["path"]) for c in calls] == [
            ("PATCH", "/apis/apps/v1/namespaces/prod/deployments/api")]
        for pattern, expected in (("deployments/api$", calls), ("deployments/web$", [])):
            async with http.get("/sim/v1/calls", params={"path": pattern}) as r:
                assert (await r.json())["calls"] == expected
        async with http.get("/sim/v1/calls", params={"path": "("}) as r:
            assert r.status == 400
            assert "invalid path regex" in (await r.json())["error"]
        async with http.post("/sim/v1/faults", json={"status": 500, "count": 1}) as r:
            assert r.status == 201
        async with http.get("/apis/apps/v1", headers={"Authorization": f"Bearer {sim.token}"}) as r:
            assert r.status == 500
        async with http.get("/apis/apps/v1", headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        await settle(30)
        async with http.get("/metrics") as r:
            text = await r.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = families["http_requests"].samples
    bad_pod = [s for s in requests if s.labels["deployment"] == "api"
               and s.labels["namespace"] == "prod" and s.labels["code"] == "500"
               and s.value > 10]
    assert bad_pod
    restarts = [s for s in families["kube_pod_container_status_restarts"].samples if s.value > 0]
    assert restarts
    waiting = families["kube_pod_container_status_waiting_reason"].samples
    assert {s.labels["reason"] for s in waiting} == {"CrashLoopBackOff"}
    spec = {s.labels["deployment"]: s.value for s in families["kube_deployment_spec_replicas"]
            .samples if s.labels["namespace"] == "prod"}
    assert spec == {"api": 3, "web": 2, "worker": 1}
    assert "kube_deployment_status_replicas_available" in families
    assert "kube_deployment_status_replicas_updated" in families


def test_seed_format_is_strict() -> None:
    loaded = seed.load("deployments:\n- {namespace: a, name: b, image: x, history: [w]}\n")
    assert loaded.deployments[0].history == ["w"]
    assert loaded.all_namespaces() == ["default", "a"]
    with pytest.raises(ValueError, match="replicaz"):
        seed.load("deployments:\n- {namespace: a, name: b, image: x, replicaz: 2}\n")


async def test_a_seeded_cluster(clock: FakeClock) -> None:
    s = seed.load("bad_images: [img:bad]\ndeployments:\n"
                  "- {namespace: shop, name: cart, replicas: 2, image: 'img:bad',"
                  " history: ['img:1']}\n"
                  "statefulsets: [{namespace: shop, name: db, replicas: 2, image: 'pg:16'}]\n")
    sim = Simulator(s, clock=clock)
    d = sim.store.get(DEPLOY, "shop", "cart")
    assert d["status"].get("availableReplicas", 0) == 0
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert sim.store.list(RS, "shop", labels="app=cart")


def test_main_rejects_a_bad_listen_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--listen", "nonsense"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
