"""The four actions against the simulator, through the real kubernetes_asyncio client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from remediator.actions.kubernetes import DeletePod, Restart, Rollback, Scale, check_rollout
from remediator.actions.params import DeletePodParams, RestartParams, RollbackParams, ScaleParams
from remediator.adapters.kubernetes import KubernetesCluster
from remediator.engine.contract import RunContext
from remediator.errors import PermanentError, TemporaryError
from remediator.model.incident import TargetRef
from remediator.simulator import Simulator
from remediator.simulator.controller import DEPLOY, POD, RS

Ctx = Callable[..., RunContext]
Settle = Callable[[float], Awaitable[None]]
API = TargetRef(kind="Deployment", namespace="prod", name="api")


def revisions(sim: Simulator, ns: str = "prod", app: str = "api") -> dict[int, str]:
    return {int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]):
            rs["spec"]["template"]["spec"]["containers"][0]["image"]
            for rs in sim.store.list(RS, ns, labels=f"app={app}")}


def image(sim: Simulator, ns: str = "prod", name: str = "api") -> str:
    d = sim.store.get(DEPLOY, ns, name)
    return str(d["spec"]["template"]["spec"]["containers"][0]["image"])


async def test_missing_cluster_is_temporary(make_ctx: Ctx) -> None:
    ctx = make_ctx()
    ctx.cluster = None
    with pytest.raises(TemporaryError, match="no Kubernetes cluster configured"):
        await Restart().plan(ctx, RestartParams())


async def test_restart_rolls_out_once_even_when_replayed(
        sim: Simulator, make_ctx: Ctx, settle: Settle, cluster: KubernetesCluster) -> None:
    ctx = make_ctx()
    intent = await Restart().plan(ctx, RestartParams(reason="high error rate"))
    assert intent.args["restarted_at"] == "2026-08-01T10:00:00Z"
    assert intent.api_calls == [
        'PATCH /apis/apps/v1/namespaces/prod/deployments/api {"spec":{"template":{"metadata":'
        '{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-08-01T10:00:00Z"}}}}}']
    assert sim.control.writes() == []                       # plan is read-only
    generation = sim.store.get(DEPLOY, "prod", "api")["metadata"]["generation"]
    await Restart().apply(ctx, intent)
    assert sim.store.get(DEPLOY, "prod", "api")["metadata"]["generation"] == generation + 1
    assert len(revisions(sim)) == 4
    await settle(30)
    assert (await check_rollout(cluster, API)).done
    await Restart().apply(ctx, intent)                      # replay after a crash
    assert sim.store.get(DEPLOY, "prod", "api")["metadata"]["generation"] == generation + 1
    assert len(revisions(sim)) == 4
    assert sim.store.get(DEPLOY, "prod", "api")["spec"]["template"]["metadata"][
        "annotations"]["kubectl.kubernetes.io/restartedAt"] == "2026-08-01T10:00:00Z"


async def test_restart_refuses_a_paused_deployment(sim: Simulator, make_ctx: Ctx) -> None:
    with pytest.raises(PermanentError, match="paused"):
        await Restart().plan(make_ctx(name="worker"), RestartParams())
    assert sim.control.writes() == []


async def test_scale_by_factor_is_capped_and_applied_as_an_absolute_number(
        sim: Simulator, make_ctx: Ctx) -> None:
    ctx = make_ctx()
    intent = await Scale().plan(ctx, ScaleParams(factor=3, max_replicas=5))
    assert intent.description.startswith("scale Deployment prod/api from 3 to 5")
    assert intent.args["replicas"] == 5
    assert intent.api_calls == [
        'PATCH /apis/apps/v1/namespaces/prod/deployments/api/scale {"spec":{"replicas":5}}']
    await Scale().apply(ctx, intent)
    await Scale().apply(ctx, intent)                        # replay: still 5, not 15
    assert sim.store.get(DEPLOY, "prod", "api")["spec"]["replicas"] == 5
    writes = sim.control.writes()
    assert [w["content_type"] for w in writes] == ["application/merge-patch+json"] * 2
    assert (await Scale().plan(ctx, ScaleParams(to=5))).noop


async def test_scale_down_respects_min_replicas(sim: Simulator, make_ctx: Ctx) -> None:
    intent = await Scale().plan(make_ctx(), ScaleParams(by=-5, min_replicas=2))
    assert (intent.args["from"], intent.args["replicas"]) == (3, 2)


async def test_scale_refuses_when_an_hpa_owns_the_deployment(sim: Simulator, make_ctx: Ctx) -> None:
    with pytest.raises(PermanentError, match="HorizontalPodAutoscaler prod/web"):
        await Scale().plan(make_ctx(name="web"), ScaleParams(to=4))
    intent = await Scale().plan(make_ctx(name="web"), ScaleParams(to=4, allow_hpa=True))
    assert intent.args["replicas"] == 4


async def test_rollback_to_previous_restores_the_old_template_as_a_new_revision(
        sim: Simulator, make_ctx: Ctx, settle: Settle, cluster: KubernetesCluster) -> None:
    assert revisions(sim) == {1: "example/api:1.0.0", 2: "example/api:1.1.0",
                              3: "example/api:1.2.0"}
    ctx = make_ctx()
    intent = await Rollback().plan(ctx, RollbackParams())
    assert intent.args["revision"] == 2                     # "previous" resolved at plan time
    assert "from revision 3 to revision 2" in intent.description
    assert intent.api_calls[0].startswith(
        'PATCH /apis/apps/v1/namespaces/prod/deployments/api [{"op":"replace","path":'
        '"/spec/template"')
    await Rollback().apply(ctx, intent)
    assert image(sim) == "example/api:1.1.0"
    assert revisions(sim) == {1: "example/api:1.0.0", 4: "example/api:1.1.0",
                              3: "example/api:1.2.0"}
    d = sim.store.get(DEPLOY, "prod", "api")
    assert "pod-template-hash" not in d["spec"]["template"]["metadata"]["labels"]
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"
    result = await Rollback().apply(ctx, intent)            # replay: no second rollback
    assert result.details["skipped"]
    assert len(sim.control.writes()) == 1
    await settle(30)
    assert (await check_rollout(cluster, API)).done


async def test_rollback_after_a_restart_skips_the_restarted_template(
        sim: Simulator, make_ctx: Ctx) -> None:
    # The ladder restarts first: that makes revision 4, the same template as 3 plus a
    # restartedAt. "previous" must then mean 2 (the last different template), not 3.
    ctx = make_ctx()
    await Restart().apply(ctx, await Restart().plan(ctx, RestartParams()))
    assert max(revisions(sim)) == 4
    intent = await Rollback().plan(ctx, RollbackParams())
    assert intent.args["revision"] == 2
    await Rollback().apply(ctx, intent)
    assert image(sim) == "example/api:1.1.0"


async def test_rollback_to_a_given_revision(sim: Simulator, make_ctx: Ctx) -> None:
    ctx = make_ctx()
    intent = await Rollback().plan(ctx, RollbackParams(revision=1))
    await Rollback().apply(ctx, intent)
    assert image(sim) == "example/api:1.0.0"
    assert max(revisions(sim)) == 4
    assert revisions(sim)[4] == "example/api:1.0.0"
    with pytest.raises(PermanentError, match="unable to find specified revision 9"):
        await Rollback().plan(ctx, RollbackParams(revision=9))
    skipped = await Rollback().plan(ctx, RollbackParams(revision=4))
    assert skipped.noop
    assert "already matches revision 4" in skipped.description


async def test_rollback_without_history_is_refused(sim: Simulator, make_ctx: Ctx) -> None:
    with pytest.raises(PermanentError, match='no rollout history found for deployment "web"'):
        await Rollback().plan(make_ctx(name="web"), RollbackParams())


async def test_rollback_ignores_replicasets_of_other_owners(
        sim: Simulator, make_ctx: Ctx) -> None:
    rs = sim.store.list(RS, "prod", labels="app=api")[0]
    foreign = {**rs, "metadata": {**rs["metadata"], "name": "api-foreign", "uid": "x",
                                  "ownerReferences": [{**rs["metadata"]["ownerReferences"][0],
                                                       "uid": "someone-else"}],
                                  "annotations": {"deployment.kubernetes.io/revision": "99"}}}
    foreign["spec"] = {**rs["spec"], "replicas": 0}
    sim.store.create(RS, "prod", foreign)
    intent = await Rollback().plan(make_ctx(), RollbackParams())
    assert intent.args["revision"] == 2


async def test_a_bad_revision_ends_in_progress_deadline_exceeded(
        sim: Simulator, cluster: KubernetesCluster, settle: Settle) -> None:
    await cluster.patch_workload(API, {"spec": {"progressDeadlineSeconds": 60, "template": {
        "spec": {"containers": [{"name": "api", "image": "example/api:2.0.0-bad"}]}}}},
        content_type="application/strategic-merge-patch+json")
    await settle(5)
    status = await check_rollout(cluster, API)
    assert not status.done
    assert not status.failed
    await settle(70)
    status = await check_rollout(cluster, API)
    assert status.failed
    assert status.message == 'deployment "api" exceeded its progress deadline'
    context = await cluster.describe(API)
    crashing = [p for p in context.pods if p["reason"] == "CrashLoopBackOff"]
    assert crashing
    assert crashing[0]["restarts"] >= 7
    assert not crashing[0]["ready"]
    assert any("ProgressDeadlineExceeded" in e for e in context.events)
    assert any("BackOff" in e for e in context.events)


def _pods(sim: Simulator, app: str = "api", ns: str = "prod") -> list[str]:
    return sorted(p["metadata"]["name"] for p in sim.store.list(POD, ns, labels=f"app={app}"))


async def allow_one_unavailable(cluster: KubernetesCluster) -> None:
    await cluster.patch_workload(API, {"spec": {"strategy": {"rollingUpdate": {
        "maxUnavailable": 1}}}}, content_type="application/strategic-merge-patch+json")


async def test_delete_pod_from_the_alert_label(sim: Simulator, make_ctx: Ctx,
                                               cluster: KubernetesCluster) -> None:
    await allow_one_unavailable(cluster)
    sim.control.calls.clear()
    victim = _pods(sim)[0]
    ctx = make_ctx(alerts=[{"labels": {"pod": victim}}])
    intent = await DeletePod().plan(ctx, DeletePodParams(force=True))
    assert intent.args["pods"][0]["name"] == victim
    assert '"gracePeriodSeconds":0' in intent.api_calls[0]
    result = await DeletePod().apply(ctx, intent)
    assert result.details["deleted"] == [victim]
    assert victim not in _pods(sim)
    assert len(_pods(sim)) == 3
    again = await DeletePod().apply(ctx, intent)               # replay: already gone is fine
    assert again.details == {"deleted": [], "already_gone": [victim]}


@pytest.mark.parametrize("label", ["../../x", "api/../../secrets", "API", "a" * 300, ""])
async def test_delete_pod_refuses_a_malicious_label(sim: Simulator, make_ctx: Ctx,
                                                    label: str) -> None:
    ctx = make_ctx(alerts=[{"labels": {"pod": label}}])
    with pytest.raises(PermanentError):
        await DeletePod().plan(ctx, DeletePodParams())
    assert sim.control.writes() == []


async def test_delete_pod_refuses_a_pod_of_another_deployment(
        sim: Simulator, make_ctx: Ctx, cluster: KubernetesCluster) -> None:
    await allow_one_unavailable(cluster)
    foreign = _pods(sim, "web")[0]
    ctx = make_ctx(alerts=[{"labels": {"pod": foreign}}])
    with pytest.raises(PermanentError, match="does not belong to Deployment prod/api"):
        await DeletePod().plan(ctx, DeletePodParams())
    # A look-alike pod carrying the target's labels but owned by someone else is refused too.
    pod = sim.store.get(POD, "prod", foreign)
    pod["metadata"].update(name="api-lookalike", uid="u", labels={"app": "api"})
    sim.store.create(POD, "prod", pod)
    await cluster.patch_workload(API, {"spec": {"strategy": {"rollingUpdate": {
        "maxUnavailable": "100%"}}}}, content_type="application/strategic-merge-patch+json")
    intent = await DeletePod().plan(make_ctx(), DeletePodParams(selector={"app": "api"},
                                                                max_pods=10))
    chosen = [p["name"] for p in intent.args["pods"]]
    assert len(chosen) == 3
    assert "api-lookalike" not in chosen


async def test_delete_pod_keeps_the_minimum_available(sim: Simulator, make_ctx: Ctx) -> None:
    # api: 3 replicas, maxUnavailable 25% → 0: no ready pod may go.
    with pytest.raises(PermanentError, match="below the minimum of 3"):
        await DeletePod().plan(make_ctx(), DeletePodParams(selector={"app": "api"}, max_pods=2))
    assert sim.control.writes() == []


async def test_delete_pod_selector_respects_max_pods(sim: Simulator, make_ctx: Ctx,
                                                     cluster: KubernetesCluster) -> None:
    await cluster.patch_workload(API, {"spec": {"strategy": {"rollingUpdate": {
        "maxUnavailable": 2}}}}, content_type="application/strategic-merge-patch+json")
    intent = await DeletePod().plan(make_ctx(), DeletePodParams(selector={"app": "api"},
                                                                max_pods=2))
    assert len(intent.args["pods"]) == 2
    await DeletePod().apply(make_ctx(), intent)
    assert len(_pods(sim)) == 3


async def test_delete_pod_target_kind_pod(sim: Simulator, make_ctx: Ctx) -> None:
    name = _pods(sim)[0]
    intent = await DeletePod().plan(make_ctx(kind="Pod", name=name), DeletePodParams(pod=name))
    assert intent.args["pods"][0]["name"] == name
    other = _pods(sim)[1]
    with pytest.raises(PermanentError, match="does not belong"):
        await DeletePod().plan(make_ctx(kind="Pod", name=name), DeletePodParams(pod=other))


async def test_rollback_to_a_template_with_the_same_image_says_so(
        sim: Simulator, make_ctx: Ctx) -> None:
    # Revision 4 is revision 3 plus a restart: rolling back to 3 changes the template,
    # not the image (no "api:1.2.0 → api:1.2.0").
    ctx = make_ctx()
    await Restart().apply(ctx, await Restart().plan(ctx, RestartParams()))
    intent = await Rollback().plan(ctx, RollbackParams(revision=3))
    assert intent.description == ("roll back Deployment prod/api from revision 4 to revision "
                                  "3 (the template of revision 3, same image "
                                  "example/api:1.2.0)")
    other = await Rollback().plan(ctx, RollbackParams(revision=1))
    assert other.description.endswith("(example/api:1.2.0 → example/api:1.0.0)")
