"""Builds a ``Snapshot`` of a target through the cluster ports (read-only).

    target ─▶ workload (desired/ready replicas) ─▶ its ReplicaSets (revisions) and pods
      ─▶ for the unhealthy pods: their events and the previous container's last log line
      ─▶ the nodes the pods run on, the target's HPA, the namespace's PDBs that select it

Each read that fails is named in ``Snapshot.problems`` and the rest still collected:
a diagnosis with a hole says where the hole is. With no ``ClusterInspector``, events,
nodes, PDBs and logs are left out (and that is said too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from remediator.diagnosis import snapshot as s
from remediator.errors import PermanentError, TemporaryError
from remediator.model.incident import TargetRef
from remediator.ports.cluster import WORKLOADS, ClusterApi, KubeObject, selector_string
from remediator.ports.inspect import ClusterInspector

T = TypeVar("T")
#: bounds on the extra reads per snapshot (a 300-pod Deployment costs the same as a 5-pod one)
MAX_POD_DETAILS = 5
MAX_NODES = 10


class _Reader:
    def __init__(self) -> None:
        self.problems: list[str] = []

    async def read(self, what: str, call: Awaitable[T], default: T) -> T:
        try:
            return await call
        except (TemporaryError, PermanentError) as err:
            self.problems.append(f"could not read {what}: {err}")
            return default


def _unhealthy(pod: KubeObject) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return True
    return any(not cs.get("ready") or cs.get("restartCount") for cs in
               status.get("containerStatuses") or [])


def _owned_by(obj: KubeObject, uid: str) -> bool:
    return any(r.get("uid") == uid for r in obj.get("metadata", {}).get("ownerReferences") or [])


async def _workload(cluster: ClusterApi, target: TargetRef,
                    reader: _Reader) -> tuple[KubeObject | None, list[KubeObject],
                                              list[KubeObject]]:
    """The workload, its ReplicaSets (Deployments only) and its pods."""
    if target.kind == "Pod":
        pod = await reader.read(f"Pod {target.namespace}/{target.name}",
                                cluster.read_pod(target.namespace, target.name), None)
        return None, [], [pod] if pod else []
    if target.kind not in WORKLOADS:
        reader.problems.append(f"cannot diagnose a {target.kind}")
        return None, [], []
    obj = await reader.read(str(target), cluster.read_workload(target), None)
    if obj is None:
        return None, [], []
    selector = selector_string((obj.get("spec") or {}).get("selector"))
    uid = obj.get("metadata", {}).get("uid", "")
    pods_call = reader.read(f"the pods of {target}",
                            cluster.list_pods(target.namespace, selector), [])
    if target.kind != "Deployment":
        return obj, [], await pods_call
    rss, pods = await asyncio.gather(
        reader.read(f"the ReplicaSets of {target}",
                    cluster.list_replicasets(target.namespace, selector), []), pods_call)
    return obj, [r for r in rss if not uid or _owned_by(r, uid)], pods


def _replicas(obj: KubeObject | None, pods: list[KubeObject]) -> tuple[int | None, int]:
    if obj is None:
        return None, sum(1 for p in pods if s.pod_from(p).ready)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if obj.get("kind") == "DaemonSet":
        return int(status.get("desiredNumberScheduled") or 0), int(status.get("numberReady") or 0)
    return int(spec.get("replicas", 1)), int(status.get("readyReplicas") or 0)


async def _logs(inspector: ClusterInspector, ns: str, pod: KubeObject,
                reader: _Reader) -> dict[str, str]:
    out: dict[str, str] = {}
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if not (cs.get("lastState") or {}).get("terminated"):
            continue
        name = pod["metadata"]["name"]
        line = await reader.read(f"the previous log of {name}/{cs.get('name')}",
                                 inspector.previous_log_tail(ns, name, str(cs.get("name"))),
                                 None)
        if line:
            out[str(cs.get("name"))] = line.rstrip("\n").rsplit("\n", 1)[-1]
    return out


async def _pod_details(inspector: ClusterInspector, target: TargetRef, pods: list[KubeObject],
                       reader: _Reader) -> tuple[dict[str, dict[str, str]], list[KubeObject]]:
    """Previous-log lines (pod → container → line) and events of the target and of its
    first few unhealthy pods."""
    ns = target.namespace
    sick = [p for p in pods if _unhealthy(p)][:MAX_POD_DETAILS]
    names = [(target.kind, target.name)] + [("Pod", p["metadata"]["name"]) for p in sick]
    logs, events = await asyncio.gather(
        asyncio.gather(*(_logs(inspector, ns, p, reader) for p in sick)),
        asyncio.gather(*(reader.read(f"the events of {kind} {ns}/{name}",
                                     inspector.list_events(ns, kind, name), [])
                         for kind, name in names)))
    return ({p["metadata"]["name"]: lines for p, lines in zip(sick, logs, strict=True)},
            [e for group in events for e in group])


async def _around(cluster: ClusterApi, inspector: ClusterInspector | None, target: TargetRef,
                  pods: list[KubeObject], reader: _Reader) -> dict[str, Any]:
    """The HPA that scales the target, nodes of its pods, PDBs selecting them."""
    hpas_call = reader.read(f"the HPAs of {target.namespace}",
                            cluster.list_hpas(target.namespace), [])
    nodes: list[KubeObject | None] = []
    pdbs: list[KubeObject] = []
    if inspector is None:
        reader.problems.append("events, nodes, PDBs and logs not read: no inspector")
        hpas = await hpas_call
    else:
        names = sorted({p["spec"]["nodeName"] for p in pods
                        if (p.get("spec") or {}).get("nodeName")})[:MAX_NODES]
        hpas, found, pdbs = await asyncio.gather(
            hpas_call,
            asyncio.gather(*(reader.read(f"Node {n}", inspector.read_node(n), None)
                             for n in names)),
            reader.read(f"the PodDisruptionBudgets of {target.namespace}",
                        inspector.list_pdbs(target.namespace), []))
        nodes = list(found)
    hpa = next((h for h in hpas if ((h.get("spec") or {}).get("scaleTargetRef") or {})
                .get("name") == target.name and (h["spec"]["scaleTargetRef"].get("kind")
                                                  == target.kind)), None)
    labels = [(p.get("metadata") or {}).get("labels") or {} for p in pods]
    pdbs = [b for b in pdbs if any(s.selects((b.get("spec") or {}).get("selector"), lb)
                                   for lb in labels)]
    return {"hpa": hpa, "nodes": [n for n in nodes if n], "pdbs": pdbs}


async def collect(cluster: ClusterApi, inspector: ClusterInspector | None, target: TargetRef,
                  alerts: Sequence[dict[str, Any]], now: datetime, *,
                  window_seconds: float = 1800.0) -> s.Snapshot:
    """A snapshot of ``target`` as the cluster shows it now (read-only). When the target
    itself cannot be read there is nothing around it to read: the snapshot says why."""
    reader = _Reader()
    obj, rss, pods = await _workload(cluster, target, reader)
    snap = s.Snapshot(target=target, taken_at=now,
                      alerts=tuple(s.alert_from(a) for a in alerts),
                      window_seconds=window_seconds)
    if obj is None and not pods:
        return replace(snap, problems=tuple(reader.problems))
    details: Any = _pod_details(inspector, target, pods, reader) if inspector is not None \
        else _nothing()
    (logs, events), around = await asyncio.gather(
        details, _around(cluster, inspector, target, pods, reader))
    desired, ready = _replicas(obj, pods)
    return replace(
        snap, desired_replicas=desired, ready_replicas=ready,
        revisions=tuple(s.revision_from(r) for r in rss),
        pods=tuple(s.pod_from(p, logs.get(p["metadata"]["name"])) for p in pods),
        events=tuple(s.event_from(e) for e in events),
        nodes=tuple(s.node_from(n) for n in around["nodes"]),
        hpa=s.hpa_from(around["hpa"]) if around["hpa"] else None,
        pdbs=tuple(s.pdb_from(b) for b in around["pdbs"]), problems=tuple(reader.problems))


async def _nothing() -> tuple[dict[str, dict[str, str]], list[KubeObject]]:
    return {}, []
