"""The Snapshot the analyzers read, and how each part is read out of the API's JSON.

Every part is a frozen dataclass with only what an analyzer uses, and ``ref``: the
object it came from (``Pod prod/api-7d9-x``), which a Finding cites as evidence.
The ``*_from`` functions are pure: the API's own JSON in, a part out.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from remediator.model.incident import TargetRef
from remediator.ports.cluster import KubeObject

REVISION = "deployment.kubernetes.io/revision"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"     # kubectl rollout restart (and ours)
#: template annotations that carry a ConfigMap/Secret hash (Helm's ``checksum/config``,
#: ``configHash``, ``config-hash``, ``secret-hash``, …)
CONFIG_HASH = re.compile(r"checksum|config-?hash|secret-?hash|confighash", re.IGNORECASE)
PRESSURES = ("MemoryPressure", "DiskPressure", "PIDPressure")


@dataclass(frozen=True)
class Finding:
    """One conclusion: its id (``kind:subject``, stable across runs), kind, a one-line
    summary, the objects it rests on (evidence references) and details."""

    id: str
    kind: str
    summary: str
    evidence: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "summary": self.summary,
                "evidence": list(self.evidence), "data": self.data}


@dataclass(frozen=True)
class Revision:
    """One ReplicaSet (revision) of a Deployment."""

    ref: str
    name: str
    number: int
    images: tuple[str, ...]
    config_hashes: dict[str, str]
    created: datetime | None
    replicas: int = 0
    restarted_at: str | None = None         # the template's restartedAt annotation


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    ready: bool
    restarts: int = 0
    waiting_reason: str | None = None
    waiting_message: str | None = None
    last_reason: str | None = None          # lastState.terminated.reason
    last_exit_code: int | None = None
    memory_limit: str | None = None
    previous_log_line: str | None = None    # the last line of the previous container


@dataclass(frozen=True)
class Pod:
    ref: str
    name: str
    node: str | None
    phase: str
    ready: bool
    containers: tuple[Container, ...] = ()
    scheduled: bool = True                  # the PodScheduled condition
    scheduled_reason: str | None = None
    scheduled_message: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    ref: str                 # the involved object
    type: str
    reason: str
    message: str
    count: int = 1
    last: str = ""


@dataclass(frozen=True)
class Node:
    ref: str
    name: str
    ready: bool
    ready_message: str = ""
    pressures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hpa:
    ref: str
    name: str
    min_replicas: int
    max_replicas: int
    current: int
    desired: int


@dataclass(frozen=True)
class Pdb:
    ref: str
    name: str
    disruptions_allowed: int
    current_healthy: int
    desired_healthy: int
    expected_pods: int


@dataclass(frozen=True)
class Alert:
    name: str
    starts_at: datetime | None


@dataclass(frozen=True)
class Snapshot:
    """What the analyzers look at, read at ``taken_at``."""

    target: TargetRef
    taken_at: datetime
    desired_replicas: int | None = None
    ready_replicas: int = 0
    revisions: tuple[Revision, ...] = ()
    pods: tuple[Pod, ...] = ()
    events: tuple[Event, ...] = ()
    nodes: tuple[Node, ...] = ()
    hpa: Hpa | None = None
    pdbs: tuple[Pdb, ...] = ()
    alerts: tuple[Alert, ...] = ()
    window_seconds: float = 1800.0          # "recent" for what changed
    problems: tuple[str, ...] = ()           # what could not be read (and why)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- reading the API's JSON ----------------------------------------------------------

def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def ref(obj: KubeObject) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind', '?')} {ns + '/' if ns else ''}{meta.get('name', '?')}"


def revision_from(rs: KubeObject) -> Revision:
    meta = rs.get("metadata") or {}
    template = (rs.get("spec") or {}).get("template") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    try:
        number = int((meta.get("annotations") or {}).get(REVISION, 0))
    except ValueError:
        number = 0
    return Revision(ref=ref({"kind": "ReplicaSet", **rs}), name=meta.get("name", ""),
                    number=number, images=tuple(str(c.get("image", "")) for c in containers),
                    config_hashes={k: str(v) for k, v in sorted(annotations.items())
                                   if CONFIG_HASH.search(k)},
                    created=parse_time(meta.get("creationTimestamp")),
                    replicas=int((rs.get("spec") or {}).get("replicas") or 0),
                    restarted_at=annotations.get(RESTARTED_AT))


def _container(status: KubeObject, spec: KubeObject | None) -> Container:
    state, last = status.get("state") or {}, status.get("lastState") or {}
    waiting, terminated = state.get("waiting") or {}, last.get("terminated") or {}
    limits = ((spec or {}).get("resources") or {}).get("limits") or {}
    exit_code = terminated.get("exitCode")
    return Container(name=str(status.get("name", "")), image=str(status.get("image", "")),
                     ready=bool(status.get("ready")), restarts=int(status.get("restartCount") or 0),
                     waiting_reason=waiting.get("reason"), waiting_message=waiting.get("message"),
                     last_reason=terminated.get("reason"),
                     last_exit_code=int(exit_code) if exit_code is not None else None,
                     memory_limit=limits.get("memory"))


def pod_from(pod: KubeObject, logs: dict[str, str] | None = None) -> Pod:
    """A pod; ``logs``: container name → the last line of its previous container."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    specs = {c.get("name"): c for c in spec.get("containers") or []}
    containers = []
    for cs in status.get("containerStatuses") or []:
        c = _container(cs, specs.get(cs.get("name")))
        line = (logs or {}).get(c.name)
        if line is not None:
            c = Container(**{**asdict(c), "previous_log_line": line})
        containers.append(c)
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    sched = conditions.get("PodScheduled") or {}
    ready = (conditions.get("Ready") or {}).get("status") == "True"
    return Pod(ref=ref({"kind": "Pod", **pod}), name=meta.get("name", ""),
               node=spec.get("nodeName"), phase=str(status.get("phase") or "Unknown"),
               ready=ready, containers=tuple(containers),
               scheduled=sched.get("status", "True") == "True",
               scheduled_reason=sched.get("reason"), scheduled_message=sched.get("message"),
               labels=dict(meta.get("labels") or {}))


