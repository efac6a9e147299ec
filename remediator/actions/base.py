"""What an action is, and what it gets to work with.

An action runs in two phases so that the engine can journal an *intent* before
anything changes and replay it after a crash without acting twice:

* ``plan(ctx, params) -> Intent``: read-only. Computes concrete, idempotent
  arguments (scale *to* 6, restart with this ``restartedAt``, roll back to
  revision 4) and describes the exact API call. Used as-is for dry-run.
* ``apply(ctx, intent) -> ActionResult``: performs the intent. Applying the
  same intent twice has the effect of applying it once.

Both raise only ``TemporaryError`` / ``PermanentError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from remediator.clock import Clock
from remediator.model.incident import TargetRef


class Params(BaseModel):
    """Base of every action's params model: strict, so typos fail at load time."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=Params)


class Intent(BaseModel):
    """What a step is about to do, computed before doing it; journaled verbatim."""

    action: str
    description: str                          # "scale Deployment prod/api from 3 to 6"
    args: dict[str, Any] = Field(default_factory=dict)   # everything apply() needs
    api_calls: list[str] = Field(default_factory=list)   # "PATCH /apis/apps/v1/…/scale {…}"
    noop: bool = False                         # the object is already in the desired state


class ActionResult(BaseModel):
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)


@dataclass
class ActionContext:
    """Everything an action may use. Ports may be None when not configured: an action
    that needs a missing cluster raises ``TemporaryError`` (it may come up), one that
    needs an unconfigured Jira or Slack raises ``PermanentError`` (settings are read
    once at start, so retrying cannot help)."""

    incident_id: str
    incident_key: str
    playbook: str
    step: str
    target: TargetRef | None
    alerts: list[Mapping[str, Any]]            # the incident's alerts: labels, annotations, …
    clock: Clock
    cluster: Any = None                        # remediator.adapters.kubernetes.KubernetesCluster
    tickets: Any = None                        # remediator.notify ticket port
    chat: Any = None                           # remediator.notify chat port
    http: Any = None                           # an aiohttp.ClientSession
    incident: Mapping[str, Any] = field(default_factory=dict)   # IncidentView as dict
    sink_state: Any = None      # read-only: await sink_state(sink, key) -> str | None


class Action(Protocol, Generic[P]):
    name: ClassVar[str]
    params: type[P]

    async def plan(self, ctx: ActionContext, params: P) -> Intent: ...

    async def apply(self, ctx: ActionContext, intent: Intent) -> ActionResult: ...
