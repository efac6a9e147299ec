"""One incident run's state and primitives, shared by the stages of the ladder.

``RunDeps`` is what the engine lends a run (the store, the clock, the guards, the
ports, …): a fixed bundle handed down, never the engine itself. ``Run`` holds the
incident being worked on (its view, its playbook, the current step's deadline) and
the primitives every stage uses: an interruptible ``wait``, the firing count, the
template context and the ``RunContext`` handed to an action.

A wait ends early when the incident is woken (a resolved alert, an approval, a lease
lost, shutdown); it raises ``RunInterrupted`` for shutdown and a lost lease, and
``StepTimedOut`` when the current step's ``timeout`` passed.

A run that waits for an approval's decision may instead *park* (``Parked``): it ends,
and the engine holds the wait as a ``ParkedApproval`` (a few plain fields and a clock
timer) with no task, coroutine or view, until the decision, the expiry or a wake turns
it back into a run that goes straight back to that approval (``Run.resume``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from remediator.clock import Clock, Timer
from remediator.engine.contract import IncidentSnapshot, RunContext
from remediator.engine.journal import RunJournal
from remediator.engine.outcomes import Interruption, RunInterrupted
from remediator.engine.quarantine import Quarantine
from remediator.engine.routing import template_context
from remediator.engine.slots import RESUMED, Slot
from remediator.engine.supervisor import Supervisor
from remediator.engine.verification import Verifier, spread
from remediator.metrics import Metrics
from remediator.model.incident import ALERTS_IN_VIEW, IncidentView
from remediator.model.playbook import Playbook
from remediator.ports.store import Store
from remediator.settings import EngineSettings

if TYPE_CHECKING:
    from remediator.engine.chain import Chains
    from remediator.engine.contract import Catalogue
    from remediator.engine.guards import Guards
    from remediator.engine.notifications import Notifications
    from remediator.engine.ports import Ports


#: Seconds between looks at the alerts during a ``wait`` action, wakes or not, and the
#: oldest firing count a verification poll reuses (``Run.firing_lately``).
RECHECK = 30.0


class WakeEvent:
    """``asyncio.Event``'s contract (set, clear, is_set, wait) for one incident's wakes,
    in ~100 bytes instead of ~1.1 KB (an Event holds a dict and a 760-byte deque): the
    engine keeps one per open incident, and thousands of them may wait at once.

    ``woken`` counts the wakes (``set``); a run's own timer ends its sleep with
    ``expire``, which is not one."""

    __slots__ = ("_set", "_waiters", "woken")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None    # made on first wait
        self.woken = 0

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self.woken += 1
        self.expire()

    def expire(self) -> None:
        """End the wait, as a timer does: not a wake."""
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for fut in waiters or ():
            if not fut.done():
                fut.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        try:
            await fut
            return True
        finally:
            if self._waiters is not None and fut in self._waiters:
                self._waiters.remove(fut)


class StepTimedOut(Exception):
    """The current step's ``timeout`` passed (action, retries and verification together)."""


class ParkedApproval:
    """A run waiting for the decision on approval ``approval_id`` of step
    ``step_index``, held as data by the engine while nothing happens (10,000 incidents
    waiting held 10,000 tasks, their coroutine chains and views: ~20 KB each)."""

    __slots__ = ("approval_id", "expires_at", "incident_id", "lane", "next_look", "step_index",
                 "timer")

    def __init__(self, incident_id: str, step_index: int, approval_id: str,
                 expires_at: datetime) -> None:
        self.incident_id = incident_id
        self.step_index = step_index
        self.approval_id = approval_id
        self.expires_at = expires_at
        self.lane = RESUMED                  # the slot lane the run worked in
        self.next_look = 0.0                 # seconds from parking to the next look
        self.timer: Timer | None = None      # … set once the run's task is over

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Parked(Exception):
    """Raised by a run that parks: the engine holds ``parked`` and looks again after
    ``delay`` seconds (or when the incident is woken)."""

    def __init__(self, parked: ParkedApproval, delay: float) -> None:
        super().__init__(parked.incident_id)
        self.parked = parked
        parked.next_look = delay


