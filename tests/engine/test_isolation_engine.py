"""network_isolate through the engine: the quarantine holds while the incident is open and
is lifted when it closes."""

from __future__ import annotations

from remediator.model.incident import IncidentState
from remediator.simulator.controller import POD
from remediator.simulator.store import by_kind

from .rig import Rig, alert, resolved

PLAYBOOK = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: quarantine}
spec:
  match: ['alertname="SuspiciousTraffic"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
  steps:
    - name: cut it off
      action: kubernetes.network_isolate
      verify: {alert_resolved: true, timeout: 1h, interval: 30s}
"""


async def test_the_quarantine_is_lifted_when_the_incident_closes(rig: Rig) -> None:
    assert rig.sim is not None
    pod = sorted(p["metadata"]["name"] for p in rig.sim.store.list(POD, "prod",
                                                                   labels="app=api"))[0]
    await rig.start(PLAYBOOK)
    firing = alert("SuspiciousTraffic", pod=pod)
    await rig.post([firing])
    await rig.settle()
    inc = await rig.only_incident()
    # (the fake clock runs the hour of verification out: escalated, still open)
    assert inc.state == IncidentState.ESCALATED
    assert inc.steps[0].intent is not None
    [policy] = rig.sim.store.list(by_kind("NetworkPolicy"), "prod")
    assert policy["metadata"]["labels"]["remediator.io/incident"] == inc.id
    assert "remediator.io/quarantine" in rig.sim.store.get(POD, "prod", pod)["metadata"]["labels"]
    await rig.post([resolved(firing)])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state.closed
    assert rig.sim.store.list(by_kind("NetworkPolicy"), "prod") == []
    assert "remediator.io/quarantine" not in rig.sim.store.get(POD, "prod", pod)["metadata"][
        "labels"]
