"""StatefulSets and DaemonSets: rollback through ControllerRevisions (as kubectl rollout
undo), restart, scale and rollout status, against the simulator; and what the real
kubectl sends and shows for the same."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from remediator.actions.kubernetes import Restart, Rollback, Scale, check_rollout
from remediator.actions.params import RestartParams, RollbackParams, ScaleParams
from remediator.adapters.kubernetes import KubernetesCluster
from remediator.engine.contract import RunContext
from remediator.errors import PermanentError
from remediator.model.incident import TargetRef
from remediator.simulator import Simulator
from remediator.simulator.controller import CR, DS, STS
from remediator.simulator.seed import Seed, WorkloadSeed

Ctx = Callable[..., RunContext]
KUBECTL = shutil.which("kubectl")


@pytest.fixture
def seed() -> Seed:
    return Seed(statefulsets=[WorkloadSeed(namespace="prod", name="db", replicas=2,
                                           image="postgres:16", history=["postgres:15"])],
                daemonsets=[WorkloadSeed(namespace="prod", name="agent", image="agent:2",
                                         history=["agent:1"])])


def image(sim: Simulator, kind: Any, name: str) -> str:
    return str(sim.store.get(kind, "prod", name)["spec"]["template"]["spec"]["containers"][0][
        "image"])


def history(sim: Simulator, name: str) -> dict[int, str]:
    return {int(cr["revision"]): cr["data"]["spec"]["template"]["spec"]["containers"][0]["image"]
            for cr in sim.store.list(CR, "prod", labels=f"app={name}")}


@pytest.mark.parametrize(("kind", "rt", "name", "old", "new"), [
    ("StatefulSet", STS, "db", "postgres:15", "postgres:16"),
    ("DaemonSet", DS, "agent", "agent:1", "agent:2"),
])
async def test_rollback_through_controller_revisions(
        sim: Simulator, make_ctx: Ctx, kind: str, rt: Any, name: str, old: str,
        new: str) -> None:
    assert history(sim, name) == {1: old, 2: new}
    ctx = make_ctx(kind=kind, name=name)
    intent = await Rollback().plan(ctx, RollbackParams())
    [cr] = [c for c in sim.store.list(CR, "prod") if c["revision"] == 1
            and c["metadata"]["labels"]["app"] == name]
    assert intent.description == f"roll back {kind} prod/{name} from revision 2 to revision 1 " \
                                 f"({new} → {old})"
    plural = rt.plural
    assert intent.api_calls == [f"PATCH /apis/apps/v1/namespaces/prod/{plural}/{name} "
                                f"{json.dumps(cr['data'], separators=(',', ':'))}"]
    assert sim.control.writes() == []
    await Rollback().apply(ctx, intent)
    await Rollback().apply(ctx, intent)                     # replay: skipped
    [write] = sim.control.writes()
    assert write["content_type"] == "application/strategic-merge-patch+json"
    assert image(sim, rt, name) == old
    assert history(sim, name) == {3: old, 2: new}           # the old revision renumbered
    again = await Rollback().plan(ctx, RollbackParams(revision=3))
    assert again.noop
    with pytest.raises(PermanentError, match="unable to find specified revision 7"):
        await Rollback().plan(ctx, RollbackParams(revision=7))


async def test_restart_scale_and_rollout_status_of_a_statefulset(
        sim: Simulator, make_ctx: Ctx, cluster: KubernetesCluster) -> None:
    ctx = make_ctx(kind="StatefulSet", name="db")
    t = TargetRef(kind="StatefulSet", namespace="prod", name="db")
    assert (await check_rollout(cluster, t)).done
    await Restart().apply(ctx, await Restart().plan(ctx, RestartParams()))
    assert len(history(sim, "db")) == 3                      # a new revision
    status = await check_rollout(cluster, t)
    assert status.done, status.message
    await Scale().apply(ctx, await Scale().plan(ctx, ScaleParams(to=3)))
    assert sim.store.get(STS, "prod", "db")["spec"]["replicas"] == 3
    sim.controller.bad_images.add("postgres:17")
    obj = sim.store.get(STS, "prod", "db")
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = "postgres:17"
    sim.store.update(STS, obj)
    sim.controller.reconcile()
    status = await check_rollout(cluster, t)
    assert not status.done
    assert "Waiting for" in status.message


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize(("kind", "name"), [("statefulset", "db"), ("daemonset", "agent")])
async def test_kubectl_rollout_undo_sends_what_we_send(
        sim: Simulator, make_ctx: Ctx, kubeconfig: str, tmp_path: Path, kind: str,
        name: str) -> None:
    env = {**os.environ, "KUBECONFIG": kubeconfig, "HOME": str(tmp_path)}

    async def kubectl(*args: str) -> str:
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        return out.decode()

    out = await kubectl("rollout", "history", f"{kind}/{name}", "-n", "prod")
    assert [line.split()[0] for line in out.splitlines()[2:] if line.strip()] == ["1", "2"]
    out = await kubectl("rollout", "status", f"{kind}/{name}", "-n", "prod", "--timeout=5s")
    assert "roll" in out or "complete" in out, out
    ours = await Rollback().plan(make_ctx(kind=kind.replace("statefulset", "StatefulSet")
                                          .replace("daemonset", "DaemonSet"), name=name),
                                 RollbackParams())
    await kubectl("rollout", "undo", f"{kind}/{name}", "-n", "prod")
    [theirs] = [w for w in sim.control.writes() if w["method"] == "PATCH"]
    assert theirs["content_type"] == "application/strategic-merge-patch+json"
    assert theirs["body"] == ours.args["patch"]
    out = await kubectl("rollout", "history", f"{kind}/{name}", "-n", "prod")
    assert [line.split()[0] for line in out.splitlines()[2:] if line.strip()] == ["2", "3"]