@dataclass(frozen=True)
class RunDeps:
    """What an incident run may use. Built once by the engine."""

    store: Store
    clock: Clock
    metrics: Metrics
    settings: EngineSettings
    playbooks: Mapping[str, Playbook]
    catalogue: Catalogue
    ports: Ports
    guards: Guards
    approvers: tuple[str, ...]                  # who may approve when a step names none
    verifier: Verifier
    notifications: Notifications
    quarantine: Quarantine                      # isolation undone when an incident closes
    give_way: Callable[[], Awaitable[None]]     # the intake goes first (see IntakeGate)
    stopping: Callable[[], bool]
    lost: Callable[[str], bool]                  # this replica lost the incident's lease
    chains: Chains | None = None                 # on-call chains (escalation policies)
    tasks: Supervisor | None = None              # background work of a run (model summary)


class Run:
    """The incident being worked on, and the primitives the stages share."""

    __slots__ = ("_alerts_shed", "_firing_seen", "deadline", "deps", "diagnosis", "id",
                 "journal", "pb", "resume", "slot", "view", "wake")

    def __init__(self, deps: RunDeps, incident_id: str, wake: WakeEvent,
                 slot: Slot | None = None, resume: ParkedApproval | None = None) -> None:
        self.deps = deps
        self.id = incident_id
        self.wake = wake
        self.slot = slot
        self.view: IncidentView
        self.pb: Playbook
        self.journal = RunJournal(incident_id, deps.store, deps.clock, deps.notifications,
                                  deps.give_way)
        self.deadline: datetime | None = None        # the current step's timeout
        self.diagnosis: dict[str, Any] | None = None  # made on opening, for the first step
        self._alerts_shed = False       # the view keeps only its first alert (see wait)
        self.resume = resume            # the approval this run parked on, to go back to
        # the last firing count read: (count, wakes counted before the read, read at)
        self._firing_seen: tuple[int, int, float] | None = None

    def resumes(self, step_index: int) -> ParkedApproval | None:
        """The parked approval wait of step ``step_index`` this run goes back to, once
        (its diagnosis and guards ran before it parked)."""
        resume = self.resume
        if resume is None or resume.step_index != step_index:
            return None
        self.resume = None
        return resume

    def can_park(self) -> bool:
        """Whether a wait for an approval may end the run and be held as data: the
        engine runs it (in a working slot) and no wake is pending (that would end the
        wait at once)."""
        return self.slot is not None and not self.wake.is_set()

    def take_diagnosis(self) -> dict[str, Any] | None:
        """The diagnosis made when the incident opened, once (the first step reuses it)."""
        record, self.diagnosis = self.diagnosis, None
        return record

    @property
    def clock(self) -> Clock:
        return self.deps.clock

    @property
    def dry_run(self) -> bool:
        return self.view.dry_run or self.deps.settings.dry_run

    def attach(self, view: IncidentView) -> None:
        self.view = view
        self.journal.view = view
        self._alerts_shed = False

    def _shed_alerts(self) -> None:
        """A waiting run keeps only the first of its view's alerts (the templates'
        ``alert``) and none of its timeline (the engine never reads it; actions may,
        through ``incident``): thousands of incidents waiting for approvals or
        verifications then hold one alert each, not up to ``ALERTS_IN_VIEW`` and every
        note so far. An action after the wait reads them again (``run_context``)."""
        if len(self.view.alerts) > 1:
            del self.view.alerts[1:]
            self._alerts_shed = True
        if self.view.timeline:
            self.view.timeline = []
            self._alerts_shed = True

    async def _alerts(self) -> list[dict[str, Any]]:
        if self._alerts_shed:
            fresh = await self.deps.store.get_incident(self.id, alert_limit=ALERTS_IN_VIEW)
            if fresh is not None:
                self.view.alerts = fresh.alerts
                self.view.timeline = fresh.timeline
                self.view.alert_count, self.view.firing_count = (fresh.alert_count,
                                                                 fresh.firing_count)
            self._alerts_shed = False
        return self.view.alerts

    async def firing(self) -> int:
        """How many of the incident's alerts fire, read now."""
        woken, at = self.wake.woken, self.clock.now().timestamp()
        count = await self.deps.store.firing_alert_count(self.id)
        self._firing_seen = (count, woken, at)
        return count

    async def firing_lately(self) -> int:
        """The firing count as last read, if no wake came since and it is under
        ``RECHECK`` seconds old (an age of the incident's own, from half of that); else
        read now (``firing``). An alert's status changes only at intake, which wakes
        its incidents (on PostgreSQL, other replicas' too): a verification polling every
        few seconds need not ask the store each time (5,000 verifying asked 1,000 times
        a second). The age bound covers a lost wake."""
        seen = self._firing_seen
        if seen is not None:
            count, woken, at = seen
            # each incident its own age between RECHECK/2 and RECHECK: incidents opened
            # together (a storm) then spread their reads instead of making them together
            oldest = RECHECK * (0.5 + spread(self.id) / 2)
            if woken == self.wake.woken and self.clock.now().timestamp() - at < oldest:
                return count
        return await self.firing()

    def seconds_left(self) -> float | None:
        """Seconds until the current step's deadline (None: no step deadline)."""
        if self.deadline is None:
            return None
        return (self.deadline - self.clock.now()).total_seconds()

    async def wait(self, seconds: float) -> None:
        """Sleep on the engine's clock; return early when the incident is woken."""
        left = self.seconds_left()
        if left is not None:
            if left <= 0:
                raise StepTimedOut
            seconds = min(seconds, left)
        if self.wake.is_set():
            self.wake.clear()
        else:
            await self._sleep_or_wake(seconds)
        self.wake.clear()
        if self.deps.stopping():
            raise RunInterrupted(Interruption.STOPPING, "shutting down")
        if self.deps.lost(self.id):
            raise RunInterrupted(Interruption.LOST, "another replica took the incident over")
        left = self.seconds_left()
        if left is not None and left <= 0:
            raise StepTimedOut

    async def _sleep_or_wake(self, seconds: float) -> None:
        # No helper task: a timer of the clock sets the wake event the run waits on when
        # the sleep is over (``wait`` clears it afterwards either way). Thousands of
        # incidents waiting for approvals or verifications each hold this.
        wake = self.wake
        timer = self.clock.call_later(seconds, wake.expire)
        if self.slot is not None:
            self.slot.give()                    # waiting is not working
        self._shed_alerts()
        try:
            await wake.wait()
        finally:
            timer.cancel()
            if self.slot is not None:
                await self.slot.take()

    async def wait_unless_resolved(self, seconds: float) -> None:
        """The ``wait`` action: the whole ``seconds`` unless the alerts resolve first
        (then ``RunInterrupted(RESOLVED)``); other wakes do not end it."""
        until = self.clock.now().timestamp() + seconds
        while True:
            left = until - self.clock.now().timestamp()
            if left <= 0:
                return
            # look at the alerts at least every RECHECK seconds too: a wake sent by another
            # replica while this one's LISTEN connection was down is lost
            await self.wait(min(left, RECHECK))
            if await self.firing() == 0:
                raise RunInterrupted(Interruption.RESOLVED, "the alert resolved during a wait")

    def template_context(self) -> dict[str, Any]:
        alert = self.view.alerts[0] if self.view.alerts else {}
        return template_context(alert.get("labels", {}), alert.get("annotations", {}), alert,
                                incident={"id": self.id, "key": self.view.key,
                                          "playbook": self.view.playbook},
                                target=self.view.target)

    async def run_context(self, step_name: str, action: str) -> RunContext:
        """What an action gets: the target, the alerts, the clock, an interruptible wait,
        a journal note, and the ports its spec declares. Never the engine."""
        ports = self.deps.ports
        declared = self.deps.catalogue.get(action).ports
        alerts: Sequence[Mapping[str, Any]] = await self._alerts()
        store = self.deps.store
        return RunContext(
            incident_id=self.id, incident_key=self.view.key, playbook=self.view.playbook,
            step=step_name, target=self.view.target, alerts=list(alerts), clock=self.clock,
            cluster=ports.cluster_for(self.view.target) if "cluster" in declared else None,
            tickets=ports.tickets if "tickets" in declared else None,
            chat=ports.chat if "chat" in declared else None,
            http=ports.http if "http" in declared else None,
            incident=IncidentSnapshot(self.view),     # dumped only if read
            sink_state=lambda sink, key: store.sink_get(self.id, f"{sink}:{key}"),
            wait=self.wait_unless_resolved, note=self.journal.note)
