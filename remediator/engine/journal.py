"""The journal writer of one incident run.

Every write gives way to the intake first (an alert storm is acknowledged before the
engine spends its CPU on incidents), is logged once written, and a state change also
appends the notification event that the sinks deliver. The store makes each call one
transaction: a change and its timeline note are written together or not at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from remediator.clock import Clock
from remediator.model.incident import (
    IncidentState,
    IncidentView,
    StepRecord,
    TimelineEntry,
    VerifyPoll,
)
from remediator.ports.sinks import EventKind
from remediator.ports.store import Store

if TYPE_CHECKING:
    from remediator.engine.notifications import Notifications

log = logging.getLogger("remediator.engine")


class RunJournal:
    __slots__ = ("_poll_written", "clock", "closed", "give_way", "id", "notifications", "store",
                 "view")

    def __init__(self, incident_id: str, store: Store, clock: Clock,
                 notifications: Notifications,
                 give_way: Callable[[], Awaitable[None]]) -> None:
        self.id = incident_id
        self.store = store
        self.clock = clock
        self.notifications = notifications
        self.give_way = give_way
        self.view: IncidentView
        self.closed = False         # a closing state was written: the store dropped the lock
        # the last poll's journal write, not awaited when made (see ``poll``)
        self._poll_written: asyncio.Future[None] | None = None

    def entry(self, kind: str, message: str, **data: Any) -> TimelineEntry:
        return TimelineEntry(at=self.clock.now(), kind=kind, message=message, data=data)

    def logged(self, entry: TimelineEntry, level: int = logging.INFO) -> None:
        log.log(level, entry.message, extra={"incident": self.id, "kind": entry.kind})

    async def note(self, kind: str, message: str, **data: Any) -> None:
        """A timeline entry on its own."""
        entry = self.entry(kind, message, **data)
        await self.polls_written()
        await self.give_way()
        await self.store.journal(self.id, self.clock.now(), timeline=(entry,))
        self.logged(entry)

    async def state(self, state: IncidentState, summary: str | None = None, *,
                    context: dict[str, Any] | None = None,
                    before: tuple[TimelineEntry, ...] = ()) -> None:
        """Write the state and its timeline note in one write; ``context`` is merged into
        the incident's context in that same write, before the state; ``before``: timeline
        entries written in that write ahead of the state's."""
        await self.polls_written()
        await self.give_way()
        if self.view.state == state and summary is None:
            if context is not None:
                await self.store.journal(self.id, self.clock.now(), context=context)
            return
        self.view.state = state
        entry = self.entry("state", f"incident {state.value}" + (f": {summary}" if summary
                                                                  else ""), state=state.value)
        await self.store.journal(self.id, self.clock.now(), context=context, state=state,
                                 summary=summary, timeline=(*before, entry))
        if not state.active:
            self.closed = True
        for note in before:
            self.logged(note)
        self.logged(entry)
        kind = EventKind.STATE
        if state.closed:
            kind = EventKind.CLOSED
        elif state == IncidentState.ESCALATED:
            kind = EventKind.ESCALATED
        await self.notifications.emit(kind, self.id, message=summary or "")

    async def step(self, phase: str, rec: StepRecord, kind: str | None = None,
                   message: str = "", *, level: int = logging.INFO, **data: Any) -> None:
        """Journal the step record; with ``kind``, its timeline note in the same write
        (logged at ``level``: a target that could not be reached is a WARNING)."""
        await self.polls_written()
        await self.give_way()
        timeline = (self.entry(kind, message, **data),) if kind is not None else ()
        await self.store.journal(self.id, self.clock.now(), step=(phase, rec),
                                 timeline=timeline)
        for entry in timeline:
            self.logged(entry, level)

    async def poll(self, phase: str, rec: StepRecord, poll: VerifyPoll) -> None:
        """Count a verification poll on the step record (which keeps the latest only:
        the store keeps the first and the latest ``POLLS_KEPT - 1`` and gives them back
        on read, and the events carry the latest) and journal it, as measured.

        The run does not wait for the write: it goes on to sleep until its next poll
        while the store commits the polls gathered meanwhile together (a poll changes
        nothing else). Every other write of the run waits for it first
        (``polls_written``), so nothing the run journals after a poll is durable
        without it."""
        rec.add_poll(poll, keep=1)          # not 30 polls held by each verifying run
        last = self._poll_written
        if last is not None and last.done():
            self._poll_written = None
            last.result()                    # the previous poll's write failed: say so
        await self.give_way()
        self._poll_written = self.store.journal_poll(
            self.id, self.clock.now(), phase=phase, step=rec.index, number=rec.poll_count,
            poll=poll)

    async def polls_written(self) -> None:
        """The last poll's journal write, done (its error raised here)."""
        pending, self._poll_written = self._poll_written, None
        if pending is not None:
            await pending

    async def context(self, patch: dict[str, Any], *,
                      notes: tuple[TimelineEntry, ...] = ()) -> None:
        """Merge ``patch`` into the incident's context (store and view); with ``notes``,
        those timeline entries in the same write."""
        await self.polls_written()
        await self.store.journal(self.id, self.clock.now(), context=patch, timeline=notes)
        self.view.context.update(patch)
        for entry in notes:
            self.logged(entry)

    async def emit(self, kind: EventKind, *, step: StepRecord | None = None,
                   message: str = "") -> None:
        await self.notifications.emit(kind, self.id, step=step, message=message)
