"""Fault isolation: ``kubernetes.isolate_pod`` and ``kubernetes.network_isolate``.

isolate_pod merge-patches the pod's labels: the workload selector's keys and
``pod-template-hash`` are removed, so the ReplicaSet releases the pod (and starts a
replacement) and Services selecting on those labels stop sending it traffic; it keeps
running for debugging. It is marked ``remediator.io/isolated=<workload>``,
``remediator.io/incident=<id>`` and annotated with the labels it lost and
``remediator.io/delete-after`` (isolation time + ``keep_for``). The engine deletes it
once the incident has closed and that time has passed (``engine/quarantine.py``).

network_isolate creates a NetworkPolicy selecting ``remediator.io/quarantine=<hash>``
with ``policyTypes: [Ingress, Egress]`` and no rules (deny all), then puts that label
on the pod; the engine deletes the policy and the label when the incident closes.
Only a CNI that enforces NetworkPolicy makes this a quarantine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, timedelta
from typing import Any, ClassVar

from remediator.actions.kubernetes import (
    HASH_LABEL,
    DeletePod,
    _cluster,
    _intent_target,
    _json,
    _ready,
    _target,
    _where,
    minimum_available,
)
from remediator.actions.params import ISOLATE_STATEFULSET, IsolatePodParams, NetworkIsolateParams
from remediator.engine.contract import ActionResult, Intent, RunContext
from remediator.errors import PermanentError
from remediator.model.incident import TargetRef
from remediator.model.names import check_dns1123_subdomain, check_label_value
from remediator.ports.cluster import (
    DELETE_AFTER,
    INCIDENT_LABEL,
    ISOLATED_LABEL,
    MANAGED_BY,
    QUARANTINE_LABEL,
    ClusterApi,
    KubeObject,
    api_path,
)

ORIGINAL_LABELS = "remediator.io/original-labels"
ISOLATED_FROM = "remediator.io/isolated-from"


def _pod_name(ctx: RunContext, given: str | None, action: str) -> str:
    name = given
    if name is None and ctx.target is not None and ctx.target.kind == "Pod":
        name = ctx.target.name
    if name is None:
        labels = (ctx.alerts[0].get("labels") or {}) if ctx.alerts else {}
        name = labels.get("pod")
        if not name:
            raise PermanentError(f"{action}: no pod given and the alert has no 'pod' label")
    try:
        return check_dns1123_subdomain(name, "pod name")
    except ValueError as err:
        raise PermanentError(f"{action}: refusing the pod: {err}") from err


async def _owned_pod(cluster: ClusterApi, t: TargetRef, name: str,
                     owner: KubeObject | None, *, isolated_as: str = "") -> KubeObject | None:
    """The pod, checked to belong to the target (or to be isolated from it already)."""
    pod = await cluster.read_pod(t.namespace, name)
    if pod is None:
        return None
    if isolated_as and (pod["metadata"].get("labels") or {}).get(ISOLATED_LABEL) == isolated_as:
        return pod
    belongs = await DeletePod()._ownership(cluster, t, owner)
    if not await belongs(pod):
        raise PermanentError(f"refusing to isolate pod {t.namespace}/{name}: it does not "
                             f"belong to {t}")
    return pod


def _selector_keys(owner: Mapping[str, Any]) -> set[str]:
    selector = (owner.get("spec") or {}).get("selector") or {}
    keys = set(selector.get("matchLabels") or {})
    keys |= {e["key"] for e in selector.get("matchExpressions") or [] if e.get("key")}
    return keys | {HASH_LABEL}


def _label_value(value: str, what: str, action: str) -> str:
    try:
        return check_label_value(value, what)
    except ValueError as err:
        raise PermanentError(f"{action}: {err}") from err


class IsolatePod:
    """Relabel the pod out of its Deployment and Services; delete it later."""

    name: ClassVar[str] = "kubernetes.isolate_pod"
    params = IsolatePodParams
    KINDS = ("Deployment",)

    async def plan(self, ctx: RunContext, params: IsolatePodParams) -> Intent:
        if ctx.target is not None and ctx.target.kind == "StatefulSet":
            raise PermanentError(f"{self.name} cannot act on a StatefulSet: "
                                 f"{ISOLATE_STATEFULSET}")
        cluster, t = _cluster(ctx), _target(ctx, self.KINDS, self.name)
        mark = _label_value(t.name, "the workload name as a label value", self.name)
        owner = await cluster.read_workload(t)
        name = _pod_name(ctx, params.pod, self.name)
        pod = await _owned_pod(cluster, t, name, owner, isolated_as=mark)
        where = {**_where(t), "pod": name}
        if pod is None or ISOLATED_LABEL in (pod["metadata"].get("labels") or {}):
            return Intent(action=self.name, noop=True, args=where,
                          description=f"isolate pod {t.namespace}/{name} of {t}: "
                                      + ("already gone" if pod is None else "already isolated"))
        isolated = await cluster.list_pods(t.namespace, f"{ISOLATED_LABEL}={mark}")
        if len(isolated) >= params.max_isolated:
            raise PermanentError(
                f"refusing to isolate pod {t.namespace}/{name}: {len(isolated)} pod(s) of {t} "
                f"are isolated already ({', '.join(p['metadata']['name'] for p in isolated)}),"
                f" max_isolated is {params.max_isolated}")
        available, minimum = minimum_available(owner)
        if _ready(pod) and available - 1 < minimum:
            raise PermanentError(
                f"refusing to isolate ready pod {t.namespace}/{name}: {available} available "
                f"pod(s) of {t} would fall below the minimum of {minimum} "
                "(replicas − maxUnavailable)")
        labels = pod["metadata"].get("labels") or {}
        dropped = {k: v for k, v in labels.items() if k in _selector_keys(owner)}
        after = (ctx.clock.now() + timedelta(seconds=params.keep_for)).astimezone(UTC)
        delete_after = after.strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"metadata": {
            "labels": {**dict.fromkeys(sorted(dropped)), ISOLATED_LABEL: mark,
                       INCIDENT_LABEL: ctx.incident_id},
            "annotations": {ISOLATED_FROM: str(t), DELETE_AFTER: delete_after,
                            ORIGINAL_LABELS: _json(dropped)}}}
        return Intent(
            action=self.name,
            description=f"isolate pod {t.namespace}/{name} from {t} (drop labels "
                        f"{', '.join(sorted(dropped))}; delete after the incident closes, "
                        f"not before {delete_after})",
            args={**where, "uid": pod["metadata"]["uid"], "patch": patch},
            api_calls=[f"PATCH {api_path('Pod', t.namespace, name)} {_json(patch)}"])

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        cluster, t = _cluster(ctx), _intent_target(intent, self.KINDS)
        name = check_dns1123_subdomain(str(intent.args["pod"]), "pod name")
        pod = await cluster.read_pod(t.namespace, name)
        if pod is None or pod["metadata"].get("uid") != intent.args["uid"]:
            return ActionResult(summary=f"pod {t.namespace}/{name} is gone: nothing to isolate",
                                details={"pod": name, "skipped": True})
        if ISOLATED_LABEL not in (pod["metadata"].get("labels") or {}):
            await cluster.patch_pod(t.namespace, name, intent.args["patch"])
        return ActionResult(summary=f"isolated pod {t.namespace}/{name} from {t}",
                            details={"pod": name, "delete_after": intent.args["patch"][
                                "metadata"]["annotations"][DELETE_AFTER]})


def quarantine_value(pod: Mapping[str, Any]) -> str:
    """The pod's quarantine label value: a hash of its uid (unique, a valid label)."""
    return "q" + hashlib.sha256(str(pod["metadata"]["uid"]).encode()).hexdigest()[:16]


