"""The simulated control plane: deployment, replica-set and pod "kubelet" loops.

Runs on an injected ``Clock``. After every API write ``reconcile()`` runs at once
(new ReplicaSet with the next revision, ``observedGeneration``, scale changes,
replacement pods); every ``tick`` seconds of clock time ``tick()`` moves a rolling
update one pod forward, makes pods ready ``ready_seconds`` after they start,
crash-loops pods whose image is bad (restart count rising every
``crash_seconds``), keeps the ``Progressing``/``Available`` conditions as the
real controller does (``ProgressDeadlineExceeded`` after
``progressDeadlineSeconds`` without progress), and records Events.

It does not speak HTTP, and it does not own metrics (``metrics`` reads the store).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from remediator.clock import Clock
from remediator.simulator import objects as o
from remediator.simulator.store import (
    ApiError,
    Obj,
    Store,
    by_kind,
    parse_label_selector,
    rfc3339,
    selector_string,
)

DEPLOY, RS, POD, EVENT = (by_kind(k) for k in ("Deployment", "ReplicaSet", "Pod", "Event"))
STS, DS = by_kind("StatefulSet"), by_kind("DaemonSet")
NODE, PDB = by_kind("Node"), by_kind("PodDisruptionBudget")
CR = by_kind("ControllerRevision")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def controller_uid(obj: Obj) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref["uid"])
    return None


def revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(o.REVISION, "0"))
    except ValueError:
        return 0


class Controller:
    def __init__(self, store: Store, clock: Clock, bad_images: set[str], *, nodes: int = 3,
                 ready_seconds: float = 2.0, crash_seconds: float = 10.0,
                 tick_seconds: float = 1.0) -> None:
        self.store, self.clock, self.bad_images = store, clock, bad_images
        self.nodes, self.ready_seconds, self.crash_seconds = nodes, ready_seconds, crash_seconds
        self.tick_seconds = tick_seconds
        self._suffix = itertools.count(1)
        self.on_tick: list[Callable[[float], None]] = []
        # diagnosis conditions (``conditions``): a pod's status after the kubelet's, by age
        self.pod_hooks: list[Callable[[Obj, float], None]] = []
        self.after_reconcile: list[Callable[[], None]] = []
        self._last_tick = clock.now()

    def is_bad(self, template: Obj) -> bool:
        return any(c.get("image") in self.bad_images
                   for c in (template.get("spec") or {}).get("containers") or [])

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.tick_seconds)
            self.tick()

    def tick(self) -> None:
        now = self.clock.now()
        elapsed = (now - self._last_tick).total_seconds()
        self._last_tick = now
        self.reconcile(step=True)
        for hook in self.on_tick:
            hook(elapsed)

    # --- the loop ---------------------------------------------------------------------

    def reconcile(self, *, step: bool = False) -> None:
        self._collect_garbage()
        for d in self.store.list(DEPLOY):
            self._deployment(d, step=step)
        for rs in self.store.list(RS):
            self._replicaset(rs)
        for pod in self.store.list(POD):
            self._pod(pod)
        for rs in self.store.list(RS):
            self._replicaset_status(rs)
        for d in self.store.list(DEPLOY):
            self._deployment_status(d)
        for kind in (STS, DS):
            for w in self.store.list(kind):
                self._workload(w)
        for pdb in self.store.list(PDB):
            self._pdb(pdb)
        for hook in self.after_reconcile:
            hook()

    def node_for(self, n: int) -> str | None:
        """The scheduler: round robin over the Ready nodes that are not cordoned."""
        names = [x["metadata"]["name"] for x in self.store.list(NODE) if o.schedulable(x)]
        return names[n % len(names)] if names else None

    def _pdb(self, pdb: Obj) -> None:
        meta = pdb["metadata"]
        match = parse_label_selector(selector_string((pdb.get("spec") or {}).get("selector")
                                                     or {}))
        pods = [p for p in self.store.list(POD, meta["namespace"])
                if match(p["metadata"].get("labels") or {})]
        status = o.pdb_status(pdb, pods, is_ready)
        old = (pdb.get("status") or {}).get("conditions") or [{}]
        if old[0].get("status") == status["conditions"][0]["status"]:
            status["conditions"][0]["lastTransitionTime"] = old[0]["lastTransitionTime"]
        else:
            status["conditions"][0]["lastTransitionTime"] = rfc3339(self.clock)
        status["disruptedPods"] = (pdb.get("status") or {}).get("disruptedPods") or {}
        status["disruptedPods"] = {k: v for k, v in status["disruptedPods"].items()
                                   if any(p["metadata"]["name"] == k for p in pods)} or None
        pdb["status"] = {k: v for k, v in status.items() if v is not None}
        self.store.update(PDB, pdb, subresource="status", check_version=False)

    def _collect_garbage(self) -> None:
        for rt, owner_rt in ((RS, DEPLOY), (POD, RS), (CR, STS), (CR, DS)):
            owners = {x["metadata"]["uid"] for x in self.store.list(owner_rt)}
            for obj in self.store.list(rt):
                uid = controller_uid(obj)
                if uid and uid not in owners and any(
                        r["kind"] == owner_rt.kind for r in obj["metadata"]["ownerReferences"]):
                    self.store.delete(rt, obj["metadata"]["namespace"], obj["metadata"]["name"])

    def owned(self, rt: Any, owner: Obj) -> list[Obj]:
        return self.store.owned(rt, owner["metadata"]["uid"])

    def _event(self, obj: Obj, reason: str, message: str, type_: str = "Normal",
               component: str = "deployment-controller") -> None:
        now = rfc3339(self.clock)
        key = o.safe_encode(f"{obj['metadata']['uid']}/{reason}/{message}".encode(), 16)
        name = f"{obj['metadata']['name']}.{key}"
        ns = obj["metadata"]["namespace"]
        existing = self.store.find(EVENT, ns, name)
        if existing:
            existing["count"] = existing.get("count", 1) + 1
            existing["lastTimestamp"] = now
            self.store.update(EVENT, existing, check_version=False)
        else:
            self.store.create(EVENT, ns, o.event(obj, name, reason=reason, message=message,
                                                 type_=type_, now=now, component=component))

    # --- deployments ------------------------------------------------------------------

    def _deployment(self, d: Obj, *, step: bool) -> None:
        rss = self.owned(RS, d)
        wanted = o.strip_hash(d["spec"]["template"])
        new = next((rs for rs in rss if o.strip_hash(rs["spec"]["template"]) == wanted), None)
        desired = d["spec"].get("replicas", 1)
        meta = d["metadata"]
        annotations = meta.setdefault("annotations", {}) or {}
        meta["annotations"] = annotations
        found: tuple[str, str] | None = None
        if d["spec"].get("paused"):
            pass
        elif new is None:
            rev = max((revision(rs) for rs in rss), default=0) + 1
            new = self.store.create(RS, meta["namespace"], o.replicaset(
                d, d["spec"]["template"], rev, 0 if any(_replicas(r) for r in rss) else desired))
            self._event(d, "ScalingReplicaSet",
                        f"Scaled up replica set {new['metadata']['name']} from 0 to "
                        f"{_replicas(new)}")
            found = ("NewReplicaSetCreated", f'Created new replica set "{new["metadata"]["name"]}"')
        elif revision(new) < max(revision(rs) for rs in rss):
            rev = max(revision(rs) for rs in rss) + 1
            ann = new["metadata"]["annotations"]
            history = [h for h in ann.get(o.REVISION_HISTORY, "").split(",") if h]
            ann[o.REVISION_HISTORY] = ",".join([*history, str(revision(new))])
            ann[o.REVISION] = str(rev)
            new = self.store.update(RS, new, check_version=False)
            found = ("FoundNewReplicaSet", f'Found new replica set "{new["metadata"]["name"]}"')
        if new is not None and annotations.get(o.REVISION) != str(revision(new)):
            annotations[o.REVISION] = str(revision(new))
            self.store.update(DEPLOY, d, check_version=False)
        if found:
            self._progressing(d, "True", *found)
        if new is None:
            # Paused with a changed template: no new ReplicaSet, but scaling still happens.
            active = sorted(rss, key=lambda rs: (_replicas(rs), revision(rs)))
            if active and _replicas(active[-1]) != desired:
                self._scale_rs(d, active[-1], desired)
            return
        olds = [rs for rs in rss if rs["metadata"]["uid"] != new["metadata"]["uid"]]
        if not any(_replicas(rs) for rs in olds):
            if _replicas(new) != desired:
                self._scale_rs(d, new, desired)
            return
        if step:
            self._roll_one(d, new, olds, desired)

    def _roll_one(self, d: Obj, new: Obj, olds: list[Obj], desired: int) -> None:
        strategy = d["spec"].get("strategy") or {}
        active = [rs for rs in olds if _replicas(rs)]
        if strategy.get("type") == "Recreate":
            for rs in active:
                self._scale_rs(d, rs, 0)
            return
        rolling = strategy.get("rollingUpdate") or {}
        surge = o.resolve_int_or_percent(rolling.get("maxSurge"), desired, round_up=True)
        unavailable = o.resolve_int_or_percent(rolling.get("maxUnavailable"), desired,
                                               round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        total = _replicas(new) + sum(_replicas(rs) for rs in active)
        pods = self.owned_pods(d)
        available = sum(1 for p in pods if is_ready(p))
        old_unready = [rs for rs in active
                       if any(not is_ready(p) for p in self.owned(POD, rs))]
        if _replicas(new) < desired and total < desired + surge:
            self._scale_rs(d, new, _replicas(new) + 1)
        elif old_unready:
            self._scale_rs(d, old_unready[0], _replicas(old_unready[0]) - 1)
        elif available - 1 >= desired - unavailable:
            oldest = min(active, key=revision)
            self._scale_rs(d, oldest, _replicas(oldest) - 1)
        elif _replicas(new) > desired:
            self._scale_rs(d, new, _replicas(new) - 1)

    def owned_pods(self, d: Obj) -> list[Obj]:
        return [p for rs in self.owned(RS, d) for p in self.owned(POD, rs)]

    def _scale_rs(self, d: Obj, rs: Obj, replicas: int) -> None:
        before = _replicas(rs)
        rs["spec"]["replicas"] = replicas
        rs["metadata"]["annotations"][o.DESIRED_REPLICAS] = str(d["spec"].get("replicas", 1))
        self.store.update(RS, rs, check_version=False)
        verb = "up" if replicas > before else "down"
        self._event(d, "ScalingReplicaSet",
                    f"Scaled {verb} replica set {rs['metadata']['name']} from {before} to "
                    f"{replicas}")

    def _progressing(self, d: Obj, status: str, reason: str, message: str) -> None:
        d = self.store.get(DEPLOY, d["metadata"]["namespace"], d["metadata"]["name"])
        _set_condition(d, "Progressing", status, reason, message, rfc3339(self.clock))
        self.store.update(DEPLOY, d, subresource="status", check_version=False)

    def _deployment_status(self, d: Obj) -> None:
        rss = self.owned(RS, d)
        wanted = o.strip_hash(d["spec"]["template"])
        new = next((rs for rs in rss if o.strip_hash(rs["spec"]["template"]) == wanted), None)
        pods = [p for rs in rss for p in self.owned(POD, rs)]
        updated = len(self.owned(POD, new)) if new else 0
        ready = sum(1 for p in pods if is_ready(p))
        desired = d["spec"].get("replicas", 1)
        old = d.get("status") or {}
        status: Obj = {"observedGeneration": d["metadata"]["generation"], "replicas": len(pods),
                       "updatedReplicas": updated, "readyReplicas": ready,
                       "availableReplicas": ready,
                       "unavailableReplicas": max(desired - ready, 0),
                       "conditions": old.get("conditions", [])}
        status = {k: v for k, v in status.items() if v}      # omitempty, as the API does
        now = rfc3339(self.clock)
        rolling = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        min_available = desired - o.resolve_int_or_percent(
            rolling.get("maxUnavailable"), desired, round_up=False)
        d["status"] = status
        if ready >= min_available:
            _set_condition(d, "Available", "True", "MinimumReplicasAvailable",
                           "Deployment has minimum availability.", now)
        else:
            _set_condition(d, "Available", "False", "MinimumReplicasUnavailable",
                           "Deployment does not have minimum availability.", now)
        name = new["metadata"]["name"] if new else d["metadata"]["name"]
        progressed = any(old.get(k, 0) != status.get(k, 0)
                         for k in ("replicas", "updatedReplicas", "availableReplicas"))
        current = _condition(d, "Progressing")
        complete = new is not None and updated == desired == len(pods) and ready >= desired
        deadline = d["spec"].get("progressDeadlineSeconds")
        if d["spec"].get("paused"):
            _set_condition(d, "Progressing", "Unknown", "DeploymentPaused",
                           "Deployment is paused", now)
        elif complete:
            _set_condition(d, "Progressing", "True", "NewReplicaSetAvailable",
                           f'ReplicaSet "{name}" has successfully progressed.', now,
                           touch=current is None or current["reason"] != "NewReplicaSetAvailable")
        elif progressed or current is None:
            _set_condition(d, "Progressing", "True", "ReplicaSetUpdated",
                           f'ReplicaSet "{name}" is progressing.', now)
        elif (deadline is not None and current["reason"] != "ProgressDeadlineExceeded"
              and (self.clock.now() - parse_time(current["lastUpdateTime"])).total_seconds()
              > deadline):
            _set_condition(d, "Progressing", "False", "ProgressDeadlineExceeded",
                           f'ReplicaSet "{name}" has timed out progressing.', now)
            self._event(d, "ProgressDeadlineExceeded",
                        f'Deployment "{d["metadata"]["name"]}" has timed out progressing.',
                        "Warning")
        self.store.update(DEPLOY, d, subresource="status", check_version=False)

    # --- replica sets and pods --------------------------------------------------------

    def _replicaset(self, rs: Obj) -> None:
        pods = self._release(rs, self.owned(POD, rs))
        want = _replicas(rs)
        ns = rs["metadata"]["namespace"]
        for _ in range(want - len(pods)):
            n = next(self._suffix)
            suffix = o.safe_encode(f"{rs['metadata']['uid']}/pod-{n}".encode(), 5)
            pod = self.store.create(POD, ns, o.pod(rs, suffix, self.node_for(n)))
            if pod["spec"].get("nodeName"):
                self._event(pod, "Scheduled", f"Successfully assigned {ns}/"
                            f"{pod['metadata']['name']} to {pod['spec']['nodeName']}",
                            component="default-scheduler")
        if len(pods) > want:
            pods.sort(key=lambda p: (is_ready(p), p["metadata"]["creationTimestamp"]))
            for pod in pods[: len(pods) - want]:
                self.store.delete(POD, ns, pod["metadata"]["name"])

    def _release(self, rs: Obj, pods: list[Obj]) -> list[Obj]:
        """Pods whose labels no longer match the ReplicaSet's selector are released
        (their controller reference removed), as the real controller does; the rest."""
        match = parse_label_selector(selector_string(rs["spec"].get("selector") or {}))
        kept = []
        for pod in pods:
            if match(pod["metadata"].get("labels") or {}):
                kept.append(pod)
                continue
            pod["metadata"]["ownerReferences"] = [
                r for r in pod["metadata"].get("ownerReferences") or []
                if r.get("uid") != rs["metadata"]["uid"]]
            self.store.update(POD, pod, check_version=False)
        return kept

    def _pod(self, pod: Obj) -> None:
        if not pod["spec"].get("nodeName"):
            node = self.node_for(next(self._suffix))
            if node is None:
                self._unschedulable(pod)
                return
            pod["spec"]["nodeName"] = node
            pod = self.store.update(POD, pod, check_version=False)
        started = pod["metadata"]["creationTimestamp"]
        age = (self.clock.now() - parse_time(started)).total_seconds()
        bad = self.is_bad(pod)
        ready = not bad and age >= self.ready_seconds
        restarts = int(age // self.crash_seconds) if bad else 0
        before = pod.get("status", {}).get("containerStatuses") or [{}]
        pod["status"] = o.pod_status(pod, started=started, now=rfc3339(self.clock), ready=ready,
                                     bad=bad, restarts=restarts)
        for pod_hook in self.pod_hooks:
            pod_hook(pod, age)
        if bad and restarts > before[0].get("restartCount", 0):
            name = pod["spec"]["containers"][0]["name"]
            self._event(pod, "BackOff", f"Back-off restarting failed container {name} in pod "
                        f"{pod['metadata']['name']}", "Warning", component="kubelet")
        # Keep the failure time stable so that the object only changes when something did.
        if bad and before[0].get("restartCount") == restarts:
            return
        with contextlib.suppress(ApiError):
            self.store.update(POD, pod, subresource="status", check_version=False)

    def _unschedulable(self, pod: Obj) -> None:
        now, total = rfc3339(self.clock), len(self.store.list(NODE))
        status = {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": f"0/{total} nodes are available: no Ready node without "
                        "node.kubernetes.io/unschedulable.",
             "lastProbeTime": None, "lastTransitionTime": now}]}
        if (pod.get("status") or {}).get("conditions") and \
                pod["status"]["conditions"][0].get("reason") == "Unschedulable":
            return
        pod["status"] = status
        with contextlib.suppress(ApiError):
            self.store.update(POD, pod, subresource="status", check_version=False)

    def _replicaset_status(self, rs: Obj) -> None:
        pods = self.owned(POD, rs)
        ready = sum(1 for p in pods if is_ready(p))
        status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
                  "availableReplicas": ready, "observedGeneration": rs["metadata"]["generation"]}
        rs["status"] = {k: v for k, v in status.items() if v or k == "replicas"}
        self.store.update(RS, rs, subresource="status", check_version=False)

    def _history(self, w: Obj) -> str:
        """The workload's ControllerRevisions: one per distinct template, the current one
        with the highest revision (an old template coming back gets a new number, as the
        real controllers do). The current revision's name."""
        crs = self.owned(CR, w)
        wanted = o.strip_hash(w["spec"]["template"])
        current = next((c for c in crs if o.strip_hash(o.revision_template(c)) == wanted), None)
        top = max((int(c.get("revision", 0)) for c in crs), default=0)
        if current is None:
            current = self.store.create(CR, w["metadata"]["namespace"],
                                        o.controller_revision(w, w["spec"]["template"], top + 1))
        elif int(current.get("revision", 0)) < top:
            current["revision"] = top + 1
            current = self.store.update(CR, current, check_version=False)
        return str(current["metadata"]["name"])

    def _workload(self, w: Obj) -> None:
        spec = w["spec"]
        rev = self._history(w)
        bad = self.is_bad(spec["template"])
        if w["kind"] == "StatefulSet":
            n = spec.get("replicas", 1)
            current = (w.get("status") or {}).get("currentRevision") or rev
            ok = n - 1 if bad and n else n
            w["status"] = {"observedGeneration": w["metadata"]["generation"], "replicas": n,
                           "readyReplicas": ok, "currentReplicas": ok, "updatedReplicas": n,
                           "availableReplicas": ok, "currentRevision": current if bad else rev,
                           "updateRevision": rev, "collisionCount": 0}
        else:
            n = self.nodes
            ok = n - 1 if bad else n
            w["status"] = {"observedGeneration": w["metadata"]["generation"],
                           "desiredNumberScheduled": n, "currentNumberScheduled": n,
                           "numberMisscheduled": 0, "numberReady": ok, "updatedNumberScheduled": n,
                           "numberAvailable": ok, "numberUnavailable": n - ok}
        self.store.update(by_kind(w["kind"]), w, subresource="status", check_version=False)


def _replicas(rs: Obj) -> int:
    return int(rs["spec"].get("replicas", 1))


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _condition(obj: Obj, type_: str) -> Obj | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == type_), None)


def _set_condition(obj: Obj, type_: str, status: str, reason: str, message: str, now: str,
                   *, touch: bool = True) -> None:
    conditions: list[Obj] = obj.setdefault("status", {}).setdefault("conditions", [])
    current = _condition(obj, type_)
    if current is None:
        conditions.append({"type": type_, "status": status, "reason": reason, "message": message,
                           "lastUpdateTime": now, "lastTransitionTime": now})
        return
    if current["status"] != status:
        current["lastTransitionTime"] = now
    if touch:
        current["lastUpdateTime"] = now
    current.update(status=status, reason=reason, message=message)
