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


def api_path(kind: str, namespace: str, name: str = "", subresource: str = "") -> str:
    """The REST path of an object, as in the Intent's ``api_calls``."""
    plural = WORKLOADS.get(kind) or {"Pod": "pods", "ReplicaSet": "replicasets"}[kind]
    prefix = "/api/v1" if kind == "Pod" else "/apis/apps/v1"
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
