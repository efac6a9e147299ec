"""``KubernetesCluster``: the ClusterApi port (``remediator.ports.cluster``) on kubernetes_asyncio.

One shared ``ApiClient`` per cluster; every request carries a timeout. Requests go
through ``ApiClient.call_api`` (kubeconfig or in-cluster credentials, the bearer
token's refresh, TLS, path quoting), to the REST paths below: the generated API
classes would only fill in the same paths, and ``CoreV1Api`` alone is 38,000 lines
of Python, 2.4 MB of the daemon's memory for the twelve endpoints it uses. Objects
come back as plain JSON dicts (camelCase, as the API sends them) so the actions
can compare and patch them like kubectl does. Errors are mapped once, here:

    5xx, 429, 409, 410, timeouts, connection errors  → TemporaryError
    400, 401, 403, 404, 422 and other 4xx            → PermanentError

each naming the object and quoting the server's message, with the cause chained.
Not here: what an action decides (``remediator.actions.kubernetes``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from remediator.adapters import k8s_lazy
from remediator.errors import PermanentError, TemporaryError
from remediator.model.incident import TargetRef
from remediator.ports.cluster import (
    WORKLOADS,
    Eviction,
    KubeObject,
    RolloutStatus,
    TargetContext,
    api_path,
    eviction_body,
    selector_string,
)

k8s_lazy.install()     # before kubernetes_asyncio is first imported: then only what is used is

from kubernetes_asyncio import client, config  # noqa: E402
from kubernetes_asyncio.client.exceptions import ApiException  # noqa: E402
from kubernetes_asyncio.config.config_exception import ConfigException  # noqa: E402

Obj = KubeObject
RECENT_EVENTS = 20

#: the endpoints used (``{x}`` is filled in, quoted, by ``ApiClient.call_api``); an
#: object's path is ``api_path``'s, which also names it in an Intent's ``api_calls``
REPLICASETS = api_path("ReplicaSet", "{namespace}")
REPLICASET = api_path("ReplicaSet", "{namespace}", "{name}")
CONTROLLER_REVISIONS = "/apis/apps/v1/namespaces/{namespace}/controllerrevisions"
HPAS = "/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers"
PODS = api_path("Pod", "{namespace}")
POD = api_path("Pod", "{namespace}", "{name}")
POD_LOG = api_path("Pod", "{namespace}", "{name}", "log")
POD_EVICTION = api_path("Pod", "{namespace}", "{name}", "eviction")
ALL_PODS = "/api/v1/pods"
EVENTS = "/api/v1/namespaces/{namespace}/events"
NODES = api_path("Node", "")
NODE = api_path("Node", "", "{name}")
NETWORK_POLICIES = api_path("NetworkPolicy", "{namespace}")
NETWORK_POLICY = api_path("NetworkPolicy", "{namespace}", "{name}")
ALL_NETWORK_POLICIES = "/apis/networking.k8s.io/v1/networkpolicies"
PDBS = "/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets"
VERSION = "/version"


def _server_message(err: ApiException) -> str:
    try:
        body = json.loads(err.body or b"")
        return str(body.get("message") or err.reason)
    except (TypeError, ValueError, AttributeError):
        return str(err.body or err.reason or "no message")


def map_api_error(err: ApiException, what: str) -> TemporaryError | PermanentError:
    status = int(err.status or 0)
    text = f"{what}: HTTP {status} {err.reason or ''}".rstrip() + f": {_server_message(err)}"
    if status == 409:
        return TemporaryError(f"{text} (conflict, retry)")
    if status in (410, 429) or status >= 500 or status == 0:
        headers: Any = err.headers or {}
        retry_after = headers.get("Retry-After")
        delay = float(retry_after) if retry_after and retry_after.isdigit() else None
        return TemporaryError(text, delay=delay)
    return PermanentError(text)


def _without_nulls(obj: dict[str, Any]) -> dict[str, Any]:
    if None in obj.values():
        return {k: v for k, v in obj.items() if v is not None}
    return obj


def _parse(body: bytes) -> Any:
    """The JSON body as dicts, null fields left out, as the generated models leave them
    out: kubectl compares typed objects, where null and absent are one (a Deployment's
    template may say ``creationTimestamp: null``, its ReplicaSet's nothing)."""
    if b"null" not in body:
        return json.loads(body)
    return json.loads(body, object_hook=_without_nulls)


def status_of(err: Exception) -> int | None:
    """The HTTP status of the ApiException behind a mapped error."""
    cause = err.__cause__
    return int(cause.status or 0) if isinstance(cause, ApiException) else None


def _items(listing: Obj | None) -> list[Obj]:
    return list((listing or {}).get("items") or [])


def _replicas(scale: Obj | None) -> int:
    return int(((scale or {}).get("spec") or {}).get("replicas") or 0)


def _may_use_an_env_proxy(host: str) -> bool:
    try:
        get_env_proxy_for_url(URL(host))
    except LookupError:                        # none, or NO_PROXY says so
        return False
    except ValueError:                         # an odd host: let aiohttp judge each time
        return True
    return True


def _look_at_the_environment_once(api_client: Any) -> None:
    """kubernetes_asyncio's aiohttp session trusts the environment, which sends every
    request through two thread hops (the proxy variables, and ~/.netrc for the API
    host): about half the client CPU of a call. The answers do not change while the
    daemon runs: when no proxy variable applies to the API server, the session stops
    asking. (.netrc Basic auth is no way into a Kubernetes API server: gone since
    1.19, and aiohttp refuses it next to a bearer token.) With a proxy variable that
    applies, nothing changes."""
    session = getattr(getattr(api_client, "rest_client", None), "pool_manager", None)
    if not (isinstance(session, aiohttp.ClientSession) and session.trust_env
            and "_trust_env" in session.ATTRS):
        return
    cfg = api_client.configuration
    if not cfg.proxy and _may_use_an_env_proxy(cfg.host):   # (an explicit proxy: no lookup)
        return
    session._trust_env = False


class KubernetesCluster:
    """The cluster, through one kubernetes_asyncio ``ApiClient``.

    Every request goes through ``ApiClient.call_api`` (where the bearer token is
    refreshed) with ``_preload_content=False``: the body is parsed once with
    ``json.loads`` into the dict the API sent. The generated methods' default would
    deserialize it into generated models and serialize those back to a dict: two full
    conversions per call, and an import of every model class involved.
    """

    def __init__(self, api_client: Any, *, timeout: float = 10.0) -> None:
        self.api_client = api_client
        self.timeout = timeout

    def endpoint(self, method: str, path: str, **path_params: str
                 ) -> Callable[..., Awaitable[Any]]:
        """A request to ``path`` for ``call``: ``send(body=None, *, query=(),
        _content_type=None, **call_api_options)``, as a generated API method sends it
        (``Accept: application/json``; PATCH says its ``Content-Type``)."""
        api_client = self.api_client

        async def send(body: Any = None, *, query: Iterable[tuple[str, Any]] = (),
                       _content_type: str | None = None, **options: Any) -> Any:
            headers = {"Accept": "application/json"}
            if _content_type is not None:
                headers["Content-Type"] = _content_type
            return await api_client.call_api(
                path, method, path_params, list(query), headers, body=body,
                auth_settings=["BearerToken"], _return_http_data_only=True, **options)
        return send

    @classmethod
    async def connect(cls, *, kubeconfig: str | None = None, context: str | None = None,
                      in_cluster: bool | None = None,
                      request_timeout: float = 10.0) -> KubernetesCluster:
        """In-cluster config (service account) or a kubeconfig; ``in_cluster=None`` picks
        in-cluster when running in a pod and no kubeconfig is given."""
        cfg = client.Configuration()
        if in_cluster is None:
            in_cluster = kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            else:
                await config.load_kube_config(config_file=kubeconfig, context=context,
                                              client_configuration=cfg, persist_config=False)
        except (ConfigException, OSError, KeyError, ValueError) as err:
            where = "in-cluster service account" if in_cluster else (kubeconfig or "~/.kube/config")
            raise PermanentError(f"cannot load Kubernetes configuration from {where}: {err}") \
                from err
        api_client = client.ApiClient(cfg)
        _look_at_the_environment_once(api_client)
        return cls(api_client, timeout=request_timeout)

    async def close(self) -> None:
        await self.api_client.close()

    async def call(self, what: str, method: Callable[..., Awaitable[Any]], *args: Any,
                   **kwargs: Any) -> Any:
        """``method(*args, **kwargs)``'s JSON body; an error mapped by ``map_api_error``
        (also for the adapters sharing this client, ``k8s_inspect``)."""
        body, status = await self._body(what, method, *args, **kwargs)
        try:
            return _parse(body) if body else None
        except ValueError as err:
            raise PermanentError(f"{what}: HTTP {status} with a body that is not "
                                 f"JSON: {body[:200]!r}") from err

    async def _body(self, what: str, method: Callable[..., Awaitable[Any]], *args: Any,
                    **kwargs: Any) -> tuple[bytes, int]:
        """``method(*args, **kwargs)``'s raw body and status (2xx only)."""
        try:
            response = await method(*args, _preload_content=False,
                                    _request_timeout=self.timeout, **kwargs)
            try:
                body = await response.read()
            finally:
                response.release()       # closes the connection if the body was not read
        except ApiException as err:
            raise map_api_error(err, what) from err
        except TimeoutError as err:
            raise TemporaryError(f"{what}: no answer within {self.timeout:g}s") from err
        except aiohttp.ClientError as err:
            raise TemporaryError(f"{what}: cannot reach the API server: {err}") from err
        if not 200 <= response.status <= 299:
            # what the REST layer raises when it reads the body itself
            error = ApiException(status=response.status, reason=response.reason)
            error.body = body.decode("utf-8", "replace")
            error.headers = response.headers
            raise map_api_error(error, what) from error
        return body, response.status

    async def _read_or_none(self, what: str, method: Callable[..., Awaitable[Any]]
                            ) -> Obj | None:
        try:
            obj: Obj = await self.call(what, method)
        except PermanentError as err:
            if status_of(err) == 404:
                return None
            raise
        return obj

    def _workload(self, method: str, target: TargetRef, subresource: str = ""
                  ) -> Callable[..., Awaitable[Any]]:
        if target.kind not in WORKLOADS:
            raise PermanentError(
                f"unsupported kind {target.kind!r} (expected one of {', '.join(WORKLOADS)})")
        return self.endpoint(method, api_path(target.kind, "{namespace}", "{name}", subresource),
                             namespace=target.namespace, name=target.name)

    # --- workloads ----------------------------------------------------------------------

    async def read_workload(self, target: TargetRef) -> Obj:
        obj: Obj = await self.call(f"get {target}", self._workload("GET", target))
        return obj

    async def patch_workload(self, target: TargetRef, patch: Obj | list[Any], *,
                             content_type: str) -> Obj:
        obj: Obj = await self.call(f"patch {target}", self._workload("PATCH", target), patch,
                                    _content_type=content_type)
        return obj

    async def read_scale(self, target: TargetRef) -> int:
        scale = await self.call(f"get the scale of {target}",
                                 self._workload("GET", target, "scale"))
        return _replicas(scale)

    async def patch_scale(self, target: TargetRef, replicas: int) -> int:
        scale = await self.call(f"scale {target} to {replicas}",
                                 self._workload("PATCH", target, "scale"),
                                 {"spec": {"replicas": replicas}},
                                 _content_type="application/merge-patch+json")
        return _replicas(scale)

    async def list_hpas(self, namespace: str) -> list[Obj]:
        return _items(await self.call(
            f"list HorizontalPodAutoscalers in {namespace}",
            self.endpoint("GET", HPAS, namespace=namespace)))

    async def list_replicasets(self, namespace: str, selector: str) -> list[Obj]:
        return _items(await self.call(
            f"list ReplicaSets in {namespace} ({selector})",
            self.endpoint("GET", REPLICASETS, namespace=namespace),
            query=[("labelSelector", selector)]))

    async def read_replicaset(self, namespace: str, name: str) -> Obj | None:
        """The ReplicaSet, or None if it does not exist."""
        return await self._read_or_none(
            f"get ReplicaSet {namespace}/{name}",
            self.endpoint("GET", REPLICASET, namespace=namespace, name=name))

    async def list_controller_revisions(self, namespace: str, selector: str) -> list[Obj]:
        return _items(await self.call(
            f"list ControllerRevisions in {namespace} ({selector})",
            self.endpoint("GET", CONTROLLER_REVISIONS, namespace=namespace),
            query=[("labelSelector", selector)]))

    # --- pods and events ----------------------------------------------------------------

    async def list_pods(self, namespace: str, selector: str) -> list[Obj]:
        return _items(await self.call(
            f"list Pods in {namespace} ({selector})",
            self.endpoint("GET", PODS, namespace=namespace),
            query=[("labelSelector", selector)]))

    async def read_pod(self, namespace: str, name: str) -> Obj | None:
        """The pod, or None if it does not exist."""
        return await self._read_or_none(
            f"get Pod {namespace}/{name}", self.endpoint("GET", POD, namespace=namespace,
                                                          name=name))

    async def delete_pod(self, namespace: str, name: str, *, uid: str | None = None,
                         grace_period_seconds: int | None = None) -> bool:
        """Delete a pod (only the one with ``uid``, if given). False if it was already gone."""
        body: Obj = {}                                    # a DeleteOptions
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.call(f"delete Pod {namespace}/{name}",
                            self.endpoint("DELETE", POD, namespace=namespace, name=name), body)
        except (PermanentError, TemporaryError) as err:
            cause = err.__cause__
            if status_of(err) == 404 or (status_of(err) == 409 and isinstance(cause, ApiException)
                                       and "Precondition failed" in _server_message(cause)):
                return False
            raise
        return True

    # --- nodes and evictions -------------------------------------------------------------

    async def read_node(self, name: str) -> Obj:
        obj: Obj = await self.call(f"get Node {name}", self.endpoint("GET", NODE, name=name))
        return obj

    async def list_nodes(self) -> list[Obj]:
        return _items(await self.call("list Nodes", self.endpoint("GET", NODES)))

    async def patch_node(self, name: str, patch: Obj) -> Obj:
        obj: Obj = await self.call(f"patch Node {name}", self.endpoint("PATCH", NODE, name=name),
                                    patch, _content_type="application/strategic-merge-patch+json")
        return obj

    async def list_pods_on_node(self, node: str) -> list[Obj]:
        return _items(await self.call(
            f"list Pods on Node {node}", self.endpoint("GET", ALL_PODS),
            query=[("fieldSelector", f"spec.nodeName={node}")]))

    async def evict_pod(self, namespace: str, name: str) -> Eviction:
        try:
            await self.call(f"evict Pod {namespace}/{name}",
                            self.endpoint("POST", POD_EVICTION, namespace=namespace, name=name),
                            eviction_body(namespace, name))
        except (PermanentError, TemporaryError) as err:
            if status_of(err) == 404:
                return Eviction("gone")
            if status_of(err) == 429:
                cause = err.__cause__
                assert isinstance(cause, ApiException)
                return Eviction("blocked", _eviction_message(cause))
            raise
        return Eviction("evicted")

    # --- isolation -------------------------------------------------------------------

    async def list_all_pods(self, selector: str) -> list[Obj]:
        return _items(await self.call(f"list Pods ({selector})", self.endpoint("GET", ALL_PODS),
                                      query=[("labelSelector", selector)]))

    async def patch_pod(self, namespace: str, name: str, patch: Obj) -> Obj | None:
        try:
            obj: Obj = await self.call(
                f"patch Pod {namespace}/{name}",
                self.endpoint("PATCH", POD, namespace=namespace, name=name), patch,
                _content_type="application/merge-patch+json")
        except PermanentError as err:
            if status_of(err) == 404:
                return None
            raise
        return obj

    async def create_network_policy(self, namespace: str, body: Obj) -> bool:
        name = (body.get("metadata") or {}).get("name")
        try:
            await self.call(f"create NetworkPolicy {namespace}/{name}",
                            self.endpoint("POST", NETWORK_POLICIES, namespace=namespace), body)
        except TemporaryError as err:
            if status_of(err) == 409:
                return False                     # AlreadyExists: made before a crash
            raise
        return True

    async def list_network_policies(self, selector: str) -> list[Obj]:
        return _items(await self.call(
            f"list NetworkPolicies ({selector})", self.endpoint("GET", ALL_NETWORK_POLICIES),
            query=[("labelSelector", selector)]))

    async def delete_network_policy(self, namespace: str, name: str) -> bool:
        try:
            await self.call(f"delete NetworkPolicy {namespace}/{name}",
                            self.endpoint("DELETE", NETWORK_POLICY, namespace=namespace, name=name))
        except PermanentError as err:
            if status_of(err) == 404:
                return False
            raise
        return True

    async def list_events(self, namespace: str) -> list[Obj]:
        return _items(await self.call(f"list Events in {namespace}",
                                      self.endpoint("GET", EVENTS, namespace=namespace)))

    async def read_pod_log(self, namespace: str, name: str, *, container: str | None = None,
                           previous: bool = False, tail_lines: int | None = None,
                           limit_bytes: int | None = None) -> str | None:
        """``kubectl logs [--previous] --tail N --limit-bytes B``: the text, or None when
        the pod is gone or (``previous``) has no terminated container."""
        query: list[tuple[str, Any]] = [
            (key, value) for key, value in (("container", container), ("limitBytes", limit_bytes),
                                            ("previous", previous), ("tailLines", tail_lines))
            if value is not None]
        what = f"read the {'previous ' if previous else ''}log of Pod {namespace}/{name}" + \
            (f" container {container}" if container else "")
        try:
            body, _ = await self._body(
                what, self.endpoint("GET", POD_LOG, namespace=namespace, name=name), query=query)
        except PermanentError as err:
            if status_of(err) == 404 or (previous and status_of(err) == 400):
                return None
            raise
        return body.decode("utf-8", "replace")

    async def object_events(self, namespace: str, kind: str, name: str) -> list[str]:
        """The events of one object, oldest first, as lines (``kubectl describe``'s)."""
        events = _items(await self.call(
            f"list Events of {kind} {namespace}/{name}",
            self.endpoint("GET", EVENTS, namespace=namespace),
            query=[("fieldSelector", f"involvedObject.kind={kind},involvedObject.name={name}")]))
        events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return [_event_line(e) for e in events]

    # --- the ClusterApi port ------------------------------------------------------------

    async def rollout_status(self, target: TargetRef) -> RolloutStatus:
        """kubectl rollout status, one evaluation (no watching)."""
        return rollout_verdict(await self.read_workload(target))

    async def describe(self, target: TargetRef) -> TargetContext:
        """Recent events of the target, its ReplicaSets and pods; the pods' restarts."""
        if target.kind == "Pod":
            pod = await self.read_pod(target.namespace, target.name)
            pods = [pod] if pod else []
        else:
            obj = await self.read_workload(target)
            pods = await self.list_pods(target.namespace,
                                        selector_string((obj.get("spec") or {}).get("selector")))
        involved = {(target.kind, target.name)}
        for pod in pods:
            involved.add(("Pod", pod["metadata"]["name"]))
            for ref in pod["metadata"].get("ownerReferences") or []:
                involved.add((ref["kind"], ref["name"]))
        events = [e for e in await self.list_events(target.namespace)
                  if ((e.get("involvedObject") or {}).get("kind"),
                      (e.get("involvedObject") or {}).get("name")) in involved]
        events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return TargetContext(events=[_event_line(e) for e in events[-RECENT_EVENTS:]],
                             pods=[_pod_summary(p) for p in pods])


def _eviction_message(err: ApiException) -> str:
    """The server's message and the PodDisruptionBudget's cause, in words."""
    try:
        body = json.loads(err.body or b"")
        causes = [str(c.get("message")) for c in (body.get("details") or {}).get("causes") or []
                  if c.get("message")]
    except (TypeError, ValueError, AttributeError):
        causes = []
    return "; ".join([_server_message(err), *causes])


def _event_line(e: Obj) -> str:
    obj = e.get("involvedObject") or {}
    count = e.get("count") or 1
    when = e.get("lastTimestamp") or e.get("eventTime") or ""
    return (f"{when} {e.get('type', 'Normal')} {e.get('reason', '')} "
            f"{obj.get('kind')}/{obj.get('name')}: {e.get('message', '')}"
            + (f" (x{count})" if count > 1 else ""))


def _pod_summary(pod: Obj) -> Obj:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    reason = None
    for cs in containers:
        state, last = cs.get("state") or {}, cs.get("lastState") or {}
        reason = ((state.get("waiting") or {}).get("reason")
                  or (state.get("terminated") or {}).get("reason")
                  or (last.get("terminated") or {}).get("reason") or reason)
    return {"name": pod["metadata"]["name"], "phase": status.get("phase"),
            "ready": bool(containers) and all(cs.get("ready") for cs in containers),
            "restarts": sum(int(cs.get("restartCount") or 0) for cs in containers),
            "reason": reason}


def rollout_verdict(obj: Obj) -> RolloutStatus:
    """kubectl's rollout-status algorithm (rollout_status.go), for one object."""
    kind, meta = obj.get("kind"), obj.get("metadata") or {}
    if kind == "Deployment":
        return _deployment_verdict(obj)
    strategy = (obj.get("spec") or {}).get("updateStrategy") or {}
    if (kind in ("StatefulSet", "DaemonSet")
            and strategy.get("type", "RollingUpdate") != "RollingUpdate"):
        raise PermanentError(f"rollout status is only available for RollingUpdate strategy type "
                             f"({kind} {meta.get('namespace')}/{meta.get('name')})")
    if kind == "DaemonSet":
        return _daemonset_verdict(obj)
    if kind == "StatefulSet":
        return _statefulset_verdict(obj)
    raise PermanentError(f"no rollout status for kind {kind!r}")


def _generations(obj: Obj) -> tuple[Any, int, int]:
    """(name, metadata.generation, status.observedGeneration)."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    return (meta.get("name"), int(meta.get("generation") or 0),
            int(status.get("observedGeneration") or 0))


def _waiting(message: str) -> RolloutStatus:
    return RolloutStatus(done=False, failed=False, message=message)


def _deployment_verdict(obj: Obj) -> RolloutStatus:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    name, generation, observed = _generations(obj)
    if generation > observed:
        return _waiting("Waiting for deployment spec update to be observed...")
    for cond in status.get("conditions") or []:
        if (cond.get("type") == "Progressing"
                and cond.get("reason") == "ProgressDeadlineExceeded"):
            return RolloutStatus(False, True,
                                 f'deployment "{name}" exceeded its progress deadline')
    want = spec.get("replicas")
    updated = int(status.get("updatedReplicas") or 0)
    replicas = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if want is not None and updated < want:
        return _waiting(f'Waiting for deployment "{name}" rollout to finish: {updated} out of '
                        f"{want} new replicas have been updated...")
    if replicas > updated:
        return _waiting(f'Waiting for deployment "{name}" rollout to finish: '
                        f"{replicas - updated} old replicas are pending termination...")
    if available < updated:
        return _waiting(f'Waiting for deployment "{name}" rollout to finish: {available} of '
                        f"{updated} updated replicas are available...")
    return RolloutStatus(True, False, f'deployment "{name}" successfully rolled out')


def _daemonset_verdict(obj: Obj) -> RolloutStatus:
    status = obj.get("status") or {}
    name, generation, observed = _generations(obj)
    if generation > observed:
        return _waiting("Waiting for daemon set spec update to be observed...")
    desired = int(status.get("desiredNumberScheduled") or 0)
    updated = int(status.get("updatedNumberScheduled") or 0)
    available = int(status.get("numberAvailable") or 0)
    if updated < desired:
        return _waiting(f'Waiting for daemon set "{name}" rollout to finish: {updated} out of '
                        f"{desired} new pods have been updated...")
    if available < desired:
        return _waiting(f'Waiting for daemon set "{name}" rollout to finish: {available} of '
                        f"{desired} updated pods are available...")
    return RolloutStatus(True, False, f'daemon set "{name}" successfully rolled out')


def _statefulset_verdict(obj: Obj) -> RolloutStatus:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    _, generation, observed = _generations(obj)
    if observed == 0 or generation > observed:
        return _waiting("Waiting for statefulset spec update to be observed...")
    want = spec.get("replicas")
    ready = int(status.get("readyReplicas") or 0)
    if want is not None and ready < want:
        return _waiting(f"Waiting for {want - ready} pods to be ready...")
    strategy = spec.get("updateStrategy") or {}
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    if want is not None and partition > 0:
        if updated < want - partition:
            return _waiting(f"Waiting for partitioned roll out to finish: {updated} out of "
                            f"{want - partition} new pods have been updated...")
        return RolloutStatus(True, False, f"partitioned roll out complete: {updated} new pods "
                             "have been updated...")
    if status.get("updateRevision") != status.get("currentRevision"):
        return _waiting(f"waiting for statefulset rolling update to complete {updated} pods at "
                        f"revision {status.get('updateRevision')}...")
    current = int(status.get("currentReplicas") or 0)
    return RolloutStatus(True, False, f"statefulset rolling update complete {current} pods at "
                         f"revision {status.get('currentRevision')}...")
