"""The simulated cluster's object store: typed resources, versions, selectors, watches.

Holds every object as the JSON dict the real API server would return, assigns
``uid``, ``resourceVersion``, ``creationTimestamp`` and ``generation`` (bumped
only when ``spec`` changes, as the real registry does), answers label and field
selectors, and fans changes out to watchers with a bounded history so that a
watch from a recent ``resourceVersion`` replays what it missed.

It knows nothing of HTTP (``api``) or of controllers (``controller``).
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import copy
import itertools
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from remediator.clock import Clock

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    """One API resource, as discovery lists it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    verbs: tuple[str, ...] = ("get", "list", "watch")
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    has_generation: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps``: how the API names the resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


_RW = ("get", "list", "watch", "create", "update", "patch", "delete")
RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, verbs=_RW,
                 short_names=("ns",)),
    ResourceType("", "v1", "nodes", "Node", namespaced=False, verbs=_RW, short_names=("no",),
                 subresources=("status",)),
    ResourceType("", "v1", "pods", "Pod", verbs=_RW, short_names=("po",),
                 subresources=("eviction", "log")),
    ResourceType("", "v1", "events", "Event", verbs=_RW, short_names=("ev",)),
    ResourceType("apps", "v1", "deployments", "Deployment", verbs=_RW, short_names=("deploy",),
                 subresources=("scale", "status"), has_generation=True),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", verbs=_RW, short_names=("rs",),
                 subresources=("scale", "status"), has_generation=True),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", verbs=_RW, short_names=("sts",),
                 subresources=("scale", "status"), has_generation=True),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", verbs=_RW, short_names=("ds",),
                 subresources=("status",), has_generation=True),
    ResourceType("apps", "v1", "controllerrevisions", "ControllerRevision", verbs=_RW),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", verbs=_RW,
                 short_names=("pdb",), subresources=("status",), has_generation=True),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", verbs=_RW,
                 short_names=("netpol",), has_generation=True),
    ResourceType("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
                 verbs=_RW, short_names=("hpa",), subresources=("status",), has_generation=True),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", verbs=_RW),
)


def resource(group: str, plural: str) -> ResourceType | None:
    return next((r for r in RESOURCES if r.group == group and r.plural == plural), None)


def by_kind(kind: str) -> ResourceType:
    return next(r for r in RESOURCES if r.kind == kind)


class ApiError(Exception):
    """An API failure, rendered as a ``Status`` object with ``code``."""

    REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
               405: "MethodNotAllowed", 409: "Conflict", 410: "Expired",
               415: "UnsupportedMediaType",
               422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
               503: "ServiceUnavailable", 504: "Timeout"}

    def __init__(self, code: int, message: str, *, reason: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or self.REASONS.get(code, "Unknown")
        self.details = details or {}

    def status(self) -> Obj:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "details": self.details,
                "code": self.code}


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, f'{rt.qualified} "{name}" not found',
                    details={"name": name, "group": rt.group, "kind": rt.plural})


# --- selectors -----------------------------------------------------------------------------

_SET_TERM = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_terms(selector: str) -> Iterator[str]:
    depth, start = 0, 0
    for i, ch in enumerate(selector):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            yield selector[start:i]
            start = i + 1
    yield selector[start:]


def _label_term(term: str) -> Callable[[dict[str, str]], bool]:
    if m := _SET_TERM.match(term):
        key, op = m.group(1), m.group(2)
        values = {v.strip() for v in m.group(3).split(",")}
        return lambda lb: (lb.get(key) in values) == (op == "in")
    if "!=" in term:
        key, value = (x.strip() for x in term.split("!=", 1))
        return lambda lb: lb.get(key) != value
    if "=" in term:
        key, value = (x.strip() for x in term.replace("==", "=").split("=", 1))
        return lambda lb: lb.get(key) == value
    if term.startswith("!"):
        absent = term[1:].strip()
        return lambda lb: absent not in lb
    return lambda lb: term in lb


def parse_label_selector(selector: str) -> Callable[[dict[str, str]], bool]:
    """A predicate for the API's label-selector syntax (=, ==, !=, in, notin, exists, !key)."""
    checks = [_label_term(t.strip()) for t in _split_terms(selector or "") if t.strip()]
    return lambda labels: all(check(labels) for check in checks)


