"""Several clusters: a playbook's target.cluster (templated from a label) picks the
cluster the steps act on; locks and cooldowns are per cluster; an unknown cluster
escalates with that reason; each cluster has its own action budget and pause."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from remediator.adapters.kubernetes import KubernetesCluster
from remediator.model.incident import IncidentState, StepStatus
from remediator.settings import EngineSettings
from remediator.simulator import Simulator
from remediator.simulator.controller import DEPLOY

from .rig import AUTH, T0, TOKEN, Rig, alert

PLAYBOOK = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: multi}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}",
           name: "{{ labels.deployment }}", cluster: "{{ labels.cluster }}"}
  guards: {cooldown: 1h}
  steps:
    - name: restart
      action: kubernetes.restart
      verify: {rollout: complete, timeout: 2m, interval: 5s}
"""


@pytest.fixture
async def east(rig: Rig, tmp_path: Path) -> AsyncIterator[tuple[Simulator, KubernetesCluster]]:
    sim = Simulator(clock=rig.clock)
    await sim.start()
    cluster = await KubernetesCluster.connect(
        kubeconfig=sim.write_kubeconfig(str(tmp_path / "east.kubeconfig")))
    yield sim, cluster
    await cluster.close()
    await sim.stop()


def restarted(sim: Simulator) -> bool:
    template = sim.store.get(DEPLOY, "prod", "api")["spec"]["template"]
    return "kubectl.kubernetes.io/restartedAt" in (template["metadata"].get("annotations")
                                                    or {})


async def test_each_alert_acts_on_its_own_cluster(
        rig: Rig, east: tuple[Simulator, KubernetesCluster]) -> None:
    east_sim, east_cluster = east
    assert rig.sim is not None
    await rig.start(PLAYBOOK, clusters={"east": east_cluster})
    await rig.post([alert(cluster="east")])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.target is not None
    assert str(inc.target) == "Deployment prod/api in cluster east"
    assert inc.key == "multi/Deployment/prod/api@east"
    assert inc.steps[0].status == StepStatus.SUCCEEDED, inc.steps
    assert restarted(east_sim)
    assert not restarted(rig.sim)                 # the default cluster was not touched
    assert rig.writes() == []
    # the same Deployment in another cluster is another incident (own lock and cooldown)
    await rig.post([alert(cluster="")])
    await rig.settle()
    assert len(await rig.incidents()) == 2
    assert restarted(rig.sim)


async def test_an_unknown_cluster_escalates_with_that_reason(
        rig: Rig, east: tuple[Simulator, KubernetesCluster]) -> None:
    await rig.start(PLAYBOOK, clusters={"east": east[1]})
    await rig.post([alert(cluster="west")])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    assert "unknown cluster 'west' for Deployment prod/api in cluster west " \
           "(kubernetes.clusters names: east)" in inc.summary
    assert rig.writes() == []
    assert east[0].control.writes() == []


