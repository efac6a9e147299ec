"""Node actions through the engine: refused by the same guards (dry-run, namespace
policy), the healthy-node floor escalating in words, the journal showing the calls."""

from __future__ import annotations

from remediator.model.incident import IncidentState, StepStatus
from remediator.settings import EngineSettings
from remediator.simulator.controller import NODE

from .rig import Rig, alert

PLAYBOOK = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: node}
spec:
  match: ['alertname="KubeNodePressure"']
  target: {kind: Node, name: "{{ labels.node }}"}
  guards: %(guards)s
  steps:
    - name: cordon
      action: kubernetes.cordon
      with: {min_ready_nodes: %(floor)d}
      retries: 0
    - name: drain
      action: kubernetes.drain
      with: {min_ready_nodes: %(floor)d, timeout: 30s}
      retries: 0
  escalate:
    - action: http.post
      with: {url: "%(hook)s", json: {incident: "{{ incident.id }}"}}
"""


def playbook(rig: Rig, *, floor: int = 1, guards: str = "{}") -> str:
    return PLAYBOOK % {"floor": floor, "guards": guards, "hook": rig.hooks.url}


async def test_cordon_and_drain_through_the_engine(rig: Rig) -> None:
    await rig.start(playbook(rig))
    await rig.post([alert("KubeNodePressure", node="node-2")])
    await rig.settle()
    inc = await rig.only_incident()
    assert [s.status for s in inc.steps[:2]] == [StepStatus.SUCCEEDED] * 2, inc.steps
    assert str(inc.target) == "Node node-2"
    assert rig.sim is not None
    assert rig.sim.store.get(NODE, None, "node-2")["spec"]["unschedulable"] is True
    evicted = rig.writes("/eviction")
    assert evicted
    assert all(c["status"] == 201 for c in evicted)
    # the drain found the node cordoned already: no second cordon
    assert len(rig.writes("/api/v1/nodes/node-2")) == 1


async def test_the_floor_refuses_and_escalates_in_words(rig: Rig) -> None:
    await rig.start(playbook(rig, floor=3))
    await rig.post([alert("KubeNodePressure", node="node-1")])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    why = "refusing to cordon Node node-1: 3 of 3 nodes are Ready and schedulable, 2 would " \
          "be left, below the healthy-node floor (min_ready_nodes 3)"
    assert any(why in (s.error or "") for s in inc.steps), inc.steps
    assert rig.writes() == []
    assert rig.hooks.calls, [(s.action, s.status, s.error) for s in inc.steps]


async def test_dry_run_shows_the_calls_and_writes_nothing(rig: Rig) -> None:
    await rig.start(playbook(rig), EngineSettings(dry_run=True))
    await rig.post([alert("KubeNodePressure", node="node-3")])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.steps[0].status == StepStatus.DRY_RUN
    assert inc.steps[0].intent is not None
    assert inc.steps[0].intent["api_calls"] == [
        'PATCH /api/v1/nodes/node-3 {"spec":{"unschedulable":true}}']
    drain = inc.steps[1].intent
    assert drain is not None
    assert any(c.startswith("POST /api/v1/namespaces/") and c.endswith(
        '"kind":"Eviction","metadata":{"name":"' + c.split("/pods/")[1].split("/")[0]
        + '","namespace":"' + c.split("/namespaces/")[1].split("/")[0] + '"}}')
        for c in drain["api_calls"])
    assert rig.writes() == []


async def test_a_namespace_allow_list_refuses_a_node_target(rig: Rig) -> None:
    await rig.start(playbook(rig), EngineSettings(allow_namespaces=["prod"]))
    await rig.post([alert("KubeNodePressure", node="node-1")])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    assert "Node node-1 is cluster-scoped: acting on it reaches pods of every namespace, " \
           "beyond the namespace allow list" in inc.summary
    assert rig.writes() == []
