"""What an action is, and what it gets to work with: the contract between the engine
and the actions (``remediator.actions`` implements it; the engine never imports them,
it is handed a ``Catalogue``).

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

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from remediator.clock import Clock
from remediator.model.incident import IncidentView, TargetRef
from remediator.ports import ChatApi, ClusterApi, HttpApi, TrackerApi


class Params(BaseModel):
    """Base of every action's params model: strict, so typos fail at load time."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=Params)


class Touched(BaseModel):
    """A namespaced object an intent changes besides its target (a drain's pods)."""

    kind: str
    namespace: str
    name: str


class Intent(BaseModel):
    """What a step is about to do, computed before doing it; journaled verbatim."""

    action: str
    description: str                          # "scale Deployment prod/api from 3 to 6"
    args: dict[str, Any] = Field(default_factory=dict)   # everything apply() needs
    api_calls: list[str] = Field(default_factory=list)   # "PATCH /apis/apps/v1/…/scale {…}"
    noop: bool = False                         # the object is already in the desired state
    # objects beyond the target it changes: the namespace guards check each before the
    # intent is journaled (a Node's drain reaches pods of every namespace)
    touches: list[Touched] = Field(default_factory=list)


class ActionResult(BaseModel):
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)


class IncidentSnapshot(Mapping[str, Any]):
    """``ctx.incident`` as the engine passes it: reads exactly like
    ``view.model_dump(mode="json")``, but each field is dumped on first use only. Most
    actions never look at it, and dumping a whole incident (alerts, steps, timeline) for
    every action was a noticeable share of an incident's CPU. ``view`` is the snapshot
    itself (read-only: the engine's copy)."""

    __slots__ = ("_dumped", "view")

    def __init__(self, view: IncidentView) -> None:
        self.view = view
        self._dumped: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        try:
            return self._dumped[key]
        except KeyError:
            if key not in IncidentView.model_fields:
                raise
        value = self.view.model_dump(mode="json", include={key})[key]
        self._dumped[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        return key in IncidentView.model_fields          # without dumping the field

    def __iter__(self) -> Iterator[str]:
        if len(self._dumped) < len(IncidentView.model_fields):
            full = self.view.model_dump(mode="json")      # the rest at once
            full.update(self._dumped)                      # keep what was handed out
            self._dumped = full
        return iter(self._dumped)

    def __len__(self) -> int:
        return len(IncidentView.model_fields)

    def __repr__(self) -> str:
        return f"IncidentSnapshot({self.view.id!r})"


@dataclass
class RunContext:
    """What a step's action gets: the target, the alerts, the incident as it stands, the
    clock, an interruptible wait, a journal note, and the ports its ``ActionSpec``
    declares (the others are None). Never the engine. A declared port may still be None
    when it is not configured: an action that needs a missing cluster raises
    ``TemporaryError`` (it may come up), one that needs an unconfigured Jira or Slack
    raises ``PermanentError`` (settings are read once at start, so retrying cannot
    help)."""

    incident_id: str
    incident_key: str
    playbook: str
    step: str
    target: TargetRef | None
    alerts: list[Mapping[str, Any]]            # the incident's alerts: labels, annotations, …
    clock: Clock
    cluster: ClusterApi | None = None
    tickets: TrackerApi | None = None
    chat: ChatApi | None = None
    http: HttpApi | None = None
    # The IncidentView as ``model_dump(mode="json")`` (the engine passes an IncidentSnapshot)
    incident: Mapping[str, Any] = field(default_factory=dict)
    sink_state: Any = None      # read-only: await sink_state(sink, key) -> str | None
    # The run's wait: ``await wait(seconds)`` sleeps on the engine's clock and ends early
    # (raising) when the incident's alerts resolve or the daemon stops. None: clock.sleep.
    wait: Callable[[float], Awaitable[None]] | None = None
    # A timeline note in the incident's journal: ``await note(kind, message, **data)``.
    note: Callable[..., Awaitable[None]] | None = None


class Action(Protocol, Generic[P]):
    name: ClassVar[str]
    params: type[P]

    async def plan(self, ctx: RunContext, params: P) -> Intent: ...

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult: ...


PortName = Literal["cluster", "tickets", "chat", "http"]


@dataclass(frozen=True)
class ActionSpec:
    """What the engine and the loader know of an action before running it."""

    name: str
    params: type[Params]
    summary: str
    needs_target: bool = False          # the playbook must declare spec.target
    target_kinds: tuple[str, ...] = ()  # which target kinds it accepts (empty: any)
    mutates_cluster: bool = False       # subject to dry-run, the kill switch, the budget, the lock
    ports: tuple[PortName, ...] = ()    # the ports its RunContext carries
    implementation: str = ""            # "module:ClassName", imported on first use
    # it leaves marks in the cluster that the engine undoes when the incident closes
    # (engine/quarantine.py)
    undone_on_close: bool = False
    # (kind, why not): target kinds it refuses for a reason worth telling the author
    why_not: tuple[tuple[str, str], ...] = ()

    def refusal_of(self, kind: str) -> str | None:
        """Why this action cannot act on a ``kind`` target, when it says why."""
        return next((why for k, why in self.why_not if k == kind), None)


class Catalogue(Protocol):
    """The actions by name, as the engine is handed them."""

    def get(self, name: str) -> ActionSpec:
        """The action's spec; ``KeyError`` naming the known ones when unknown."""
        ...

    def implementation(self, name: str) -> Action[Any]:
        """The action's implementation, shared by every incident."""
        ...
