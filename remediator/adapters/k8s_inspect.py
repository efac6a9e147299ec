"""``KubernetesInspector``: the ClusterInspector port (``remediator.ports.inspect``) on
kubernetes_asyncio, sharing the ``ApiClient`` (and its timeout) of a ``KubernetesCluster``.

Read-only: events (``fieldSelector`` on the involved object), nodes, PodDisruptionBudgets
(``policy/v1``) and the previous container's log (``previous=true&tailLines=N``).
Calls and errors go through the cluster adapter (``KubernetesCluster.call``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from remediator.adapters.kubernetes import EVENTS, NODE, PDBS, KubernetesCluster, status_of
from remediator.errors import PermanentError
from remediator.ports.cluster import KubeObject


class KubernetesInspector:
    def __init__(self, cluster: KubernetesCluster) -> None:
        self.cluster = cluster

    async def _json(self, what: str, method: Callable[..., Awaitable[Any]], *args: Any,
                    **kwargs: Any) -> Any:
        """The JSON body, None when the object is not there (404)."""
        try:
            return await self.cluster.call(what, method, *args, **kwargs)
        except PermanentError as err:
            if status_of(err) == 404:
                return None
            raise

    async def list_events(self, namespace: str, kind: str, name: str) -> list[KubeObject]:
        listing = await self._json(
            f"list the Events of {kind} {namespace}/{name}",
            self.cluster.endpoint("GET", EVENTS, namespace=namespace),
            query=[("fieldSelector", f"involvedObject.kind={kind},involvedObject.name={name}")])
        return list((listing or {}).get("items") or [])

    async def read_node(self, name: str) -> KubeObject | None:
        node: KubeObject | None = await self._json(
            f"get Node {name}", self.cluster.endpoint("GET", NODE, name=name))
        return node

    async def list_pdbs(self, namespace: str) -> list[KubeObject]:
        listing = await self._json(f"list PodDisruptionBudgets in {namespace}",
                                   self.cluster.endpoint("GET", PDBS, namespace=namespace))
        return list((listing or {}).get("items") or [])

    async def previous_log_tail(self, namespace: str, pod: str, container: str,
                                lines: int = 1) -> str | None:
        """The last ``lines`` of the previous container (None: no previous run, or gone)."""
        return await self.cluster.read_pod_log(namespace, pod, container=container,
                                               previous=True, tail_lines=lines) or None
