"""The read-only cluster calls diagnosis makes beyond ``ClusterApi``: events of one
object, a node, the PodDisruptionBudgets of a namespace, and the last lines of a
container's previous run. Implemented by ``remediator.adapters.k8s_inspect``.

Every method raises only ``TemporaryError`` or ``PermanentError``.
"""

from __future__ import annotations

from typing import Protocol

from remediator.ports.cluster import KubeObject

#: (API group, resource, verb) of the calls a ClusterInspector makes, for the RBAC Role
#: (diagnosis also uses ClusterApi's reads: workloads, ReplicaSets, pods, HPAs)
API_PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    ("", "events", "list"), ("", "pods/log", "get"), ("policy", "poddisruptionbudgets", "list"),
)
#: not granted by the shipped Role (no nodes at all, by policy): without it, ``read_node``
#: answers 403 and the diagnosis names the node it could not read
OPTIONAL_PERMISSIONS: tuple[tuple[str, str, str], ...] = (("", "nodes", "get"),)


class ClusterInspector(Protocol):
    async def list_events(self, namespace: str, kind: str, name: str) -> list[KubeObject]:
        """Events whose involvedObject is ``kind``/``name`` (a fieldSelector)."""
        ...

    async def read_node(self, name: str) -> KubeObject | None:
        """The node, or None if it does not exist."""
        ...

    async def list_pdbs(self, namespace: str) -> list[KubeObject]:
        """The PodDisruptionBudgets (policy/v1) of ``namespace``."""
        ...

    async def previous_log_tail(self, namespace: str, pod: str, container: str,
                                lines: int = 1) -> str | None:
        """The last ``lines`` lines of the previous run of the container (None: no
        previous run, or no log)."""
        ...
