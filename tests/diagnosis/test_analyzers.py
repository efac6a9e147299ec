"""Each analyzer, table-driven on hand-built snapshots (pure functions: no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remediator.diagnosis import analyzers as a
from remediator.diagnosis.snapshot import (
    Alert,
    Container,
    Event,
    Hpa,
    Node,
    Pdb,
    Pod,
    Revision,
    Snapshot,
)
from remediator.model.findings import FINDING_KINDS
from remediator.model.incident import TargetRef

T0 = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)
TARGET = TargetRef(kind="Deployment", namespace="prod", name="api")


def rev(n: int, image: str, *, ago: float, hashes: dict[str, str] | None = None,
        restarted: str | None = None) -> Revision:
    return Revision(ref=f"ReplicaSet prod/api-{n}", name=f"api-{n}", number=n,
                    images=(image,), config_hashes=hashes or {},
                    created=T0 - timedelta(seconds=ago), restarted_at=restarted)


def pod(name: str = "api-1", *, phase: str = "Running", ready: bool = False, node: str = "n1",
        scheduled: bool = True, message: str | None = None, **container: object) -> Pod:
    c = Container(name="api", image=str(container.pop("image", "example/api:1.3.0")),
                  ready=ready, **container)  # type: ignore[arg-type]
    return Pod(ref=f"Pod prod/{name}", name=name, node=node, phase=phase, ready=ready,
               containers=() if phase == "Pending" and not scheduled else (c,),
               scheduled=scheduled, scheduled_reason=None if scheduled else "Unschedulable",
               scheduled_message=message)


def snap(**kw: object) -> Snapshot:
    kw.setdefault("alerts", (Alert("HighErrorRate", T0),))
    return Snapshot(target=TARGET, taken_at=T0 + timedelta(minutes=5), **kw)  # type: ignore[arg-type]


CASES = [
    # what changed
    ("rollout 2m before the alert", a.recent_rollout,
     snap(revisions=(rev(2, "example/api:1.2.0", ago=86400), rev(3, "example/api:1.3.0", ago=120))),
     ["recent_rollout:api-3"],
     "rollout of api: image example/api:1.2.0 → example/api:1.3.0 (revision 2 → 3), 2m "
     "before the first alert (HighErrorRate)"),
    ("a restart after the rollout is not the change", a.recent_rollout,
     snap(revisions=(rev(2, "a:1", ago=86400), rev(3, "a:2", ago=300),
                     rev(4, "a:2", ago=30, restarted="2026-08-01T09:59:30Z"))),
     ["recent_rollout:api-3"], "image a:1 → a:2 (revision 2 → 3), 5m"),
    ("a restart alone is not a rollout", a.recent_rollout,
     snap(revisions=(rev(2, "a:1", ago=86400), rev(3, "a:1", ago=60, restarted="x"))), [], None),
    ("rollout an hour before: not recent", a.recent_rollout,
     snap(revisions=(rev(2, "a:1", ago=86400), rev(3, "a:2", ago=3600))), [], None),
    ("rollout after the alert: not a cause", a.recent_rollout,
     snap(revisions=(rev(2, "a:1", ago=86400), rev(3, "a:2", ago=-60))), [], None),
    ("config hash change", a.config_changed,
     snap(revisions=(rev(2, "a:1", ago=86400, hashes={"checksum/config": "aaa"}),
                     rev(3, "a:1", ago=300, hashes={"checksum/config": "bbb"}))),
     ["config_changed:api-3"], "config of api changed: checksum/config aaa → bbb"),
    ("same config: nothing", a.config_changed,
     snap(revisions=(rev(2, "a:1", ago=86400, hashes={"checksum/config": "aaa"}),
                     rev(3, "a:2", ago=300, hashes={"checksum/config": "aaa"}))), [], None),
    # pods
    ("OOMKilled names the limit", a.oom_killed,
     snap(pods=(pod(last_reason="OOMKilled", last_exit_code=137, memory_limit="256Mi",
                    restarts=4, waiting_reason="CrashLoopBackOff"),)),
     ["oom_killed:api-1/api"], "was OOMKilled (memory limit 256Mi; 4 restarts)"),
    ("crash loop: exit code and last log line", a.crash_loop,
     snap(pods=(pod(waiting_reason="CrashLoopBackOff", last_reason="Error", last_exit_code=3,
                    previous_log_line="panic: DATABASE_URL not set", restarts=7),)),
     ["crash_loop:api-1/api"],
     "exit code 3 (Error), 7 restarts; last log line: 'panic: DATABASE_URL not set'"),
    ("image pull: the image", a.image_pull_failed,
     snap(pods=(pod(phase="Pending", waiting_reason="ImagePullBackOff", image="ex/api:9"),)),
     ["image_pull_failed:api-1/api"], "cannot pull image ex/api:9 (ImagePullBackOff)"),
    ("running, not ready: readiness", a.readiness_failing,
     snap(pods=(pod(),), events=(Event("Pod prod/api-1", "Warning", "Unhealthy",
                                       "Readiness probe failed: HTTP probe failed with "
                                       "statuscode: 503"),)),
     ["readiness_failing:api-1"], "Readiness probe failed"),
    ("crash loop is not also readiness", a.readiness_failing,
     snap(pods=(pod(waiting_reason="CrashLoopBackOff"),)), [], None),
    ("ready pod: nothing", a.readiness_failing, snap(pods=(pod(ready=True),)), [], None),
    ("pending with the scheduler's reason", a.pod_pending,
     snap(pods=(pod(phase="Pending", scheduled=False, node="",
                    message="0/3 nodes are available: 3 Insufficient memory."),)),
     ["pod_pending:api-1"], "Unschedulable: 0/3 nodes are available: 3 Insufficient memory."),
    # nodes
    ("NotReady node with the target's pods", a.node_not_ready,
     snap(pods=(pod(node="n1"), pod("api-2", node="n2")),
          nodes=(Node("Node n1", "n1", ready=False, ready_message="kubelet stopped posting"),)),
     ["node_not_ready:n1"], "target pods on it: api-1"),
    ("NotReady node without the target's pods: not ours", a.node_not_ready,
     snap(pods=(pod(node="n2"),), nodes=(Node("Node n1", "n1", ready=False),)), [], None),
    ("memory pressure", a.node_pressure,
     snap(pods=(pod(node="n1"),), nodes=(Node("Node n1", "n1", True,
                                              pressures=("MemoryPressure",)),)),
     ["node_pressure:n1"], "has MemoryPressure"),
    # capacity
    ("HPA at max", a.hpa_at_max,
     snap(hpa=Hpa("HorizontalPodAutoscaler prod/api", "api", 2, 10, 10, 10)),
     ["hpa_at_max:api"], "10 of maxReplicas 10"),
    ("HPA with room", a.hpa_at_max,
     snap(hpa=Hpa("HorizontalPodAutoscaler prod/api", "api", 2, 10, 4, 4)), [], None),
    ("PDB blocking", a.pdb_blocking,
     snap(pdbs=(Pdb("PodDisruptionBudget prod/api", "api", 0, 2, 2, 3),)),
     ["pdb_blocking:api"], "allows no disruption (2 healthy, 2 required)"),
    ("PDB with room", a.pdb_blocking,
     snap(pdbs=(Pdb("PodDisruptionBudget prod/api", "api", 1, 3, 2, 3),)), [], None),
    ("replicas below desired", a.replicas_below_desired,
     snap(desired_replicas=3, ready_replicas=1),
     ["replicas_below_desired:api"], "has 1 of 3 replicas ready"),
    ("replicas all ready", a.replicas_below_desired,
     snap(desired_replicas=3, ready_replicas=3), [], None),
]


@pytest.mark.parametrize(("name", "analyzer", "snapshot", "ids", "says"), CASES,
                         ids=[c[0] for c in CASES])
def test_analyzer(name: str, analyzer: a.Analyzer, snapshot: Snapshot, ids: list[str],
                  says: str | None) -> None:
    found = analyzer(snapshot)
    assert [f.id for f in found] == ids
    for f in found:
        assert f.kind in FINDING_KINDS
        assert f.evidence, "every finding cites the objects it rests on"
    if says is not None:
        assert says in found[0].summary


def test_every_kind_has_an_analyzer_case() -> None:
    kinds = {i.split(":")[0] for c in CASES for i in c[3]}
    assert kinds == set(FINDING_KINDS)


def test_analyze_runs_all_and_caps_each_kind() -> None:
    pods = tuple(pod(f"api-{i}", waiting_reason="CrashLoopBackOff", last_exit_code=1)
                 for i in range(20))
    found = a.analyze(snap(pods=pods, desired_replicas=20, ready_replicas=0))
    assert [f.kind for f in found].count("crash_loop") == a.PER_KIND
    assert found[-1].kind == "replicas_below_desired"