def network_policy(namespace: str, pod: str, value: str, incident: str) -> KubeObject:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"remediator-quarantine-{value}", "namespace": namespace,
                         "labels": {**MANAGED_BY, INCIDENT_LABEL: incident,
                                    QUARANTINE_LABEL: value},
                         "annotations": {"remediator.io/pod": pod}},
            "spec": {"podSelector": {"matchLabels": {QUARANTINE_LABEL: value}},
                     "policyTypes": ["Ingress", "Egress"]}}


class NetworkIsolate:
    """A deny-all NetworkPolicy for the pod, until the incident closes."""

    name: ClassVar[str] = "kubernetes.network_isolate"
    params = NetworkIsolateParams
    KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Pod")

    async def plan(self, ctx: RunContext, params: NetworkIsolateParams) -> Intent:
        cluster, t = _cluster(ctx), _target(ctx, self.KINDS, self.name)
        _label_value(ctx.incident_id, "the incident id as a label value", self.name)
        owner = None if t.kind == "Pod" else await cluster.read_workload(t)
        name = _pod_name(ctx, params.pod, self.name)
        pod = await _owned_pod(cluster, t, name, owner)
        if pod is None:
            return Intent(action=self.name, noop=True, args={**_where(t), "pod": name},
                          description=f"network-isolate pod {t.namespace}/{name}: already gone")
        value = quarantine_value(pod)
        policy = network_policy(t.namespace, name, value, ctx.incident_id)
        label = {"metadata": {"labels": {QUARANTINE_LABEL: value}}}
        done = (pod["metadata"].get("labels") or {}).get(QUARANTINE_LABEL) == value
        return Intent(
            action=self.name, noop=done,
            description=f"network-isolate pod {t.namespace}/{name} of {t}: NetworkPolicy "
                        f"{policy['metadata']['name']} denies all ingress and egress"
                        + (" (already)" if done else ""),
            args={**_where(t), "pod": name, "uid": pod["metadata"]["uid"], "policy": policy,
                  "label": label},
            api_calls=[f"POST {api_path('NetworkPolicy', t.namespace)} {_json(policy)}",
                       f"PATCH {api_path('Pod', t.namespace, name)} {_json(label)}"])

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        cluster, t = _cluster(ctx), _intent_target(intent, self.KINDS)
        name = check_dns1123_subdomain(str(intent.args["pod"]), "pod name")
        policy = intent.args["policy"]
        pod = await cluster.read_pod(t.namespace, name)
        if pod is None or pod["metadata"].get("uid") != intent.args["uid"]:
            return ActionResult(summary=f"pod {t.namespace}/{name} is gone: nothing to isolate",
                                details={"pod": name, "skipped": True})
        created = await cluster.create_network_policy(t.namespace, policy)
        await cluster.patch_pod(t.namespace, name, intent.args["label"])
        return ActionResult(summary=f"network-isolated pod {t.namespace}/{name} "
                                    f"(NetworkPolicy {policy['metadata']['name']})",
                            details={"pod": name, "policy": policy["metadata"]["name"],
                                     "created": created})

