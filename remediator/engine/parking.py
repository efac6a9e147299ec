"""Parked waits: runs waiting for an approval's decision, held as data.

A run that would wait for a decision ends instead (``Parked``) and the engine holds its
wait here as a ``ParkedApproval``: a few plain fields and a clock timer, no task,
coroutine or view (10,000 incidents waiting as runs held ~20 KB each). Anything that
changes the wait wakes the incident (``Engine.wake``): a click, a resolved alert, on
PostgreSQL the same from another replica (``Store.watch``); the wait then becomes its
next run's hint (``take`` → ``resume``) and the run goes straight back to the approval.

A look at the decision every ``approvals.POLL_INTERVAL`` backs the wakes up (and sees
the expiry). The waits whose look falls due within ``LOOK_GATHER`` of each other are
looked at together, in batches of up to ``LOOK_BATCH``: two reads for the batch
(``approvals.next_looks``), not two reads per wait. A wait that must go on (decided,
expired, resolved, or the look failed) is woken; the others look again later.

On a store that replicas share the wait keeps its incident's lease (``Leases``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable

from remediator.clock import Clock, Timer
from remediator.engine import approvals
from remediator.engine.run import ParkedApproval
from remediator.engine.slots import RESUMED, FairSlots, Slot
from remediator.engine.supervisor import Supervisor
from remediator.metrics import Metrics
from remediator.ports.store import Store

log = logging.getLogger("remediator.engine")

#: seconds a due look waits for others to come due, to be looked at with them
LOOK_GATHER = 0.25
#: waits looked at in one batch (one read of their approvals, one of their alerts)
LOOK_BATCH = 500


class ParkedWaits:
    def __init__(self, store: Store, clock: Clock, slots: FairSlots, metrics: Metrics,
                 tasks: Supervisor, wake: Callable[[str], None]) -> None:
        self.store = store
        self.clock = clock
        self.slots = slots
        self.metrics = metrics
        self.tasks = tasks
        self.wake = wake
        self.stopping = False
        self._parked: dict[str, ParkedApproval] = {}    # incident → its wait
        self._resume: dict[str, ParkedApproval] = {}    # … woken: its next run's hint
        self._due: list[ParkedApproval] = []            # looks due, being gathered
        self._gathering: Timer | None = None
        self._woken: asyncio.Future[None] | None = None     # for ``Engine.idle``

    def __contains__(self, incident_id: str) -> bool:
        return incident_id in self._parked

    def __len__(self) -> int:
        return len(self._parked)

    def ids(self) -> set[str]:
        return set(self._parked)

    def hold(self, parked: ParkedApproval, lane: str) -> None:
        """A run parked: hold its wait (its timer is set once the run's task is over,
        ``run_ended``)."""
        parked.lane = lane
        self._parked[parked.incident_id] = parked
        self.metrics.incidents_running.inc()        # still the engine's, as data

    def take(self, incident_id: str) -> str:
        """Woken: the wait becomes its next run's hint; the lane it worked in."""
        parked = self._forget(incident_id)
        self._resume[incident_id] = parked
        return parked.lane

    def resume(self, incident_id: str) -> ParkedApproval | None:
        """The hint of a run starting: the wait it goes back to, if it was parked."""
        return self._resume.pop(incident_id, None)

    def drop(self, incident_id: str) -> None:
        """Forget the wait without a run (its lease was lost: another replica has it)."""
        if incident_id in self._parked:
            self._forget(incident_id)
        self._resume.pop(incident_id, None)

    def run_ended(self, incident_id: str) -> bool:
        """The parked run's task is over: set its wait's timer. True when it was woken
        meanwhile (its next run is to start now)."""
        parked = self._parked.get(incident_id)
        if parked is None:
            return incident_id in self._resume
        self._look_later(parked)
        return False

    def stop(self) -> list[str]:
        """Shutdown: forget every wait (the journal has them: resumed on start); their ids."""
        self.stopping = True
        ids = list(self._parked)
        for parked in self._parked.values():
            parked.cancel()
        self.metrics.incidents_running.dec(len(self._parked))
        self._parked.clear()
        if self._gathering is not None:
            self._gathering.cancel()
            self._gathering = None
        self._due.clear()
        self._signal()
        return ids

    async def any_woken(self) -> None:
        """Until a wait is woken, dropped, or the engine stops."""
        self._woken = asyncio.get_running_loop().create_future()
        await self._woken

    def _forget(self, incident_id: str) -> ParkedApproval:
        parked = self._parked.pop(incident_id)
        parked.cancel()
        self.metrics.incidents_running.dec()
        self._signal()
        return parked

    def _signal(self) -> None:
        if self._woken is not None and not self._woken.done():
            self._woken.set_result(None)

    # --- looks at the decisions ------------------------------------------------------

    def _look_later(self, parked: ParkedApproval) -> None:
        # In an empty context: a timer keeps a copy of the context it was set in, and a
        # run's holds the run itself (``health``'s journal hook: its view, its task).
        parked.timer = contextvars.Context().run(
            self.clock.call_later, parked.next_look, functools.partial(self._due_now, parked))

    def _due_now(self, parked: ParkedApproval) -> None:
        if self.stopping or self._parked.get(parked.incident_id) is not parked:
            return
        parked.timer = None
        self._due.append(parked)
        if self._gathering is None:
            self._gathering = contextvars.Context().run(
                self.clock.call_later, LOOK_GATHER, self._look_due)

    def _look_due(self) -> None:
        self._gathering = None
        due, self._due = self._due, []
        for start in range(0, len(due), LOOK_BATCH):
            self.tasks.start(self._look(due[start:start + LOOK_BATCH]), name="approval-looks")

    async def _look(self, batch: list[ParkedApproval]) -> None:
        """One look at a batch of waits, in a working slot (as the runs' polls were)."""
        slot = Slot(self.slots, RESUMED)
        delays: dict[str, float | None] = {}
        try:
            await slot.take()
            delays = await approvals.next_looks(self.store, batch, self.clock.now())
        except Exception:
            log.exception("looking at %d parked approvals failed; resuming their runs",
                          len(batch))
        finally:
            slot.give()
        for parked in batch:
            if self.stopping or self._parked.get(parked.incident_id) is not parked:
                continue                                # woken meanwhile: a run has it
            delay = delays.get(parked.incident_id)
            if delay is None:
                self.wake(parked.incident_id)
            else:
                parked.next_look = delay
                self._look_later(parked)
