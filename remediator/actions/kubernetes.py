"""The Kubernetes actions: restart, scale, rollback, delete_pod — kubectl's semantics.

Each ``plan`` reads the cluster and computes a concrete, idempotent intent (a
``restartedAt`` value, a replica count, a revision and its template, pod names
with their uids) plus the exact API calls, for the journal and for dry-run; each
``apply`` performs that intent, so replaying it has no further effect.
Every API call goes through the cluster port (``ClusterApi``, ``remediator.ports``;
the adapter is ``remediator.adapters.kubernetes``); ``API_PERMISSIONS`` lists them
all for the RBAC Role.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any, ClassVar

from remediator.actions.params import DeletePodParams, RestartParams, RollbackParams, ScaleParams
from remediator.engine.contract import ActionResult, Intent, RunContext
from remediator.errors import PermanentError, TemporaryError
from remediator.model.incident import TargetRef
from remediator.model.names import check_dns1123_label, check_dns1123_subdomain, check_label_value
from remediator.ports.cluster import ClusterApi, RolloutStatus, api_path, selector_string

# (API group, resource, verb) of every call the adapter and these actions make.
API_PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    ("apps", "deployments", "get"), ("apps", "deployments", "patch"),
    ("apps", "deployments/scale", "get"), ("apps", "deployments/scale", "patch"),
    ("apps", "statefulsets", "get"), ("apps", "statefulsets", "patch"),
    ("apps", "statefulsets/scale", "get"), ("apps", "statefulsets/scale", "patch"),
    ("apps", "daemonsets", "get"), ("apps", "daemonsets", "patch"),
    ("apps", "replicasets", "get"), ("apps", "replicasets", "list"),
    ("apps", "controllerrevisions", "list"),
    ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "delete"),
    ("", "pods/log", "get"),                # evidence: the logs of failing pods
    ("", "events", "list"),
    ("autoscaling", "horizontalpodautoscalers", "list"),
    ("", "nodes", "get"), ("", "nodes", "list"), ("", "nodes", "patch"),
    ("", "pods/eviction", "create"), ("", "pods", "patch"),
    ("networking.k8s.io", "networkpolicies", "create"),
    ("networking.k8s.io", "networkpolicies", "list"),
    ("networking.k8s.io", "networkpolicies", "delete"),
)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
# kubectl rollback.go: annotations the Deployment keeps and a ReplicaSet never gives back.
ANNOTATIONS_TO_SKIP = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION,
    "deployment.kubernetes.io/revision-history", "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas", "deprecated.deployment.rollback.to"})
_COMPACT: Mapping[str, Any] = {"separators": (",", ":"), "sort_keys": False}


def _json(body: Any) -> str:
    return json.dumps(body, **_COMPACT)


def _cluster(ctx: RunContext) -> ClusterApi:
    if ctx.cluster is None:
        raise TemporaryError("no Kubernetes cluster configured")
    return ctx.cluster


def _checked(kind: str, namespace: str, name: str, kinds: tuple[str, ...],
             action: str) -> TargetRef:
    if kind not in kinds:
        raise PermanentError(f"{action} cannot act on a {kind} (only {', '.join(kinds)})")
    try:
        check_dns1123_label(namespace, "namespace")
        check_dns1123_subdomain(name, f"{kind} name")
    except ValueError as err:
        raise PermanentError(f"{action}: refusing the target: {err}") from err
    return TargetRef(kind=kind, namespace=namespace, name=name)


def _target(ctx: RunContext, kinds: tuple[str, ...], action: str) -> TargetRef:
    if ctx.target is None:
        raise PermanentError(f"{action} needs the playbook's spec.target")
    return _checked(ctx.target.kind, ctx.target.namespace, ctx.target.name, kinds, action)


def _intent_target(intent: Intent, kinds: tuple[str, ...]) -> TargetRef:
    a = intent.args
    return _checked(str(a["kind"]), str(a["namespace"]), str(a["name"]), kinds, intent.action)


def _where(t: TargetRef) -> dict[str, str]:
    return {"kind": t.kind, "namespace": t.namespace, "name": t.name}


def rfc3339(ctx: RunContext) -> str:
    return ctx.clock.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def check_rollout(cluster: ClusterApi, target: TargetRef) -> RolloutStatus:
    """kubectl rollout status (one evaluation)."""
    return await cluster.rollout_status(target)


class Restart:
    """kubectl rollout restart: a restartedAt annotation on the pod template."""

    name: ClassVar[str] = "kubernetes.restart"
    params = RestartParams
    KINDS = ("Deployment", "StatefulSet", "DaemonSet")

    async def plan(self, ctx: RunContext, params: RestartParams) -> Intent:
        cluster, t = _cluster(ctx), _target(ctx, self.KINDS, self.name)
        obj = await cluster.read_workload(t)
        spec = obj.get("spec") or {}
        if spec.get("paused"):
            raise PermanentError(f"can't restart paused {t} (run rollout resume first)")
        at = rfc3339(ctx)
        current = (((spec.get("template") or {}).get("metadata") or {}).get("annotations")
                   or {}).get(RESTARTED_AT)
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}}
        why = f" ({params.reason})" if params.reason else ""
        return Intent(action=self.name, description=f"restart {t} (restartedAt {at}){why}",
                      args={**_where(t), "restarted_at": at, "patch": patch},
                      api_calls=[f"PATCH {api_path(t.kind, t.namespace, t.name)} {_json(patch)}"],
                      noop=current == at)

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        cluster, t = _cluster(ctx), _intent_target(intent, self.KINDS)
        obj = await cluster.patch_workload(t, intent.args["patch"],
                                           content_type="application/strategic-merge-patch+json")
        return ActionResult(summary=f"restarted {t}",
                            details={"restartedAt": intent.args["restarted_at"],
                                     "generation": (obj.get("metadata") or {}).get("generation")})


class Scale:
    """Scale through the scale subresource, *to* the number computed at plan time."""

    name: ClassVar[str] = "kubernetes.scale"
    params = ScaleParams
    KINDS = ("Deployment", "StatefulSet")

    async def plan(self, ctx: RunContext, params: ScaleParams) -> Intent:
        cluster, t = _cluster(ctx), _target(ctx, self.KINDS, self.name)
        if not params.allow_hpa:
            for hpa in await cluster.list_hpas(t.namespace):
                ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
                if ref.get("kind") == t.kind and ref.get("name") == t.name:
                    raise PermanentError(
                        f"refusing to scale {t}: HorizontalPodAutoscaler "
                        f"{t.namespace}/{hpa['metadata']['name']} manages its replicas "
                        "(set allow_hpa: true to scale anyway)")
        current = await cluster.read_scale(t)
        if params.to is not None:
            wanted = params.to
        elif params.by is not None:
            wanted = current + params.by
        else:
            wanted = math.ceil(current * (params.factor or 1))
        target = max(wanted, params.min_replicas)
        if params.max_replicas is not None:
            target = min(target, params.max_replicas)
        note = f" (wanted {wanted}, capped to [{params.min_replicas}, {params.max_replicas}])" \
            if target != wanted else ""
        body = {"spec": {"replicas": target}}
        return Intent(action=self.name, description=f"scale {t} from {current} to {target}{note}",
                      args={**_where(t), "from": current, "replicas": target},
                      api_calls=[f"PATCH {api_path(t.kind, t.namespace, t.name, 'scale')} "
                                 f"{_json(body)}"],
                      noop=target == current)

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        cluster, t = _cluster(ctx), _intent_target(intent, self.KINDS)
        replicas = int(intent.args["replicas"])
        now = await cluster.patch_scale(t, replicas)
        return ActionResult(summary=f"scaled {t} to {now}",
                            details={"from": intent.args.get("from"), "replicas": now})


def _without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(dict(template))
    meta = t.setdefault("metadata", {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    meta.pop("labels", None)
    if labels:
        meta["labels"] = labels
    if not meta.get("annotations"):
        meta.pop("annotations", None)
    if not meta:
        t.pop("metadata")
    return t


def _essence(template: Mapping[str, Any]) -> dict[str, Any]:
    """A pod template without pod-template-hash and kubectl's restartedAt annotation."""
    t = copy.deepcopy(_without_hash(template))
    annotations = (t.get("metadata") or {}).get("annotations")
    if annotations:
        annotations.pop(RESTARTED_AT, None)
        if not annotations:
            t["metadata"].pop("annotations")
            if not t["metadata"]:
                t.pop("metadata")
    return t