async def _api(rig: Rig, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    assert rig.client is not None
    resp = await rig.client.request(method, path, headers={**AUTH, "Content-Type":
                                                           "application/json"},
                                    data=json.dumps(body) if body is not None else None)
    return resp.status, await resp.json() if resp.status < 300 else await resp.text()


def _cluster(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in status["clusters"] if c["name"] == name)


async def test_each_cluster_has_its_own_budget(
        rig: Rig, east: tuple[Simulator, KubernetesCluster]) -> None:
    east_sim, east_cluster = east
    await rig.start(PLAYBOOK, EngineSettings(action_budget=1, action_budget_window=86400),
                    clusters={"east": east_cluster})
    # the default cluster spends its one action, then its storm pauses it
    await rig.post([alert(cluster="")])
    await rig.settle()
    await rig.post([alert(cluster="", deployment="web")])
    await rig.settle()
    storm = [i for i in await rig.incidents() if "remediation storm" in i.summary]
    assert len(storm) == 1
    assert "the action budget in the default cluster (1 actions per 1d) is spent" \
        in storm[0].summary, storm[0].summary
    # east's budget is untouched by the default cluster's storm: its restart runs
    await rig.post([alert(cluster="east")])
    await rig.settle()
    east_inc = next(i for i in await rig.incidents()
                    if i.target is not None and i.target.cluster == "east")
    assert east_inc.steps[0].status == StepStatus.SUCCEEDED, east_inc.summary
    assert restarted(east_sim)
    assert await rig.store.mutations_since(T0, "") == 1
    assert await rig.store.mutations_since(T0, "east") == 1
    status, st = await _api(rig, "GET", "/api/v1/status")
    assert status == 200
    default, east_st = _cluster(st, ""), _cluster(st, "east")
    assert (default["spent"], default["left"], default["paused"]) == (1, 0, True)
    assert default["pause"]["kind"] == "budget"
    assert default["pause"]["cluster"] == ""
    assert (east_st["spent"], east_st["left"], east_st["paused"]) == (1, 0, False)
    assert st["paused"] is True
    assert st["pause"]["kind"] == "budget"
    assert rig.engine.metrics.registry.get_sample_value("remediator_automation_paused") == 1


async def test_pause_and_resume_one_cluster(
        rig: Rig, east: tuple[Simulator, KubernetesCluster]) -> None:
    east_sim, east_cluster = east
    await rig.start(PLAYBOOK, clusters={"east": east_cluster}, console=True)
    status, body = await _api(rig, "POST", "/api/v1/pause", {"cluster": "west"})
    assert status == 400
    assert "'west' is not a cluster (known: '', 'east'" in body, body
    status, body = await _api(rig, "POST", "/api/v1/pause",
                              {"cluster": "east", "reason": "east freeze"})
    assert (status, body["cluster"], body["paused"]) == (200, "east", True)
    await rig.post([alert(cluster="east"), alert(cluster="")])
    await rig.settle()
    incs = {i.target.cluster: i for i in await rig.incidents() if i.target is not None}
    assert incs["east"].state == IncidentState.ESCALATED
    assert "automation is paused (east freeze)" in incs["east"].summary
    assert east_sim.control.writes() == []
    assert rig.sim is not None
    assert restarted(rig.sim), incs[""].summary                # the default cluster acts
    _, st = await _api(rig, "GET", "/api/v1/status")
    assert st["paused"] is False
    assert _cluster(st, "east")["pause"]["reason"] == "east freeze"
    assert rig.client is not None                          # the console's status page too
    login = await (await rig.client.get("/login")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', login)
    assert csrf is not None
    await rig.client.post("/login", data={"token": TOKEN, "csrf": csrf[1], "next": "/"})
    page = await (await rig.client.get("/status")).text()
    assert '<table class="clusters">' in page, page[:3000]
    rows = page[page.index('<table class="clusters">'):]
    assert "<b>east</b>" in rows
    assert "paused</span> east freeze" in rows
    assert "<b>default</b>" in rows
    # resuming another cluster leaves east paused; resuming east lifts it
    await _api(rig, "POST", "/api/v1/resume", {"cluster": ""})
    _, st = await _api(rig, "GET", "/api/v1/status")
    assert _cluster(st, "east")["paused"] is True
    assert rig.engine.metrics.registry.get_sample_value("remediator_automation_paused") == 1
    status, body = await _api(rig, "POST", "/api/v1/resume", {"cluster": "east"})
    assert (status, body) == (200, {"paused": False, "by": "token", "cluster": "east"})
    _, st = await _api(rig, "GET", "/api/v1/status")
    assert not any(c["paused"] for c in st["clusters"])
    assert rig.engine.metrics.registry.get_sample_value("remediator_automation_paused") == 0


async def test_the_global_kill_switch_stops_every_cluster_and_resume_lifts_all(
        rig: Rig, east: tuple[Simulator, KubernetesCluster]) -> None:
    east_sim, east_cluster = east
    await rig.start(PLAYBOOK, clusters={"east": east_cluster})
    await _api(rig, "POST", "/api/v1/pause", {"cluster": "east"})
    await _api(rig, "POST", "/api/v1/pause", {"reason": "all stop"})
    await rig.post([alert(cluster="east"), alert(cluster="")])
    await rig.settle()
    assert all("automation is paused (all stop)" in i.summary for i in await rig.incidents())
    assert rig.writes() == []
    assert east_sim.control.writes() == []
    await _api(rig, "POST", "/api/v1/resume")             # no cluster: every pause
    _, st = await _api(rig, "GET", "/api/v1/status")
    assert st["paused"] is False
    assert not any(c["paused"] for c in st["clusters"])
