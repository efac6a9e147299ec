"""Several clusters: a playbook's target.cluster (templated from a label) picks the
cluster the steps act on; locks and cooldowns are per cluster; an unknown cluster
escalates with that reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from remediator.adapters.kubernetes import KubernetesCluster
from remediator.model.incident import IncidentState, StepStatus
from remediator.simulator import Simulator
from remediator.simulator.controller import DEPLOY

from .rig import Rig, alert

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