def _revision(rs: Mapping[str, Any]) -> int | None:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {})[REVISION])
    except (KeyError, TypeError, ValueError):
        return None


def _controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("controller") and ref.get("uid") == uid
               for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def _image(template: Mapping[str, Any]) -> str:
    containers = (template.get("spec") or {}).get("containers") or [{}]
    return ", ".join(str(c.get("image")) for c in containers)


class Rollback:
    """kubectl rollout undo, to a revision resolved at plan time: a Deployment's from its
    ReplicaSets, a StatefulSet's or DaemonSet's from its ControllerRevisions."""

    name: ClassVar[str] = "kubernetes.rollback"
    params = RollbackParams
    KINDS = ("Deployment", "StatefulSet", "DaemonSet")

    async def plan(self, ctx: RunContext, params: RollbackParams) -> Intent:
        cluster, t = _cluster(ctx), _target(ctx, self.KINDS, self.name)
        d = await cluster.read_workload(t)
        if t.kind != "Deployment":
            return await self._plan_history(cluster, t, d, params)
        uid = d["metadata"]["uid"]
        rss = [rs for rs in await cluster.list_replicasets(
            t.namespace, selector_string(d["spec"].get("selector"))) if _controlled_by(rs, uid)]
        revisions = [(rev, rs, rs["spec"]["template"]) for rs in rss
                     if (rev := _revision(rs)) is not None]
        chosen, revision, _ = self._choose(revisions, params.revision, t, d["spec"]["template"])
        if d["spec"].get("paused"):
            raise PermanentError(f"you cannot rollback a paused deployment ({t}); resume it first "
                                 "with 'kubectl rollout resume' and try again")
        template = _without_hash(chosen["spec"]["template"])
        current_rev = ((d["metadata"].get("annotations") or {}).get(REVISION)) or "?"
        if template == _without_hash(d["spec"]["template"]):
            return self._skipped(t, revision)
        annotations = {k: v for k, v in (d["metadata"].get("annotations") or {}).items()
                       if k in ANNOTATIONS_TO_SKIP}
        annotations.update({k: v for k, v in (chosen["metadata"].get("annotations") or {}).items()
                            if k not in ANNOTATIONS_TO_SKIP})
        patch = [{"op": "replace", "path": "/spec/template", "value": template},
                 {"op": "replace", "path": "/metadata/annotations", "value": annotations}]
        return Intent(
            action=self.name,
            description=f"roll back {t} from revision {current_rev} to revision {revision} "
                        f"({_change(d['spec']['template'], template, revision)})",
            args={**_where(t), "revision": revision, "replicaset": chosen["metadata"]["name"],
                  "template": template, "patch": patch,
                  "content_type": "application/json-patch+json"},
            api_calls=[f"PATCH {api_path(t.kind, t.namespace, t.name)} {_json(patch)}"])

    def _skipped(self, t: TargetRef, revision: int) -> Intent:
        return Intent(action=self.name, noop=True, args={**_where(t), "revision": revision},
                      description=f"roll back {t} to revision {revision}: skipped (current "
                                  f"template already matches revision {revision})")

    async def _plan_history(self, cluster: ClusterApi, t: TargetRef, obj: dict[str, Any],
                            params: RollbackParams) -> Intent:
        """kubectl's StatefulSet/DaemonSet rollbacker: the chosen ControllerRevision's data
        (the template with ``$patch: replace``) as a strategic merge patch."""
        uid = obj["metadata"]["uid"]
        crs = [cr for cr in await cluster.list_controller_revisions(
            t.namespace, selector_string(obj["spec"].get("selector"))) if _controlled_by(cr, uid)]
        revisions = [(int(cr.get("revision") or 0), cr, _revision_template(cr)) for cr in crs]
        chosen, revision, template = self._choose(revisions, params.revision, t,
                                                  obj["spec"]["template"])
        if _without_hash(template) == _without_hash(obj["spec"]["template"]):
            return self._skipped(t, revision)
        patch = chosen.get("data") or {}
        current = max((r for r, _, _ in revisions), default=0)
        return Intent(
            action=self.name,
            description=f"roll back {t} from revision {current} to revision {revision} "
                        f"({_change(obj['spec']['template'], template, revision)})",
            args={**_where(t), "revision": revision,
                  "controllerrevision": chosen["metadata"]["name"],
                  "template": _without_hash(template), "patch": patch,
                  "content_type": "application/strategic-merge-patch+json"},
            api_calls=[f"PATCH {api_path(t.kind, t.namespace, t.name)} {_json(patch)}"])

    @staticmethod
    def _choose(revisions: list[tuple[int, dict[str, Any], dict[str, Any]]],
                wanted: int | str, t: TargetRef,
                current: Mapping[str, Any]) -> tuple[dict[str, Any], int, dict[str, Any]]:
        """kubectl's choice, with one deliberate difference for ``previous``: revisions
        whose template differs from the current one only by kubectl's ``restartedAt``
        annotation are passed over. Otherwise the usual ladder (restart, then roll back)
        would "roll back" to the very template that was just restarted."""
        ordered = sorted(revisions, key=lambda r: r[0], reverse=True)
        if isinstance(wanted, int):
            for rev, obj, template in ordered:
                if rev == wanted:
                    return obj, rev, template
            raise PermanentError(f"unable to find specified revision {wanted} in history of {t}")
        if len(ordered) < 2:
            raise PermanentError(f'no rollout history found for {t.kind.lower()} "{t.name}" '
                                 f"({t})")
        now = _essence(current)
        for rev, obj, template in ordered[1:]:
            if _essence(template) != now:
                return obj, rev, template
        raise PermanentError(f"no earlier revision of {t} differs from the current template "
                             "other than by restarts: nothing to roll back to")

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        cluster, t = _cluster(ctx), _intent_target(intent, self.KINDS)
        revision = intent.args["revision"]
        d = await cluster.read_workload(t)
        if _without_hash(d["spec"]["template"]) == intent.args["template"]:
            return ActionResult(summary=f"{t} already runs the template of revision {revision}",
                                details={"revision": revision, "skipped": True})
        await cluster.patch_workload(t, intent.args["patch"], content_type=intent.args.get(
            "content_type", "application/json-patch+json"))
        source = {k: intent.args[k] for k in ("replicaset", "controllerrevision")
                  if k in intent.args}
        return ActionResult(summary=f"rolled back {t} to revision {revision}",
                            details={"revision": revision, **source})