def _field(obj: Obj, path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def _field_term(term: str, selector: str) -> Callable[[Obj], bool]:
    if "!=" in term:
        key, value = (x.strip() for x in term.split("!=", 1))
        return lambda o: _field(o, key) != value
    if "=" in term:
        key, value = (x.strip() for x in term.replace("==", "=").split("=", 1))
        return lambda o: _field(o, key) == value
    raise ApiError(400, f'invalid field selector "{selector}"')


def parse_field_selector(selector: str) -> Callable[[Obj], bool]:
    """A predicate for field selectors (``metadata.name=x,involvedObject.kind!=Pod``)."""
    checks = [_field_term(t.strip(), selector) for t in (selector or "").split(",") if t.strip()]
    return lambda obj: all(check(obj) for check in checks)


def selector_string(selector: Obj) -> str:
    """A LabelSelector object (matchLabels/matchExpressions) in the string syntax."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr["operator"], expr["key"], expr.get("values") or []
        if op in ("In", "NotIn"):
            terms.append(f"{key} {op.lower()} ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        else:
            terms.append(f"!{key}")
    return ",".join(terms)


# --- the store -----------------------------------------------------------------------------


@dataclass(eq=False)
class Watcher:
    rt: ResourceType
    namespace: str | None
    matches: Callable[[Obj], bool]
    queue: asyncio.Queue[tuple[str, Obj] | None] = field(default_factory=asyncio.Queue)


def rfc3339(clock: Clock) -> str:
    return clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """Objects by (group, plural, namespace, name), with versions and watches."""

    def __init__(self, clock: Clock, *, history: int = 2000) -> None:
        self.clock = clock
        self._objects: dict[tuple[str, str, str, str], Obj] = {}
        # (group, plural) → {(namespace, name): obj}: lists touch one type only
        self._by_type: dict[tuple[str, str], dict[tuple[str, str], Obj]] = \
            collections.defaultdict(dict)
        # controller uid → {key: obj}: what a Deployment or ReplicaSet owns
        self._by_owner: dict[str, dict[tuple[str, str, str, str], Obj]] = \
            collections.defaultdict(dict)
        self._rv = itertools.count(1000)
        self.resource_version = 1000
        self._history: collections.deque[tuple[int, str, ResourceType, Obj]] = (
            collections.deque(maxlen=history))
        self._uids = itertools.count(1)
        self.watchers: set[Watcher] = set()

    def _key(self, rt: ResourceType, namespace: str | None, name: str) -> tuple[str, str, str, str]:
        return (rt.group, rt.plural, namespace if rt.namespaced and namespace else "", name)

    def new_uid(self) -> str:
        return str(uuid.UUID(int=next(self._uids) + (0x5117 << 112)))

    def _bump(self, rt: ResourceType, kind: str, obj: Obj) -> None:
        self.resource_version = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(self.resource_version)
        snapshot = copy.deepcopy(obj)
        self._history.append((self.resource_version, kind, rt, snapshot))
        ns = obj["metadata"].get("namespace")
        for w in list(self.watchers):
            if w.rt == rt and (w.namespace is None or w.namespace == ns) and w.matches(snapshot):
                w.queue.put_nowait((kind, snapshot))

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        try:
            return copy.deepcopy(self._objects[self._key(rt, namespace, name)])
        except KeyError:
            raise not_found(rt, name) from None

    def find(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        obj = self._objects.get(self._key(rt, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, rt: ResourceType, namespace: str | None = None, *, labels: str = "",
             fields: str = "") -> list[Obj]:
        """Copies of the matching objects, by namespace and name."""
        by_labels, by_fields = parse_label_selector(labels), parse_field_selector(fields)
        out = []
        bucket = self._by_type.get((rt.group, rt.plural), {})
        for (ns, _), obj in sorted(bucket.items()):
            if namespace and ns != namespace:
                continue
            if by_labels(obj["metadata"].get("labels") or {}) and by_fields(obj):
                out.append(copy.deepcopy(obj))
        return out

    def owned(self, rt: ResourceType, owner_uid: str) -> builtins.list[Obj]:
        """Copies of the objects of type ``rt`` whose controller is ``owner_uid``."""
        found = self._by_owner.get(owner_uid, {})
        return [copy.deepcopy(obj) for key, obj in sorted(found.items())
                if key[:2] == (rt.group, rt.plural)]

    def _put(self, key: tuple[str, str, str, str], obj: Obj) -> None:
        old = self._objects.get(key)
        if old is not None:
            self._unindex_owner(key, old)
        self._objects[key] = obj
        self._by_type[key[:2]][key[2:]] = obj
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("controller") and ref.get("uid"):
                self._by_owner[ref["uid"]][key] = obj

    def _unindex_owner(self, key: tuple[str, str, str, str], obj: Obj) -> None:
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("uid") in self._by_owner:
                self._by_owner[ref["uid"]].pop(key, None)
                if not self._by_owner[ref["uid"]]:
                    del self._by_owner[ref["uid"]]

    def _drop(self, key: tuple[str, str, str, str]) -> None:
        self._unindex_owner(key, self._objects.pop(key))
        self._by_type[key[:2]].pop(key[2:], None)

    def create(self, rt: ResourceType, namespace: str | None, obj: Obj, *,
               generation: int = 1) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, f"{rt.kind} is invalid: metadata.name: Required value")
            meta["name"] = meta["generateName"] + self.new_uid()[-5:]
        if rt.namespaced:
            if not namespace:
                raise ApiError(400, "the namespace of the object is required")
            if namespace != "default" and not self.find(by_kind("Namespace"), None, namespace) \
                    and rt.kind != "Namespace":
                raise ApiError(404, f'namespaces "{namespace}" not found',
                               details={"name": namespace, "kind": "namespaces"})
            meta["namespace"] = namespace
        key = self._key(rt, namespace, meta["name"])
        if key in self._objects:
            raise ApiError(409, f'{rt.qualified} "{meta["name"]}" already exists',
                           reason="AlreadyExists",
                           details={"name": meta["name"], "kind": rt.plural})
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta.setdefault("uid", self.new_uid())
        meta.setdefault("creationTimestamp", rfc3339(self.clock))
        if rt.has_generation:
            meta["generation"] = generation
        self._put(key, obj)
        self._bump(rt, "ADDED", obj)
        return copy.deepcopy(obj)

    def update(self, rt: ResourceType, obj: Obj, *, check_version: bool = True,
               subresource: str | None = None) -> Obj:
        """Replace an object. ``subresource="status"`` keeps the spec; otherwise status is kept
        for kinds with a status subresource, as the real registry does."""
        obj = copy.deepcopy(obj)
        meta = obj.get("metadata") or {}
        key = self._key(rt, meta.get("namespace"), meta.get("name", ""))
        current = self._objects.get(key)
        if current is None:
            raise not_found(rt, meta.get("name", ""))
        sent_rv = meta.get("resourceVersion")
        if check_version and sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Operation cannot be fulfilled on "
                           f'{rt.qualified} "{meta["name"]}": the object has been modified; '
                           "please apply your changes to the latest version and try again",
                           details={"name": meta["name"], "kind": rt.plural})
        if subresource == "status":
            merged = copy.deepcopy(current)
            merged["status"] = obj.get("status", {})
            obj = merged
        elif "status" in rt.subresources:
            obj["status"] = copy.deepcopy(current.get("status", {}))
        for fixed in ("uid", "creationTimestamp", "namespace", "name"):
            if fixed in current["metadata"]:
                obj["metadata"][fixed] = current["metadata"][fixed]
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if rt.has_generation:
            generation = current["metadata"].get("generation", 1)
            changed = obj.get("spec") != current.get("spec")
            obj["metadata"]["generation"] = generation + 1 if changed else generation
        obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if obj == current:
            return copy.deepcopy(current)
        self._put(key, obj)
        self._bump(rt, "MODIFIED", obj)
        return copy.deepcopy(obj)

    def delete(self, rt: ResourceType, namespace: str | None, name: str, *,
               uid: str | None = None) -> Obj:
        key = self._key(rt, namespace, name)
        current = self._objects.get(key)
        if current is None:
            raise not_found(rt, name)
        if uid and current["metadata"]["uid"] != uid:
            raise ApiError(409, f"Precondition failed: UID in precondition: {uid}, UID in object "
                           f"meta: {current['metadata']['uid']}", details={"name": name,
                                                                          "kind": rt.plural})
        self._drop(key)
        self._bump(rt, "DELETED", current)
        return copy.deepcopy(current)

    def since(self, rt: ResourceType,
              resource_version: int) -> builtins.list[tuple[str, Obj]] | None:
        """Changes to ``rt`` after ``resource_version``, or None when history is too short."""
        full = len(self._history) == self._history.maxlen
        if full and self._history[0][0] > resource_version + 1:
            return None
        return [(kind, copy.deepcopy(obj)) for rv, kind, r, obj in self._history
                if rv > resource_version and r == rt]
