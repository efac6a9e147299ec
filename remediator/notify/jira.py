"""The Jira sink: comments on the incident's ticket, and closes it when the incident recovers.

The ticket itself is opened by the ``jira.incident`` action, whose result puts
``{"jira": {"key", "url"}}`` into the incident's context; from then on each
event snapshot carries the key. The sink:

* adds a comment for each ``STEP``, ``APPROVAL_DECIDED`` and ``ESCALATED`` event;
* on ``CLOSED`` in state recovered/resolved, applies ``transition_on_close``
  (default "Done") with a closing comment; an issue already in that status is
  left alone;
* on ``CLOSED`` (any way it closes), posts the incident's postmortem draft
  (``rendering.postmortem``: timeline, MTTD/MTTA/MTTR, diagnosis, what was tried,
  evidence) as one more comment, once per incident: the state key
  ``jira.postmortem`` keeps it from being posted again after a restart;
* does nothing for an incident without a ticket.

Incidents in a notification storm (``context["storm"]``) share the storm's one
ticket (see ``jira.incident``): their events add no comments (the Slack storm
message counts them). Every call is paced (``rate`` calls a second, bursts of
``burst``: Jira Cloud's limits are per user and not published as one figure, so
conservative) once it is given a clock (``use_clock``).

Redelivery: the last delivered event id per incident is kept in ``SinkState``;
an event at or below it is ignored. The key is kept there too, so events of
an incident whose snapshot lost its context still reach the ticket.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from remediator import rendering as render
from remediator.clock import Clock
from remediator.engine.notifications import Pacer
from remediator.model.incident import IncidentState
from remediator.ports.sinks import (
    EventKind,
    NotificationEvent,
    SinkState,
    delivered_before,
    remember_delivered,
)
from remediator.ports.tracker import TrackerApi

if TYPE_CHECKING:
    from remediator.notify.files import EvidenceFiles

_LAST = "jira.last_event"
_KEY = "jira.key"
_POSTMORTEM = "jira.postmortem"


class JiraSink:
    """Implements ``Sink`` on a ``TrackerApi`` (the Jira adapter)."""

    name = "jira"

    def __init__(self, tickets: TrackerApi, transition_on_close: str | None = "Done", *,
                 rate: float = 1.0, burst: float = 5.0,
                 files: EvidenceFiles | None = None) -> None:
        """``transition_on_close``: the transition (or target status) applied when an
        incident recovers or resolves; None leaves the ticket to humans. ``files``: the
        graphs and collected logs attached to the ticket once the incident escalated
        (the ticket is made by the escalation), and the graphs when it closes."""
        self.tickets = tickets
        self.files = files
        self.transition_on_close = transition_on_close
        self.rate = rate
        self.burst = burst
        self._pacer: Pacer | None = None

    def use_clock(self, clock: Clock) -> None:
        self._pacer = Pacer(clock, self.rate, self.burst)

    async def deliver(self, event: NotificationEvent, state: SinkState) -> None:
        incident = event.incident.id
        if await delivered_before(event, state, _LAST):
            return
        if event.incident.context.get("storm"):
            await remember_delivered(event, state, _LAST)
            return
        key = ticket_key(event) or await state.get(incident, _KEY)
        if key:
            if self._pacer is not None:
                await self._pacer.acquire("jira")
            await state.set(incident, _KEY, key)
            await self._deliver(event, key)
            await self._attach(event, state, key)
            if event.kind is EventKind.CLOSED:
                await self._postmortem(event, state, key)
        await remember_delivered(event, state, _LAST)

    async def _attach(self, event: NotificationEvent, state: SinkState, key: str) -> None:
        """Attach the evidence files, each once: at the first event that knows the ticket
        once the incident escalated, and when it closes."""
        view = event.incident
        if self.files is None:
            return
        if event.kind is EventKind.CLOSED:
            moment, files = "closed", await self.files.graphs(view)
        elif view.state is IncidentState.ESCALATED and not await state.get(
                view.id, "jira.files.escalated"):
            moment, files = "escalated", await self.files.for_escalation(view)
        else:
            return
        for f in files:
            done = f"jira.file.{moment}.{f.filename}"
            if await state.get(view.id, done):
                continue
            if self._pacer is not None:
                await self._pacer.acquire("jira")
            await self.tickets.attach(key, f.filename, f.content)
            await state.set(view.id, done, "1")
        await state.set(view.id, f"jira.files.{moment}", "1")

    async def _postmortem(self, event: NotificationEvent, state: SinkState, key: str) -> None:
        """The postmortem draft as a comment, once per incident (even across restarts)."""
        view = event.incident
        if await state.get(view.id, _POSTMORTEM):
            return
        text = (await self.files.postmortem(view) if self.files is not None
                else render.postmortem(view))
        if self._pacer is not None:
            await self._pacer.acquire("jira")
        await self.tickets.comment(key, render.postmortem_comment(text))
        await state.set(view.id, _POSTMORTEM, "1")

    async def _deliver(self, event: NotificationEvent, key: str) -> None:
        view = event.incident
        if event.kind is EventKind.STEP and event.step is not None:
            await self.tickets.comment(key, render.step_comment(event.step, event.message))
        elif event.kind is EventKind.APPROVAL_DECIDED:
            await self.tickets.comment(key, f"*Approval:* {render.wiki_escape(event.message)}"
                                       if event.message else "*Approval decided.*")
        elif event.kind is EventKind.ESCALATED:
            await self.tickets.comment(
                key, "*Automation gave up; humans have it.* "
                     + render.wiki_escape(event.message or view.summary))
        elif event.kind in (EventKind.ACKNOWLEDGED, EventKind.RELEASED):
            await self.tickets.comment(key, f"*{render.wiki_escape(event.message.capitalize())}*")
        elif event.kind is EventKind.CLOSED:
            closing = (f"*Incident {render.STATE_STYLE[view.state][1].lower()}* at "
                       f"{render.duration(render.time_to_recover(view))} after the first "
                       f"alert.\n" + "\n".join(
                           f"* {render.wiki_escape(render.step_outcome(s))}" for s in view.steps))
            if event.message:
                closing += f"\n{render.wiki_escape(event.message)}"
            recovered = view.state.closed
            moved = recovered and self.transition_on_close and await self.tickets.transition(
                key, self.transition_on_close, comment=closing)
            if not moved:
                await self.tickets.comment(key, closing)


def ticket_key(event: NotificationEvent) -> str | None:
    """The incident's Jira key from its context, if the ticket exists."""
    jira = event.incident.context.get("jira")
    key = jira.get("key") if isinstance(jira, Mapping) else None
    return str(key) if key else None
