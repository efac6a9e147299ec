"""The collector against the simulator, through the real adapters: each condition the
simulator can produce is collected and diagnosed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp

from remediator.adapters.k8s_inspect import KubernetesInspector
from remediator.adapters.kubernetes import KubernetesCluster
from remediator.diagnosis import analyze
from remediator.diagnosis.collector import collect
from remediator.model.incident import TargetRef
from remediator.simulator import Simulator

API = TargetRef(kind="Deployment", namespace="prod", name="api")


def iso(sim: Simulator, after: float = 0.0) -> str:
    return (sim.clock.now() + timedelta(seconds=after)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def roll(cluster: KubernetesCluster, sim: Simulator, image: str, *,
               memory: str | None = None, annotations: dict[str, str] | None = None) -> None:
    container: dict[str, Any] = {"name": "api", "image": image}
    if memory:
        container["resources"] = {"limits": {"memory": memory}}
    template: dict[str, Any] = {"spec": {"containers": [container]}}
    if annotations:
        template["metadata"] = {"annotations": annotations}
    await cluster.patch_workload(API, {"spec": {"template": template}},
                                 content_type="application/strategic-merge-patch+json")
    for _ in range(3):
        await sim.clock.advance(1)   # type: ignore[attr-defined]
        sim.controller.tick()


async def pod_state(control: aiohttp.ClientSession, **body: Any) -> None:
    async with control.post("/sim/v1/pod-states", json=body) as r:
        assert r.status == 201, await r.text()


async def diagnose(cluster: KubernetesCluster, inspector: KubernetesInspector | None,
                   sim: Simulator, target: TargetRef = API,
                   alert_after: float = 120.0) -> dict[str, Any]:
    alerts = [{"labels": {"alertname": "HighErrorRate"}, "startsAt": iso(sim, alert_after)}]
    snap = await collect(cluster, inspector, target, alerts, sim.clock.now())
    return {f.kind: f for f in analyze(snap)} | {"_problems": snap.problems}


async def test_bad_rollout_oom_killed_with_limit_and_log(
        sim: Simulator, cluster: KubernetesCluster, inspector: KubernetesInspector,
        control: aiohttp.ClientSession) -> None:
    await pod_state(control, image="example/api:1.3.0", state="OOMKilled",
                    log="java.lang.OutOfMemoryError: Java heap space")
    await roll(cluster, sim, "example/api:1.3.0", memory="256Mi")
    found = await diagnose(cluster, inspector, sim)
    assert found["_problems"] == ()
    rollout = found["recent_rollout"]
    assert "image example/api:1.2.0 → example/api:1.3.0 (revision 3 → 4)" in rollout.summary
    assert "before the first alert (HighErrorRate)" in rollout.summary
    assert "memory limit 256Mi" in found["oom_killed"].summary
    assert "exit code 137 (OOMKilled)" in found["crash_loop"].summary
    assert "java.lang.OutOfMemoryError" in found["crash_loop"].summary
    assert "config_changed" not in found


async def test_crash_loop_exit_code_and_previous_log_line(
        sim: Simulator, cluster: KubernetesCluster, inspector: KubernetesInspector,
        control: aiohttp.ClientSession) -> None:
    await pod_state(control, image="example/api:1.3.0", state="CrashLoopBackOff", exit_code=3,
                    log="starting\npanic: DATABASE_URL not set")
    await roll(cluster, sim, "example/api:1.3.0")
    crash = (await diagnose(cluster, inspector, sim))["crash_loop"]
    assert "exit code 3 (Error)" in crash.summary
    assert "last log line: 'panic: DATABASE_URL not set'" in crash.summary


async def test_image_pull_failure_names_the_image(
        sim: Simulator, cluster: KubernetesCluster, inspector: KubernetesInspector,
        control: aiohttp.ClientSession) -> None:
    await pod_state(control, image="example/api:9.9.9", state="ImagePullBackOff")
    await roll(cluster, sim, "example/api:9.9.9")
    found = await diagnose(cluster, inspector, sim)
    assert "cannot pull image example/api:9.9.9 (ImagePullBackOff)" in \
        found["image_pull_failed"].summary


async def test_pending_with_the_schedulers_reason(
        sim: Simulator, cluster: KubernetesCluster, inspector: KubernetesInspector,
        control: aiohttp.ClientSession) -> None:
    await pod_state(control, image="example/api:1.3.0", state="Pending",
                    message="0/3 nodes are available: 3 Insufficient memory.")
    await roll(cluster, sim, "example/api:1.3.0")
    found = await diagnose(cluster, inspector, sim)
    assert "Unschedulable: 0/3 nodes are available: 3 Insufficient memory." in \
        found["pod_pending"].summary


async def test_readiness_failing(sim: Simulator, cluster: KubernetesCluster,
                                 inspector: KubernetesInspector,
                                 control: aiohttp.ClientSession) -> None:
    await pod_state(control, image="example/api:1.2.0", state="Unready")
    found = await diagnose(cluster, inspector, sim)
    assert "is running but not ready" in found["readiness_failing"].summary
    assert "0 of 3 replicas ready" in found["replicas_below_desired"].summary
    assert "recent_rollout" not in found          # the last rollout was days ago


async def test_config_change_in_the_template(sim: Simulator, cluster: KubernetesCluster,
                                             inspector: KubernetesInspector) -> None:
    await cluster.patch_workload(
        API, {"spec": {"template": {"metadata": {"annotations": {"checksum/config": "aaa"}}}}},
        content_type="application/strategic-merge-patch+json")
    await sim.clock.advance(3600)   # type: ignore[attr-defined]
    await roll(cluster, sim, "example/api:1.2.0", annotations={"checksum/config": "bbb"})
    found = await diagnose(cluster, inspector, sim)
    assert "checksum/config aaa → bbb" in found["config_changed"].summary
    assert "config hash changed" in found["recent_rollout"].summary


async def test_node_pressure_and_not_ready(sim: Simulator, cluster: KubernetesCluster,
                                           inspector: KubernetesInspector,
                                           control: aiohttp.ClientSession) -> None:
    for node, kind, status in (("node-1", "MemoryPressure", "True"),
                               ("node-2", "Ready", "False")):
        async with control.post(f"/sim/v1/nodes/{node}/conditions",
                                json={"type": kind, "status": status}) as r:
            assert r.status == 200, await r.text()
    pods = await cluster.list_pods("prod", "app=api")
    on = {p["spec"]["nodeName"] for p in pods}
    found = await diagnose(cluster, inspector, sim)
    if "node-1" in on:
        assert "node node-1 has MemoryPressure" in found["node_pressure"].summary
    if "node-2" in on:
        assert "node node-2 is NotReady" in found["node_not_ready"].summary
    assert {"node-1", "node-2"} & on


async def test_pdb_blocking_and_hpa_at_max(sim: Simulator, cluster: KubernetesCluster,
                                           inspector: KubernetesInspector,
                                           control: aiohttp.ClientSession) -> None:
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
           "metadata": {"name": "api", "namespace": "prod"},
           "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "api"}}}}
    async with control.post("/apis/policy/v1/namespaces/prod/poddisruptionbudgets",
                            json=pdb) as r:
        assert r.status == 201, await r.text()
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "api", "namespace": "prod"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                       "name": "api"}, "minReplicas": 1, "maxReplicas": 3},
           "status": {"currentReplicas": 3, "desiredReplicas": 3}}
    async with control.post("/apis/autoscaling/v2/namespaces/prod/horizontalpodautoscalers",
                            json=hpa) as r:
        assert r.status == 201, await r.text()
    sim.controller.tick()
    found = await diagnose(cluster, inspector, sim)
    assert "PodDisruptionBudget api allows no disruption (3 healthy, 3 required)" in \
        found["pdb_blocking"].summary
    assert "HPA api is at its maximum: 3 of maxReplicas 3" in found["hpa_at_max"].summary


async def test_without_an_inspector_the_hole_is_named(sim: Simulator,
                                                      cluster: KubernetesCluster) -> None:
    found = await diagnose(cluster, None, sim)
    assert any("no inspector" in p for p in found["_problems"])


async def test_a_missing_target_is_a_problem_not_a_crash(
        sim: Simulator, cluster: KubernetesCluster, inspector: KubernetesInspector) -> None:
    found = await diagnose(cluster, inspector, sim,
                           TargetRef(kind="Deployment", namespace="prod", name="nope"))
    assert "404" in found["_problems"][0]
