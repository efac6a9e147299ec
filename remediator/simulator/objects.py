"""Builders of complete Kubernetes objects (the shapes the real API returns).

kubernetes_asyncio's generated models insist on required fields (a container's
``name``, a condition's ``type`` and ``status``, an event's ``involvedObject``…),
so everything the simulator serves is built here, whole.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def safe_encode(data: bytes, length: int) -> str:
    digest = hashlib.sha256(data).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:length])


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def strip_hash(template: Obj) -> Obj:
    """A pod template for semantic comparison: no pod-template-hash label, no nulls (a Go
    zero value such as ``creationTimestamp: null`` is the same as none), no empty maps."""
    t: Obj = _drop_nulls(copy.deepcopy(template or {}))
    meta = t.setdefault("metadata", {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    meta.pop("labels", None)
    if labels:
        meta["labels"] = labels
    if not meta.get("annotations"):
        meta.pop("annotations", None)
    return t


def template_hash(template: Obj) -> str:
    return safe_encode(json.dumps(strip_hash(template), sort_keys=True).encode(), 10)


def image_of(template: Obj) -> str:
    containers = (template.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("image", ""))


def owner_ref(owner: Obj) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def container(name: str, image: str) -> Obj:
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
            "resources": {}, "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File"}


def pod_template(labels: dict[str, str], name: str, image: str) -> Obj:
    return {"metadata": {"labels": dict(labels)},
            "spec": {"containers": [container(name, image)], "restartPolicy": "Always",
                     "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                     "schedulerName": "default-scheduler", "securityContext": {}}}


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def deployment(namespace: str, name: str, *, replicas: int, image: str, paused: bool = False,
               labels: dict[str, str] | None = None, max_surge: int | str = "25%",
               max_unavailable: int | str = "25%", progress_deadline: int = 600) -> Obj:
    labels = labels or {"app": name}
    spec: Obj = {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                 "template": pod_template(labels, name, image),
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxSurge": max_surge,
                                                "maxUnavailable": max_unavailable}},
                 "revisionHistoryLimit": 10, "progressDeadlineSeconds": progress_deadline}
    if paused:
        spec["paused"] = True
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                         "annotations": {}},
            "spec": spec, "status": {}}


def replicaset(deploy: Obj, template: Obj, revision: int, replicas: int) -> Obj:
    h = template_hash(template)
    tmpl = copy.deepcopy(template)
    tmpl.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
    selector = copy.deepcopy(deploy["spec"]["selector"])
    selector.setdefault("matchLabels", {})[HASH_LABEL] = h
    annotations = {k: v for k, v in (deploy["metadata"].get("annotations") or {}).items()
                   if k not in (REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS)}
    annotations.update({REVISION: str(revision),
                        DESIRED_REPLICAS: str(deploy["spec"].get("replicas", 1)),
                        MAX_REPLICAS: str(deploy["spec"].get("replicas", 1) + 1)})
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{deploy['metadata']['name']}-{h}",
                         "namespace": deploy["metadata"]["namespace"],
                         "labels": dict(tmpl["metadata"]["labels"]), "annotations": annotations,
                         "ownerReferences": [owner_ref(deploy)]},
            "spec": {"replicas": replicas, "selector": selector, "template": tmpl},
            "status": {"replicas": 0, "observedGeneration": 1}}


def pod(rs: Obj, suffix: str, node: str | None) -> Obj:
    tmpl = rs["spec"]["template"]
    spec = copy.deepcopy(tmpl.get("spec") or {})
    if node:
        spec["nodeName"] = node
    spec.setdefault("serviceAccountName", "default")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{rs['metadata']['name']}-{suffix}",
                         "namespace": rs["metadata"]["namespace"],
                         "labels": dict((tmpl.get("metadata") or {}).get("labels") or {}),
                         "annotations": dict((tmpl.get("metadata") or {}).get("annotations") or {}),
                         "ownerReferences": [owner_ref(rs)]},
            "spec": spec, "status": {"phase": "Pending", "qosClass": "BestEffort"}}


def pod_status(pod_obj: Obj, *, started: str, now: str, ready: bool, bad: bool,
               restarts: int) -> Obj:
    """The status of a pod: Running and Ready, starting, or crash-looping (bad image)."""
    containers = pod_obj["spec"].get("containers") or []
    statuses = []
    for c in containers:
        st: Obj = {"name": c["name"], "image": c.get("image", ""), "ready": ready,
                   "restartCount": restarts, "started": ready,
                   "imageID": f"docker-pullable://{c.get('image', '')}",
                   "containerID": "containerd://"
                                  + safe_encode(pod_obj["metadata"]["uid"].encode(), 20)}
        if bad:
            message = f"back-off restarting failed container {c['name']}"
            st["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
            st["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error",
                                              "startedAt": started, "finishedAt": now}}
        else:
            st["state"] = {"running": {"startedAt": started}}
            st["lastState"] = {}
        statuses.append(st)
    flag = "True" if ready else "False"
    conditions = [{"type": t, "status": s, "lastTransitionTime": started, "lastProbeTime": None}
                  for t, s in (("Initialized", "True"), ("Ready", flag),
                               ("ContainersReady", flag), ("PodScheduled", "True"))]
    return {"phase": "Running", "conditions": conditions, "containerStatuses": statuses,
            "hostIP": "10.0.0.10", "podIP": "10.244.0.10", "startTime": started,
            "qosClass": "BestEffort"}


def event(obj: Obj, name: str, *, reason: str, message: str, type_: str, now: str,
          component: str) -> Obj:
    meta = obj["metadata"]
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                               "name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta["uid"]},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now, "eventTime": None,
            "source": {"component": component}, "reportingComponent": component,
            "reportingInstance": ""}


def hpa(namespace: str, name: str, *, kind: str, target: str, min_replicas: int,
        max_replicas: int) -> Obj:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                     "minReplicas": min_replicas, "maxReplicas": max_replicas,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization",
                                                   "averageUtilization": 80}}}]},
            "status": {"currentReplicas": min_replicas, "desiredReplicas": min_replicas}}


def workload(kind: str, namespace: str, name: str, *, replicas: int, image: str) -> Obj:
    """A StatefulSet or DaemonSet (simulated without pods)."""
    labels = {"app": name}
    spec: Obj = {"selector": {"matchLabels": dict(labels)},
                 "template": pod_template(labels, name, image),
                 "updateStrategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": 1} if kind == "DaemonSet"
                                    else {"partition": 0}}}
    if kind == "StatefulSet":
        spec.update(replicas=replicas, serviceName=name, podManagementPolicy="OrderedReady")
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": spec, "status": {}}


def resolve_int_or_percent(value: int | str | None, total: int, *, round_up: bool,
                           default: str = "25%") -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if value is None:
        value = default
    if isinstance(value, int):
        return value
    if value.endswith("%"):
        scaled = int(value[:-1]) * total
        return -(-scaled // 100) if round_up else scaled // 100
    return int(value)


MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def node(name: str, *, ready: bool = True, now: str) -> Obj:
    """A Node as the kubelet registers it (Ready, schedulable)."""
    flag, reason = ("True", "KubeletReady") if ready else ("Unknown", "NodeStatusUnknown")
    conditions = [{"type": t, "status": "False", "reason": r, "message": m,
                   "lastHeartbeatTime": now, "lastTransitionTime": now}
                  for t, r, m in (("MemoryPressure", "KubeletHasSufficientMemory",
                                   "kubelet has sufficient memory available"),
                                  ("DiskPressure", "KubeletHasNoDiskPressure",
                                   "kubelet has no disk pressure"),
                                  ("PIDPressure", "KubeletHasSufficientPID",
                                   "kubelet has sufficient PID available"))]
    conditions.append({"type": "Ready", "status": flag, "reason": reason,
                       "message": "kubelet is posting ready status" if ready
                       else "Kubelet stopped posting node status.",
                       "lastHeartbeatTime": now, "lastTransitionTime": now})
    resources = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64"}},
            "spec": {"podCIDR": "10.244.0.0/24"},
            "status": {"conditions": conditions, "capacity": dict(resources),
                       "allocatable": dict(resources),
                       "addresses": [{"type": "Hostname", "address": name}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0", "kubeProxyVersion": "v1.32.0",
                                    "containerRuntimeVersion": "containerd://1.7.0",
                                    "osImage": "Simulated Linux", "kernelVersion": "6.1.0",
                                    "operatingSystem": "linux", "architecture": "amd64",
                                    "machineID": name, "systemUUID": name, "bootID": name}}}


def node_ready(node_obj: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node_obj.get("status") or {}).get("conditions") or [])


def schedulable(node_obj: Obj) -> bool:
    return node_ready(node_obj) and not (node_obj.get("spec") or {}).get("unschedulable")


def pdb_status(pdb: Obj, pods: list[Obj], ready: Any) -> Obj:
    """The disruption controller's status of a PodDisruptionBudget over its pods
    (expected pods: those that exist and are not terminating)."""
    spec = pdb.get("spec") or {}
    expected = len(pods)
    healthy = sum(1 for p in pods if ready(p))
    if spec.get("maxUnavailable") is not None:
        desired = max(expected - resolve_int_or_percent(spec["maxUnavailable"], expected,
                                                         round_up=True), 0)
    else:
        desired = resolve_int_or_percent(spec.get("minAvailable", 1), expected, round_up=True)
    allowed = max(healthy - desired, 0)
    return {"observedGeneration": pdb["metadata"].get("generation", 1),
            "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
            "disruptionsAllowed": allowed,
            "conditions": [{"type": "DisruptionAllowed",
                            "status": "True" if allowed else "False",
                            "reason": "SufficientPods" if allowed else "InsufficientPods",
                            "message": "", "observedGeneration":
                                pdb["metadata"].get("generation", 1),
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}


def pdb(namespace: str, name: str, selector: dict[str, str], *,
        min_available: int | str | None = None, max_unavailable: int | str | None = None) -> Obj:
    spec: Obj = {"selector": {"matchLabels": dict(selector)}}
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    else:
        spec["minAvailable"] = 1 if min_available is None else min_available
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec, "status": {}}


def controller_revision(owner: Obj, template: Obj, revision: int) -> Obj:
    """A StatefulSet's or DaemonSet's ControllerRevision: the template as a strategic
    merge patch that replaces it (what ``kubectl rollout undo`` applies)."""
    h = template_hash(template)
    hash_label = "controller-revision-hash" if owner["kind"] == "DaemonSet" \
        else "controller.kubernetes.io/hash"
    labels = {**((owner["spec"].get("selector") or {}).get("matchLabels") or {}),
              hash_label: h}
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": f"{owner['metadata']['name']}-{h}",
                         "namespace": owner["metadata"]["namespace"], "labels": labels,
                         "ownerReferences": [owner_ref(owner)]},
            "data": {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}},
            "revision": revision}


def revision_template(cr: Obj) -> Obj:
    t = copy.deepcopy(((cr.get("data") or {}).get("spec") or {}).get("template") or {})
    t.pop("$patch", None)
    return t
