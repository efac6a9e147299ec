"""kubectl against the simulator, and our actions against what kubectl sends.

Uses the kubeconfig the simulator writes; skipped only when kubectl is absent.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from remediator.actions.kubernetes import Restart, Rollback, Scale
from remediator.actions.params import RestartParams, RollbackParams, ScaleParams
from remediator.adapters.kubernetes import KubernetesCluster
from remediator.engine.contract import RunContext
from remediator.model.incident import TargetRef
from remediator.simulator import Simulator
from remediator.simulator.controller import DEPLOY
from remediator.simulator.objects import strip_hash

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
Ctx = Callable[..., RunContext]


@pytest.fixture
def kubectl(kubeconfig: str, tmp_path: Path) -> Callable[..., Any]:
    env = {**os.environ, "KUBECONFIG": kubeconfig, "KUBECACHEDIR": str(tmp_path / "cache"),
           "HOME": str(tmp_path)}

    async def run(*args: str) -> tuple[int, str, str]:
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()
    return run



def _last_write(sim: Simulator) -> dict[str, Any]:
    return sim.control.writes()[-1]


async def test_kubectl_get_and_status(sim: Simulator, kubectl: Any,
                                      cluster: KubernetesCluster) -> None:
    code, out, err = await kubectl("get", "deployments", "-n", "prod", "-o", "name")
    assert code == 0, err
    assert out.split() == ["deployment.apps/api", "deployment.apps/web", "deployment.apps/worker"]
    code, out, err = await kubectl("get", "deployment", "api", "-n", "prod", "-o",
                                   "jsonpath={.status.availableReplicas}")
    assert (code, out) == (0, "3"), err
    code, out, err = await kubectl("rollout", "status", "deployment/web", "-n", "prod",
                                   "--timeout=10s")
    assert code == 0, err
    ours = await cluster.rollout_status(TargetRef(kind="Deployment", namespace="prod", name="web"))
    assert out.strip() == ours.message


async def test_kubectl_scale_sends_what_our_scale_sends(sim: Simulator, kubectl: Any,
                                                        make_ctx: Ctx) -> None:
    intent = await Scale().plan(make_ctx(), ScaleParams(to=4))
    code, _, err = await kubectl("scale", "deployment/api", "-n", "prod", "--replicas=4")
    assert code == 0, err
    theirs = _last_write(sim)
    method, path, body = intent.api_calls[0].split(" ", 2)
    assert (theirs["method"], theirs["path"], theirs["content_type"]) == (
        method, path, "application/merge-patch+json")
    assert theirs["body"] == {"spec": {"replicas": 4}} == json.loads(body)
    assert sim.store.get(DEPLOY, "prod", "api")["spec"]["replicas"] == 4


async def test_kubectl_rollout_restart_matches_ours(sim: Simulator, kubectl: Any,
                                                    make_ctx: Ctx) -> None:
    intent = await Restart().plan(make_ctx(), RestartParams())
    code, _, err = await kubectl("rollout", "restart", "deployment/api", "-n", "prod")
    assert code == 0, err
    theirs = _last_write(sim)
    assert theirs["content_type"] == "application/strategic-merge-patch+json"
    assert intent.api_calls[0].split(" ", 2)[1] == theirs["path"]
    annotations = theirs["body"]["spec"]["template"]["metadata"]["annotations"]
    assert set(annotations) == set(intent.args["patch"]["spec"]["template"]["metadata"][
        "annotations"]) == {"kubectl.kubernetes.io/restartedAt"}
    code, _, err = await kubectl("rollout", "restart", "deployment/worker", "-n", "prod")
    assert code != 0
    assert "paused" in err


async def test_kubectl_rollout_undo_matches_our_rollback(sim: Simulator, kubectl: Any,
                                                         make_ctx: Ctx) -> None:
    intent = await Rollback().plan(make_ctx(), RollbackParams())
    code, _, err = await kubectl("rollout", "undo", "deployment/api", "-n", "prod")
    assert code == 0, err
    theirs = _last_write(sim)
    assert theirs["content_type"] == "application/json-patch+json"
    assert [op["path"] for op in theirs["body"]] == [op["path"] for op in intent.args["patch"]]
    assert theirs["body"][1]["value"] == intent.args["patch"][1]["value"]     # annotations
    d = sim.store.get(DEPLOY, "prod", "api")
    assert strip_hash(d["spec"]["template"]) == strip_hash(intent.args["template"])
    # Now the template equals revision 2's: our plan skips, as kubectl does.
    code, out, err = await kubectl("rollout", "undo", "deployment/api", "-n", "prod",
                                   "--to-revision=4")
    assert code == 0, err
    assert "skipped rollback" in out
    assert (await Rollback().plan(make_ctx(), RollbackParams(revision=4))).noop
    code, _, err = await kubectl("rollout", "undo", "deployment/web", "-n", "prod")
    assert code != 0
    assert "no rollout history found" in err
    code, _, err = await kubectl("rollout", "undo", "deployment/api", "-n", "prod",
                                 "--to-revision=9")
    assert code != 0
    assert "unable to find specified revision 9" in err


async def test_kubectl_rollout_status_during_a_rollout(sim: Simulator, kubectl: Any,
                                                       cluster: KubernetesCluster,
                                                       make_ctx: Ctx) -> None:
    intent = await Restart().plan(make_ctx(), RestartParams())
    await Restart().apply(make_ctx(), intent)
    code, out, err = await kubectl("rollout", "status", "deployment/api", "-n", "prod",
                                   "--watch=false")
    assert code == 0, err
    ours = await cluster.rollout_status(TargetRef(kind="Deployment", namespace="prod", name="api"))
    assert out.strip() == ours.message
    assert not ours.done
