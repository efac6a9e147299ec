"""Nodes as targets: cordon, uncordon and drain, as kubectl does them.

``cordon`` strategic-merge patches ``{"spec":{"unschedulable":true}}`` on the Node,
``uncordon`` ``{"spec":{"unschedulable":null}}`` (kubectl's exact bodies). ``drain`` is
``kubectl drain --ignore-daemonsets``: cordon, list the node's pods (field selector
``spec.nodeName``), skip mirror and DaemonSet pods and finished ones, refuse pods no
controller recreates (unless ``force``) and pods with emptyDir (unless
``delete_emptydir_data``), then POST a policy/v1 Eviction for each; a 429 (a
PodDisruptionBudget does not allow it now) is retried on the run's clock until the
timeout, then the step fails with the budget's message. The pods to evict are the
intent's ``touches``: the engine refuses the whole drain (before cordoning) when one
is in a namespace the guards deny.

Cordon and drain keep a healthy-node floor: Ready and schedulable nodes, counted at
plan time, must not fall below ``min_ready_nodes`` (or ``min_ready_percent`` of all
nodes, rounded up) once the target is cordoned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from remediator.actions.kubernetes import _cluster, _json
from remediator.actions.params import CordonParams, DrainParams, UncordonParams, _NodeFloor
from remediator.engine.contract import ActionResult, Intent, RunContext, Touched
from remediator.errors import PermanentError
from remediator.model.names import check_dns1123_label, check_dns1123_subdomain
from remediator.ports.cluster import ClusterApi, api_path, eviction_body

MIRROR = "kubernetes.io/config.mirror"
CORDON: dict[str, Any] = {"spec": {"unschedulable": True}}
UNCORDON: dict[str, Any] = {"spec": {"unschedulable": None}}


def _node_name(ctx: RunContext, action: str) -> str:
    t = ctx.target
    if t is None or t.kind != "Node":
        raise PermanentError(f"{action} acts on a Node target")
    return _checked_node(t.name, action)


def _checked_node(name: str, action: str) -> str:
    try:
        return check_dns1123_subdomain(name, "Node name")
    except ValueError as err:
        raise PermanentError(f"{action}: refusing the target: {err}") from err


def _ready(node: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _cordoned(node: Mapping[str, Any]) -> bool:
    return bool((node.get("spec") or {}).get("unschedulable"))


def healthy(node: Mapping[str, Any]) -> bool:
    """Ready and schedulable."""
    return _ready(node) and not _cordoned(node)


async def check_floor(cluster: ClusterApi, name: str, floor: _NodeFloor, action: str) -> str:
    """Refuse (PermanentError, in words) when cordoning ``name`` would leave fewer healthy
    nodes than the floor; otherwise how the count stands."""
    nodes = await cluster.list_nodes()
    target = next((n for n in nodes if n["metadata"]["name"] == name), None)
    if target is None:
        raise PermanentError(f"{action}: Node {name} not found")
    now = sum(1 for n in nodes if healthy(n))
    after = now - 1 if healthy(target) else now
    if floor.min_ready_nodes is not None:
        minimum, how = floor.min_ready_nodes, f"min_ready_nodes {floor.min_ready_nodes}"
    else:
        percent = floor.min_ready_percent or 0
        minimum = math.ceil(percent * len(nodes) / 100)
        how = f"min_ready_percent {percent}% of {len(nodes)} nodes = {minimum}"
    if after < minimum:
        raise PermanentError(
            f"refusing to {action.rsplit('.', 1)[-1]} Node {name}: {now} of {len(nodes)} nodes "
            f"are Ready and schedulable, {after} would be left, below the healthy-node floor "
            f"({how})")
    return f"{after} of {len(nodes)} nodes healthy after, floor {minimum}"


class Cordon:
    """kubectl cordon."""

    name: ClassVar[str] = "kubernetes.cordon"
    params = CordonParams

    async def plan(self, ctx: RunContext, params: CordonParams) -> Intent:
        cluster, node = _cluster(ctx), _node_name(ctx, self.name)
        obj = await cluster.read_node(node)
        call = f"PATCH {api_path('Node', '', node)} {_json(CORDON)}"
        if _cordoned(obj):
            return Intent(action=self.name, noop=True, args={"node": node},
                          description=f"cordon Node {node}: already cordoned")
        floor = await check_floor(cluster, node, params, self.name)
        return Intent(action=self.name, args={"node": node}, api_calls=[call],
                      description=f"cordon Node {node} ({floor})")

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        node = _checked_node(str(intent.args["node"]), self.name)
        await _cluster(ctx).patch_node(node, CORDON)
        return ActionResult(summary=f"cordoned Node {node}", details={"node": node})


class Uncordon:
    """kubectl uncordon."""

    name: ClassVar[str] = "kubernetes.uncordon"
    params = UncordonParams

    async def plan(self, ctx: RunContext, params: UncordonParams) -> Intent:
        cluster, node = _cluster(ctx), _node_name(ctx, self.name)
        obj = await cluster.read_node(node)
        return Intent(action=self.name, noop=not _cordoned(obj), args={"node": node},
                      api_calls=[f"PATCH {api_path('Node', '', node)} {_json(UNCORDON)}"],
                      description=f"uncordon Node {node}"
                                  + ("" if _cordoned(obj) else ": already schedulable"))

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        node = _checked_node(str(intent.args["node"]), self.name)
        await _cluster(ctx).patch_node(node, UNCORDON)
        return ActionResult(summary=f"uncordoned Node {node}", details={"node": node})


def _controller(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((r for r in (pod.get("metadata") or {}).get("ownerReferences") or []
                 if r.get("controller")), None)


def _finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _emptydir(pod: Mapping[str, Any]) -> bool:
    return any("emptyDir" in v for v in (pod.get("spec") or {}).get("volumes") or [])


def _pod_id(pod: Mapping[str, Any]) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def classify(pods: list[dict[str, Any]], params: DrainParams) -> tuple[
        list[dict[str, Any]], list[str]]:
    """kubectl drain's pod filters: (pods to evict, skipped with why); refuses in words
    what kubectl refuses without --force / --delete-emptydir-data."""
    evict: list[dict[str, Any]] = []
    skipped: list[str] = []
    unreplicated: list[str] = []
    local: list[str] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        owner = _controller(pod)
        if meta.get("deletionTimestamp"):
            skipped.append(f"{_pod_id(pod)} (already terminating)")
            continue
        if MIRROR in (meta.get("annotations") or {}):
            skipped.append(f"{_pod_id(pod)} (mirror pod)")
            continue
        if owner is not None and owner.get("kind") == "DaemonSet":
            skipped.append(f"{_pod_id(pod)} (DaemonSet-managed)")
            continue
        if not _finished(pod):
            if owner is None and not params.force:
                unreplicated.append(_pod_id(pod))
            if _emptydir(pod) and not params.delete_emptydir_data:
                local.append(_pod_id(pod))
        evict.append(pod)
    problems = []
    if unreplicated:
        problems.append("cannot delete Pods that declare no controller (set force: true to "
                        f"override): {', '.join(unreplicated)}")
    if local:
        problems.append("cannot delete Pods with local storage (set delete_emptydir_data: "
                        f"true to override): {', '.join(local)}")
    if problems:
        raise PermanentError("; ".join(problems))
    return evict, skipped


class Drain:
    """kubectl drain --ignore-daemonsets, through the Eviction API."""

    name: ClassVar[str] = "kubernetes.drain"
    params = DrainParams

    async def plan(self, ctx: RunContext, params: DrainParams) -> Intent:
        cluster, node = _cluster(ctx), _node_name(ctx, self.name)
        obj = await cluster.read_node(node)
        calls = []
        floor = ""
        if not _cordoned(obj):
            floor = f", {await check_floor(cluster, node, params, self.name)}"
            calls.append(f"PATCH {api_path('Node', '', node)} {_json(CORDON)}")
        try:
            pods, skipped = classify(await cluster.list_pods_on_node(node), params)
        except PermanentError as err:
            raise PermanentError(f"refusing to drain Node {node}: {err}") from err
        for pod in pods:
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            calls.append(f"POST {api_path('Pod', ns, name, 'eviction')} "
                         f"{_json(eviction_body(ns, name))}")
        names = ", ".join(_pod_id(p) for p in pods) or "no pods"
        return Intent(
            action=self.name, noop=_cordoned(obj) and not pods, api_calls=calls,
            description=f"drain Node {node}: evict {names}"
                        + (f" (skipping {', '.join(skipped)})" if skipped else "") + floor,
            touches=[Touched(kind="Pod", namespace=p["metadata"]["namespace"],
                             name=p["metadata"]["name"]) for p in pods],
            args={"node": node, "cordon": not _cordoned(obj), "skipped": skipped,
                  "timeout": params.timeout, "retry_interval": params.retry_interval,
                  "pods": [{"namespace": p["metadata"]["namespace"],
                            "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}
                           for p in pods]})

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        cluster = _cluster(ctx)
        node = _checked_node(str(intent.args["node"]), self.name)
        if intent.args.get("cordon"):
            await cluster.patch_node(node, CORDON)
        deadline = ctx.clock.now() + timedelta(seconds=float(intent.args["timeout"]))
        interval = float(intent.args["retry_interval"])
        evicted: list[str] = []
        gone: list[str] = []
        for p in intent.args["pods"]:
            ns = check_dns1123_label(str(p["namespace"]), "namespace")
            name = check_dns1123_subdomain(str(p["name"]), "pod name")
            if await self._evict(ctx, cluster, (ns, name, str(p["uid"])), deadline, interval,
                                 node):
                evicted.append(f"{ns}/{name}")
            else:
                gone.append(f"{ns}/{name}")
        summary = f"drained Node {node}: evicted {', '.join(evicted) or 'no pods'}"
        if gone:
            summary += f" ({', '.join(gone)} already gone)"
        return ActionResult(summary=summary, details={"node": node, "evicted": evicted,
                                                      "already_gone": gone})

    async def _evict(self, ctx: RunContext, cluster: ClusterApi, pod_id: tuple[str, str, str],
                     deadline: datetime, interval: float, node: str) -> bool:
        """Evict the pod the intent names (by uid, so a replay never evicts its successor);
        False when it is already gone. A 429 is retried every ``interval`` until
        ``deadline``."""
        ns, name, uid = pod_id
        wait = ctx.wait or ctx.clock.sleep
        while True:
            pod = await cluster.read_pod(ns, name)
            if pod is None or pod["metadata"].get("uid") != uid:
                return False
            answer = await cluster.evict_pod(ns, name)
            if answer.outcome != "blocked":
                return answer.outcome == "evicted"
            left = (deadline - ctx.clock.now()).total_seconds()
            if left <= 0:
                raise PermanentError(
                    f"drain of Node {node} timed out: a PodDisruptionBudget kept pod "
                    f"{ns}/{name} from being evicted: {answer.message}")
            await wait(min(interval, left))
