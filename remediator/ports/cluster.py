"""The cluster port: the Kubernetes calls the engine and the Kubernetes actions make.

Holds ``ClusterApi`` (a Protocol), the data it exchanges (``RolloutStatus``,
``TargetContext``; objects are the API's own JSON, ``KubeObject``) and the API's
addressing vocabulary both sides share: ``api_path`` (the REST path an Intent's
``api_calls`` show) and ``selector_string`` (the label-selector syntax the list
calls take). Not here: the client (``remediator.adapters.kubernetes``) or what
an action decides (``remediator.actions.kubernetes``).

Every method raises only ``TemporaryError`` or ``PermanentError``
(``remediator.errors``), with the underlying exception chained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from remediator.model.incident import TargetRef

# An object as the API server sends it: JSON, camelCase keys, null fields left out.
KubeObject = dict[str, Any]

# kind → resource (plural) of the workloads the actions act on
WORKLOADS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


@dataclass(frozen=True)
class RolloutStatus:
    """kubectl's rollout-status verdict: done, failed (ProgressDeadlineExceeded), or waiting."""

    done: bool
    failed: bool
    message: str


@dataclass(frozen=True)
class Eviction:
    """The answer to one Eviction: ``evicted``, ``gone`` (no such pod, or another pod by
    that name now) or ``blocked`` (429: a PodDisruptionBudget does not allow it now)."""

    outcome: str
    message: str = ""


@dataclass
class TargetContext:
    """What a human wants to see about the target: recent events and pod restarts."""

    events: list[str] = field(default_factory=list)
    # each pod: name, phase, ready, restarts, reason
    pods: list[dict[str, Any]] = field(default_factory=list)


class ClusterApi(Protocol):
    """The subset of Kubernetes that remediator uses, with kubectl's semantics.

    The engine needs ``rollout_status`` and ``describe`` (verification, context for
    humans); the Kubernetes actions read and patch workloads, scale, ReplicaSets and
    pods through the rest. A missing object is ``PermanentError`` unless the method
    says it returns None.
    """

    async def rollout_status(self, target: TargetRef) -> RolloutStatus:
        """kubectl rollout status, one evaluation (no watching)."""
        ...

    async def describe(self, target: TargetRef) -> TargetContext:
        """Recent events of the target and its pods; the pods' restarts."""
        ...

    async def read_workload(self, target: TargetRef) -> KubeObject:
        """The Deployment, StatefulSet or DaemonSet named by ``target``."""
        ...

    async def patch_workload(self, target: TargetRef, patch: KubeObject | list[Any], *,
                             content_type: str) -> KubeObject:
        """Patch it (``content_type``: strategic-merge, merge or json-patch); the result."""
        ...

    async def read_scale(self, target: TargetRef) -> int:
        """``spec.replicas`` of the target's scale subresource."""
        ...

    async def patch_scale(self, target: TargetRef, replicas: int) -> int:
        """Set the replicas through the scale subresource; the replicas it now says."""
        ...

    async def list_hpas(self, namespace: str) -> list[KubeObject]:
        """The HorizontalPodAutoscalers of ``namespace``."""
        ...

    async def list_replicasets(self, namespace: str, selector: str) -> list[KubeObject]:
        """The ReplicaSets matching ``selector`` (``selector_string`` syntax)."""
        ...

    async def read_replicaset(self, namespace: str, name: str) -> KubeObject | None:
        """The ReplicaSet, or None if it does not exist."""
        ...

    async def list_pods(self, namespace: str, selector: str) -> list[KubeObject]:
        """The pods matching ``selector`` (``selector_string`` syntax)."""
        ...

    async def read_pod(self, namespace: str, name: str) -> KubeObject | None:
        """The pod, or None if it does not exist."""
        ...

    async def delete_pod(self, namespace: str, name: str, *, uid: str | None = None,
                         grace_period_seconds: int | None = None) -> bool:
        """Delete a pod (only the one with ``uid``, if given). False if it was already gone."""
        ...

    async def list_controller_revisions(self, namespace: str,
                                        selector: str) -> list[KubeObject]:
        """The ControllerRevisions (StatefulSet and DaemonSet history) matching ``selector``."""
        ...

    async def read_node(self, name: str) -> KubeObject:
        """The Node."""
        ...

    async def list_nodes(self) -> list[KubeObject]:
        """Every Node of the cluster."""
        ...

    async def patch_node(self, name: str, patch: KubeObject) -> KubeObject:
        """Strategic-merge patch the Node (as kubectl cordon does); the result."""
        ...

    async def list_pods_on_node(self, node: str) -> list[KubeObject]:
        """The pods of every namespace bound to ``node`` (field selector spec.nodeName)."""
        ...

    async def evict_pod(self, namespace: str, name: str) -> Eviction:
        """POST the pod's eviction subresource (policy/v1 Eviction)."""
        ...

    async def list_all_pods(self, selector: str) -> list[KubeObject]:
        """The pods of every namespace matching ``selector``."""
        ...

    async def patch_pod(self, namespace: str, name: str, patch: KubeObject) -> KubeObject | None:
        """Merge-patch the pod (labels, annotations); None if it does not exist."""
        ...

    async def create_network_policy(self, namespace: str, body: KubeObject) -> bool:
        """Create the NetworkPolicy; False if one by that name exists already."""
        ...

    async def list_network_policies(self, selector: str) -> list[KubeObject]:
        """The NetworkPolicies of every namespace matching ``selector``."""
        ...

    async def delete_network_policy(self, namespace: str, name: str) -> bool:
        """Delete the NetworkPolicy; False if it was already gone."""
        ...


    async def read_pod_log(self, namespace: str, name: str, *, container: str | None = None,
                           previous: bool = False, tail_lines: int | None = None,
                           limit_bytes: int | None = None) -> str | None:
        """A container's log (``kubectl logs``): the last ``tail_lines`` lines, at most
        ``limit_bytes``; ``previous``: of its last terminated instance. None when the pod
        is gone, or has no previous instance."""
        ...

    async def object_events(self, namespace: str, kind: str, name: str) -> list[str]:
        """The events whose involvedObject is ``kind`` ``namespace/name``, oldest first,
        one line each."""
        ...


