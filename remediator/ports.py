"""The ports: small Protocols the engine and the actions talk through.

Adapters (``remediator.adapters``) implement them with real client libraries;
tests implement them with fakes or point the real adapters at fake servers.
Nothing here imports a third-party client.

Every method raises only ``TemporaryError`` or ``PermanentError``
(``remediator.errors``), with the underlying exception chained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from remediator.model.incident import TargetRef


@dataclass(frozen=True)
class RolloutStatus:
    """kubectl's rollout-status verdict: done, failed (ProgressDeadlineExceeded), or waiting."""

    done: bool
    failed: bool
    message: str


@dataclass
class TargetContext:
    """What a human wants to see about the target: recent events and pod restarts."""

    events: list[str] = field(default_factory=list)
    # each pod: name, phase, ready, restarts, reason
    pods: list[dict[str, Any]] = field(default_factory=list)


class ClusterApi(Protocol):
    """The subset of Kubernetes that remediator uses, with kubectl's semantics.

    The Kubernetes actions (``remediator.actions.kubernetes``) call further
    methods of the concrete adapter; the engine itself only needs these two.
    """

    async def rollout_status(self, target: TargetRef) -> RolloutStatus: ...

    async def describe(self, target: TargetRef) -> TargetContext: ...


class MetricsApi(Protocol):
    async def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query; returns ``data.result`` (a vector's samples)."""
        ...


class AlertsApi(Protocol):
    """Alertmanager's API, to ask whether an alert is still active."""

    async def is_firing(self, fingerprint: str) -> bool: ...
