"""A drain never evicts pods in namespaces the guards deny: the whole step is refused
before anything changes, and the journal names the namespace and the pod."""

from __future__ import annotations

import pytest

from remediator.model.incident import IncidentState, StepStatus
from remediator.settings import EngineSettings
from remediator.simulator import Simulator
from remediator.simulator.controller import DS, NODE, POD
from remediator.simulator.seed import DeploymentSeed, Seed, WorkloadSeed

from .rig import Rig, alert

PLAYBOOK = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: node}
spec:
  match: ['alertname="KubeNodePressure"']
  target: {kind: Node, name: "{{ labels.node }}"}
  steps:
    - name: drain
      action: kubernetes.drain
      with: {min_ready_nodes: 1, timeout: 30s}
      retries: 0
  escalate:
    - action: http.post
      with: {url: "%(hook)s", json: {incident: "{{ incident.id }}"}}
"""


@pytest.fixture
def seed() -> Seed:
    return Seed(namespaces=["prod", "kube-system"], deployments=[
        DeploymentSeed(namespace="prod", name="api", replicas=3, image="example/api:1"),
        DeploymentSeed(namespace="kube-system", name="coredns", replicas=1,
                       image="coredns:1.11")],
        daemonsets=[WorkloadSeed(namespace="kube-system", name="kube-proxy",
                                 image="kube-proxy:1.30")])


def pods_on(sim: Simulator, node: str, namespace: str) -> list[str]:
    return [p["metadata"]["name"] for p in sim.store.list(POD, namespace)
            if p["spec"].get("nodeName") == node]


def add_daemon_pods(sim: Simulator) -> None:
    """kube-proxy's pod on each node (the simulator's DaemonSets have no pods)."""
    ds = sim.store.get(DS, "kube-system", "kube-proxy")
    for node in sim.store.list(NODE):
        name = node["metadata"]["name"]
        sim.store.create(POD, "kube-system", {
            "metadata": {"name": f"kube-proxy-{name}", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-proxy",
                 "uid": ds["metadata"]["uid"], "controller": True}]},
            "spec": {"nodeName": name, "containers": [{"name": "c", "image": "x:1"}]}})
    sim.controller.reconcile()


def coredns_node(sim: Simulator) -> tuple[str, str]:
    [pod] = [p for p in sim.store.list(POD, "kube-system")
             if p["metadata"]["name"].startswith("coredns-")]
    return pod["spec"]["nodeName"], pod["metadata"]["name"]


async def test_a_drain_reaching_a_denied_namespace_is_refused(rig: Rig) -> None:
    assert rig.sim is not None
    await rig.start(PLAYBOOK % {"hook": rig.hooks.url})      # kube-system denied by default
    add_daemon_pods(rig.sim)
    node, coredns = coredns_node(rig.sim)
    await rig.post([alert("KubeNodePressure", node=node)])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    step = inc.steps[0]
    assert step.status == StepStatus.SKIPPED
    assert step.intent is None                               # never journaled as intended
    why = (f"kubernetes.drain would change Pod kube-system/{coredns} (namespace "
           "'kube-system' is on the deny list): the namespace policy forbids it, nothing "
           "was done")
    assert step.error == why
    [guard] = [e for e in inc.timeline if e.kind == "guard"]
    assert (guard.data["guard"], guard.data["namespace"], guard.data["pod"]) == \
        ("namespace", "kube-system", coredns)
    assert guard.data["objects"] == [f"Pod kube-system/{coredns}"]
    assert why in guard.message
    assert rig.writes() == []                  # not cordoned, nothing evicted
    assert rig.sim.store.get(NODE, None, node)["spec"].get("unschedulable") is not True
    assert coredns in pods_on(rig.sim, node, "kube-system")
    assert len(rig.hooks.calls) == 1           # escalated to humans


async def test_a_drain_without_denied_pods_goes_ahead(rig: Rig) -> None:
    assert rig.sim is not None
    await rig.start(PLAYBOOK % {"hook": rig.hooks.url})
    add_daemon_pods(rig.sim)
    busy, _ = coredns_node(rig.sim)
    node = next(n["metadata"]["name"] for n in rig.sim.store.list(NODE)
                if n["metadata"]["name"] != busy)
    proxy = pods_on(rig.sim, node, "kube-system")
    assert proxy == [f"kube-proxy-{node}"]     # a DaemonSet pod: skipped, not refused
    await rig.post([alert("KubeNodePressure", node=node)])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.steps[0].status == StepStatus.SUCCEEDED, inc.steps[0]
    evicted = rig.writes("/eviction")
    assert evicted
    assert all("/namespaces/prod/" in c["path"] for c in evicted)
    assert pods_on(rig.sim, node, "kube-system") == proxy
    assert f"skipping kube-system/kube-proxy-{node} (DaemonSet-managed)" in \
        (inc.steps[0].intent or {})["description"]


async def test_the_deny_list_is_the_setting(rig: Rig) -> None:
    """With kube-system off the deny list, the same drain evicts coredns."""
    assert rig.sim is not None
    await rig.start(PLAYBOOK % {"hook": rig.hooks.url}, EngineSettings(deny_namespaces=[]))
    node, coredns = coredns_node(rig.sim)
    await rig.post([alert("KubeNodePressure", node=node)])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.steps[0].status == StepStatus.SUCCEEDED, inc.steps[0]
    assert rig.writes(f"/namespaces/kube-system/pods/{coredns}/eviction")