# What the isolation actions put on objects, and what the engine looks for when an
# incident closes (remediator.engine.quarantine).
INCIDENT_LABEL = "remediator.io/incident"
ISOLATED_LABEL = "remediator.io/isolated"           # on a pod taken out of its workload
QUARANTINE_LABEL = "remediator.io/quarantine"       # on a pod a NetworkPolicy cuts off
DELETE_AFTER = "remediator.io/delete-after"         # RFC 3339: an isolated pod's keep_for
MANAGED_BY = {"app.kubernetes.io/managed-by": "remediator"}


def eviction_body(namespace: str, name: str) -> KubeObject:
    """The policy/v1 Eviction kubectl drain posts."""
    return {"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace}}


def api_path(kind: str, namespace: str, name: str = "", subresource: str = "") -> str:
    """The REST path of an object, as in the Intent's ``api_calls``."""
    if kind == "Node":
        return "/".join(p for p in ("/api/v1/nodes", name, subresource) if p)
    plural = WORKLOADS.get(kind) or {"Pod": "pods", "ReplicaSet": "replicasets",
                                     "NetworkPolicy": "networkpolicies"}[kind]
    prefix = {"Pod": "/api/v1", "NetworkPolicy": "/apis/networking.k8s.io/v1"}.get(
        kind, "/apis/apps/v1")
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return "/".join(p for p in (path, name, subresource) if p)


def selector_string(selector: KubeObject | None) -> str:
    """A LabelSelector (matchLabels and matchExpressions) in the query-string syntax."""
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr["operator"], expr["key"], expr.get("values") or []
        if op in ("In", "NotIn"):
            terms.append(f"{key} {op.lower()} ({','.join(values)})")
        else:
            terms.append(key if op == "Exists" else f"!{key}")
    return ",".join(terms)