def _revision_template(cr: Mapping[str, Any]) -> dict[str, Any]:
    template = dict(((cr.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def _change(before: Mapping[str, Any], after: Mapping[str, Any], revision: int) -> str:
    old, new = _image(before), _image(after)
    return f"{old} → {new}" if old != new else \
        f"the template of revision {revision}, same image {new}"


def _ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _scaled(value: Any, total: int, default: int | str) -> int:
    value = default if value is None else value
    if isinstance(value, str) and value.endswith("%"):
        return int(value[:-1]) * total // 100
    return int(value)


def minimum_available(obj: Mapping[str, Any]) -> tuple[int, int]:
    """(available now, minimum to keep): replicas − maxUnavailable, as the controllers count."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if obj.get("kind") == "Deployment":
        replicas = int(spec.get("replicas", 1))
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        return (int(status.get("availableReplicas") or 0),
                replicas - _scaled(rolling.get("maxUnavailable"), replicas, "25%"))
    rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate") or {}
    if obj.get("kind") == "StatefulSet":
        replicas = int(spec.get("replicas", 1))
        return (int(status.get("availableReplicas") or status.get("readyReplicas") or 0),
                replicas - _scaled(rolling.get("maxUnavailable"), replicas, 1))
    desired = int(status.get("desiredNumberScheduled") or 0)
    return (int(status.get("numberAvailable") or 0),
            desired - _scaled(rolling.get("maxUnavailable"), desired, 1))


class DeletePod:
    """Delete the alert's pod(s), only ever pods that belong to the target."""

    name: ClassVar[str] = "kubernetes.delete_pod"
    params = DeletePodParams
    KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Pod")

    async def plan(self, ctx: RunContext, params: DeletePodParams) -> Intent:
        cluster, t = _cluster(ctx), _target(ctx, self.KINDS, self.name)
        owner = None if t.kind == "Pod" else await cluster.read_workload(t)
        belongs = await self._ownership(cluster, t, owner)
        if params.selector is not None:
            try:
                for key, value in params.selector.items():
                    check_label_value(value, f"selector value of {key!r}")
            except ValueError as err:
                raise PermanentError(f"{self.name}: refusing the selector: {err}") from err
            found = await cluster.list_pods(t.namespace, ",".join(
                f"{k}={v}" for k, v in sorted(params.selector.items())))
            pods = [p for p in found if await belongs(p)]
        else:
            pods = await self._named_pod(ctx, cluster, t, params, belongs)
        pods.sort(key=lambda p: (_ready(p), p["metadata"]["name"]))
        pods = pods[: params.max_pods]
        if owner is not None:
            available, minimum = minimum_available(owner)
            losing = sum(1 for p in pods if _ready(p))
            if losing and available - losing < minimum:
                raise PermanentError(
                    f"refusing to delete {losing} ready pod(s) of {t}: {available} available "
                    f"would fall below the minimum of {minimum} (replicas − maxUnavailable)")
        grace = 0 if params.force else params.grace_period_seconds
        calls = []
        for p in pods:
            body: dict[str, Any] = {"preconditions": {"uid": p["metadata"]["uid"]}}
            if grace is not None:
                body["gracePeriodSeconds"] = grace
            calls.append(f"DELETE {api_path('Pod', t.namespace, p['metadata']['name'])} "
                         f"{_json(body)}")
        names = ", ".join(p["metadata"]["name"] for p in pods) or "none"
        return Intent(action=self.name, noop=not pods, api_calls=calls,
                      description=f"delete pod(s) {names} of {t}" + (" (force)" if params.force
                                                                     else ""),
                      args={**_where(t), "grace_period_seconds": grace,
                            "pods": [{"name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}
                                     for p in pods]})

    async def _named_pod(self, ctx: RunContext, cluster: ClusterApi, t: TargetRef,
                         params: DeletePodParams,
                         belongs: Callable[[dict[str, Any]], Any]) -> list[dict[str, Any]]:
        name = params.pod
        if name is None:
            labels = (ctx.alerts[0].get("labels") or {}) if ctx.alerts else {}
            name = labels.get("pod")
            if not name:
                raise PermanentError(f"{self.name}: no pod given and the alert has no 'pod' label")
        try:
            check_dns1123_subdomain(name, "pod name")
        except ValueError as err:
            raise PermanentError(f"{self.name}: refusing to delete: {err}") from err
        pod = await cluster.read_pod(t.namespace, name)
        if pod is None:
            return []
        if not await belongs(pod):
            raise PermanentError(f"refusing to delete pod {t.namespace}/{name}: it does not "
                                 f"belong to {t}")
        return [pod]

    async def _ownership(self, cluster: ClusterApi, t: TargetRef,
                         owner: dict[str, Any] | None) -> Callable[[dict[str, Any]], Any]:
        rs_cache: dict[str, dict[str, Any] | None] = {}

        async def belongs(pod: dict[str, Any]) -> bool:
            meta = pod.get("metadata") or {}
            if owner is None:
                return bool(meta.get("name") == t.name)
            uid = owner["metadata"]["uid"]
            for ref in meta.get("ownerReferences") or []:
                if not ref.get("controller"):
                    continue
                if ref.get("kind") == t.kind and ref.get("uid") == uid:
                    return True
                if t.kind == "Deployment" and ref.get("kind") == "ReplicaSet":
                    if ref["name"] not in rs_cache:
                        rs_cache[ref["name"]] = await cluster.read_replicaset(t.namespace,
                                                                              ref["name"])
                    rs = rs_cache[ref["name"]]
                    return (rs is not None and rs["metadata"].get("uid") == ref.get("uid")
                            and _controlled_by(rs, uid))
            return False

        return belongs

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        cluster, t = _cluster(ctx), _intent_target(intent, self.KINDS)
        deleted: list[str] = []
        gone: list[str] = []
        for p in intent.args["pods"]:
            name = check_dns1123_subdomain(str(p["name"]), "pod name")
            ok = await cluster.delete_pod(t.namespace, name, uid=p.get("uid"),
                                          grace_period_seconds=intent.args["grace_period_seconds"])
            (deleted if ok else gone).append(name)
        summary = f"deleted pod(s) {', '.join(deleted)} of {t}" if deleted else \
            f"no pod of {t} left to delete"
        if gone:
            summary += f" ({', '.join(gone)} already gone)"
        return ActionResult(summary=summary, details={"deleted": deleted, "already_gone": gone})