def event_from(e: KubeObject) -> Event:
    obj = e.get("involvedObject") or {}
    where = f"{obj.get('namespace')}/" if obj.get("namespace") else ""
    return Event(ref=f"{obj.get('kind')} {where}{obj.get('name')}",
                 type=str(e.get("type") or "Normal"), reason=str(e.get("reason") or ""),
                 message=str(e.get("message") or ""), count=int(e.get("count") or 1),
                 last=str(e.get("lastTimestamp") or e.get("eventTime") or ""))


def node_from(node: KubeObject) -> Node:
    conditions = {c.get("type"): c for c in (node.get("status") or {}).get("conditions") or []}
    ready = conditions.get("Ready") or {}
    name = (node.get("metadata") or {}).get("name", "")
    return Node(ref=ref({"kind": "Node", **node}), name=name,
                ready=ready.get("status") == "True",
                ready_message=str(ready.get("message") or ready.get("reason") or ""),
                pressures=tuple(p for p in PRESSURES
                                if (conditions.get(p) or {}).get("status") == "True"))


def hpa_from(hpa: KubeObject) -> Hpa:
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    return Hpa(ref=ref({"kind": "HorizontalPodAutoscaler", **hpa}),
               name=(hpa.get("metadata") or {}).get("name", ""),
               min_replicas=int(spec.get("minReplicas") or 1),
               max_replicas=int(spec.get("maxReplicas") or 0),
               current=int(status.get("currentReplicas") or 0),
               desired=int(status.get("desiredReplicas") or 0))


def pdb_from(pdb: KubeObject) -> Pdb:
    status = pdb.get("status") or {}
    return Pdb(ref=ref({"kind": "PodDisruptionBudget", **pdb}),
               name=(pdb.get("metadata") or {}).get("name", ""),
               disruptions_allowed=int(status.get("disruptionsAllowed") or 0),
               current_healthy=int(status.get("currentHealthy") or 0),
               desired_healthy=int(status.get("desiredHealthy") or 0),
               expected_pods=int(status.get("expectedPods") or 0))


def alert_from(alert: dict[str, Any]) -> Alert:
    return Alert(name=str((alert.get("labels") or {}).get("alertname", "")),
                 starts_at=parse_time(alert.get("startsAt") or alert.get("starts_at")))


def selects(selector: KubeObject | None, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector selects ``labels`` (an empty selector selects all)."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        has = key in labels
        ok = {"In": has and labels.get(key) in values,
              "NotIn": not has or labels.get(key) not in values,
              "Exists": has, "DoesNotExist": not has}.get(op, False)
        if not ok:
            return False
    return True
