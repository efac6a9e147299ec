"""KubernetesCluster: error mapping (injected faults), rollout status, describe, connect."""

from __future__ import annotations

import pytest

from remediator.actions.kubernetes import API_PERMISSIONS, Restart, Scale
from remediator.actions.params import RestartParams, ScaleParams
from remediator.adapters.kubernetes import KubernetesCluster, rollout_verdict
from remediator.errors import PermanentError, TemporaryError
from remediator.model.incident import TargetRef
from remediator.simulator import Simulator

API = TargetRef(kind="Deployment", namespace="prod", name="api")


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_errors_are_temporary(sim: Simulator, cluster: KubernetesCluster,
                                           status: int) -> None:
    sim.control.add_fault(status=status, count=1, method="GET", path="deployments/api$")
    with pytest.raises(TemporaryError, match=rf"get Deployment prod/api: HTTP {status}") as info:
        await cluster.read_workload(API)
    assert info.value.__cause__ is not None
    assert (await cluster.read_workload(API))["metadata"]["name"] == "api"   # count=1 is spent


async def test_conflict_is_temporary_and_names_the_object(sim: Simulator, make_ctx: object,
                                                          cluster: KubernetesCluster) -> None:
    sim.control.add_fault(status=409, method="PATCH", path="/scale$")
    with pytest.raises(TemporaryError, match=r"scale Deployment prod/api to 5: HTTP 409.*"
                                             r"object has been modified"):
        await cluster.patch_scale(API, 5)


async def test_slow_responses_time_out_as_temporary(sim: Simulator, kubeconfig: str) -> None:
    cluster = await KubernetesCluster.connect(kubeconfig=kubeconfig, request_timeout=0.2)
    try:
        sim.control.add_fault(latency=1.0, path="deployments/api$")
        with pytest.raises(TemporaryError, match=r"get Deployment prod/api: no answer within 0.2s"):
            await cluster.read_workload(API)
    finally:
        await cluster.close()


@pytest.mark.parametrize(("status", "match"), [(403, "HTTP 403"), (422, "HTTP 422"),
                                               (400, "HTTP 400")])
async def test_client_errors_are_permanent(sim: Simulator, cluster: KubernetesCluster,
                                           status: int, match: str) -> None:
    sim.control.add_fault(status=status, message="denied by the simulator")
    with pytest.raises(PermanentError, match=f"{match}.*denied by the simulator"):
        await cluster.read_workload(API)


async def test_not_found_is_permanent(cluster: KubernetesCluster) -> None:
    missing = TargetRef(kind="Deployment", namespace="prod", name="nope")
    with pytest.raises(PermanentError,
                       match=r'get Deployment prod/nope: HTTP 404.*"nope" not found'):
        await cluster.read_workload(missing)


async def test_connection_refused_is_temporary(sim: Simulator, kubeconfig: str) -> None:
    cluster = await KubernetesCluster.connect(kubeconfig=kubeconfig, request_timeout=1.0)
    await sim.stop()
    try:
        with pytest.raises(TemporaryError, match="cannot reach the API server"):
            await cluster.read_workload(API)
    finally:
        await cluster.close()


async def test_bad_kubeconfig_is_permanent(tmp_path: object) -> None:
    with pytest.raises(PermanentError, match="cannot load Kubernetes configuration"):
        await KubernetesCluster.connect(kubeconfig="/nonexistent/kubeconfig")


async def test_wrong_token_is_permanent(sim: Simulator, cluster: KubernetesCluster) -> None:
    sim.control.token = "rotated"
    with pytest.raises(PermanentError, match="HTTP 401"):
        await cluster.read_workload(API)


async def test_actions_surface_faults_as_temporary(sim: Simulator, make_ctx: object) -> None:
    assert callable(make_ctx)
    ctx = make_ctx()
    intent = await Restart().plan(ctx, RestartParams())
    sim.control.add_fault(status=500, method="PATCH")
    with pytest.raises(TemporaryError, match="patch Deployment prod/api: HTTP 500"):
        await Restart().apply(ctx, intent)
    sim.control.add_fault(status=503, path="horizontalpodautoscalers")
    with pytest.raises(TemporaryError, match="list HorizontalPodAutoscalers in prod"):
        await Scale().plan(ctx, ScaleParams(to=4))


async def test_describe_lists_pods_and_events(sim: Simulator, cluster: KubernetesCluster) -> None:
    context = await cluster.describe(API)
    assert len(context.pods) == 3
    assert all(p["ready"] and p["restarts"] == 0 and p["phase"] == "Running"
               for p in context.pods)
    assert all("Normal" in e for e in context.events)


async def test_rollout_status_of_statefulsets_and_daemonsets() -> None:
    sts = {"kind": "StatefulSet", "metadata": {"name": "db", "generation": 2},
           "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate"}},
           "status": {"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 3,
                      "currentReplicas": 3, "currentRevision": "db-1", "updateRevision": "db-2"}}
    assert rollout_verdict(sts).message.startswith("waiting for statefulset rolling update")
    sts["status"]["currentRevision"] = "db-2"
    assert rollout_verdict(sts).done
    ds = {"kind": "DaemonSet", "metadata": {"name": "agent", "generation": 1},
          "spec": {"updateStrategy": {"type": "OnDelete"}}, "status": {}}
    with pytest.raises(PermanentError, match="only available for RollingUpdate"):
        rollout_verdict(ds)


def test_api_permissions_are_well_formed() -> None:
    assert len(set(API_PERMISSIONS)) == len(API_PERMISSIONS)
    verbs = {"get", "list", "watch", "create", "update", "patch", "delete"}
    assert all(isinstance(g, str) and r and v in verbs for g, r, v in API_PERMISSIONS)
    assert ("apps", "deployments/scale", "patch") in API_PERMISSIONS
