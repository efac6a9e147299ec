"""``KubernetesInspector``: the ClusterInspector port (``remediator.ports.inspect``) on
kubernetes_asyncio, sharing the ``ApiClient`` (and its timeout) of a ``KubernetesCluster``.

Read-only: events (``fieldSelector`` on the involved object), nodes, PodDisruptionBudgets
(``policy/v1``) and the previous container's log (``previous=true&tailLines=N``).
Errors are mapped as the cluster adapter maps them (``map_api_error``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from remediator.adapters.kubernetes import KubernetesCluster, map_api_error
from remediator.errors import PermanentError, TemporaryError
from remediator.ports.cluster import KubeObject


class KubernetesInspector:
    def __init__(self, cluster: KubernetesCluster) -> None:
        self.timeout = cluster.timeout
        self.core = cluster.core
        self.policy = client.PolicyV1Api(cluster.api_client)

    async def _body(self, what: str, method: Callable[..., Awaitable[Any]], *args: Any,
                    **kwargs: Any) -> tuple[int, bytes]:
        """The status and body of ``method(*args, **kwargs)``; an error mapped."""
        try:
            response = await method(*args, _preload_content=False,
                                    _request_timeout=self.timeout, **kwargs)
            try:
                body = await response.read()
            finally:
                response.release()
        except ApiException as err:
            raise map_api_error(err, what) from err
        except TimeoutError as err:
            raise TemporaryError(f"{what}: no answer within {self.timeout:g}s") from err
        except aiohttp.ClientError as err:
            raise TemporaryError(f"{what}: cannot reach the API server: {err}") from err
        status = int(response.status)
        if not 200 <= status <= 299 and status != 404:
            error = ApiException(status=status, reason=response.reason)
            error.body = body.decode("utf-8", "replace")
            error.headers = response.headers
            raise map_api_error(error, what) from error
        return status, body

    async def _json(self, what: str, method: Callable[..., Awaitable[Any]], *args: Any,
                    **kwargs: Any) -> Any:
        status, body = await self._body(what, method, *args, **kwargs)
        if status == 404:
            return None
        try:
            return json.loads(body) if body else None
        except ValueError as err:
            raise PermanentError(f"{what}: a body that is not JSON: {body[:200]!r}") from err

    async def list_events(self, namespace: str, kind: str, name: str) -> list[KubeObject]:
        listing = await self._json(
            f"list the Events of {kind} {namespace}/{name}", self.core.list_namespaced_event,
            namespace, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}")
        return list((listing or {}).get("items") or [])

    async def read_node(self, name: str) -> KubeObject | None:
        node: KubeObject | None = await self._json(f"get Node {name}", self.core.read_node, name)
        return node

    async def list_pdbs(self, namespace: str) -> list[KubeObject]:
        listing = await self._json(f"list PodDisruptionBudgets in {namespace}",
                                   self.policy.list_namespaced_pod_disruption_budget, namespace)
        return list((listing or {}).get("items") or [])

    async def previous_log_tail(self, namespace: str, pod: str, container: str,
                                lines: int = 1) -> str | None:
        what = f"read the previous log of {namespace}/{pod} ({container})"
        try:
            status, body = await self._body(what, self.core.read_namespaced_pod_log, pod,
                                            namespace, container=container, previous=True,
                                            tail_lines=lines)
        except PermanentError as err:
            if "previous terminated container" in str(err):   # no previous run: not an error
                return None
            raise
        if status == 404:
            return None
        return body.decode("utf-8", "replace") or None
