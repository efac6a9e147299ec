"""What a person does to an incident by hand (the console, the JSON API): retry the
ladder of an escalated incident from its first step, or close an escalated incident.

Each act is one store transaction with its timeline entry, which names who did it
(``kind="manual"``), then a notification event, then a wake of the incident. Both
are refused (``ManualRefused``, the caller's 409) unless the incident is escalated
and no run of it is in progress (an escalation still paging): an incident the ladder
is working on is the robot's until it escalates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from remediator.clock import Clock
from remediator.engine.notifications import Notifications
from remediator.model.incident import IncidentState, TimelineEntry
from remediator.ports.sinks import EventKind
from remediator.ports.store import Store


class ManualRefused(Exception):
    """The act does not apply to the incident as it is (a 409)."""


class NoIncident(KeyError):
    """No incident with that id (a 404)."""


@dataclass
class Manual:
    store: Store
    clock: Clock
    notifications: Notifications
    wake: Callable[[str], None]
    running: Callable[[str], bool]

    async def _check(self, incident_id: str, act: str) -> None:
        view = await self.store.get_incident(incident_id, alert_limit=0)
        if view is None:
            raise NoIncident(incident_id)
        if view.state != IncidentState.ESCALATED:
            raise ManualRefused(f"only an escalated incident can be {act}; "
                                f"{incident_id} is {view.state.value}")
        if self.running(incident_id):
            raise ManualRefused(f"{incident_id} is still escalating; try again in a moment")

    async def retry(self, incident_id: str, by: str) -> str:
        await self._check(incident_id, "retried")
        now = self.clock.now()
        message = f"ladder retried from the first step by {by}"
        entry = TimelineEntry(at=now, kind="manual", message=message,
                              data={"act": "retry", "by": by})
        if not await self.store.restart_ladder(incident_id, now, entry):
            raise ManualRefused(f"{incident_id} is no longer escalated")
        await self.notifications.emit(EventKind.STATE, incident_id, message=message)
        self.wake(incident_id)
        return message

    async def close(self, incident_id: str, by: str, reason: str = "") -> str:
        await self._check(incident_id, "closed by hand")
        now = self.clock.now()
        message = f"closed by {by}" + (f": {reason}" if reason else "")
        entry = TimelineEntry(at=now, kind="manual", message=message,
                              data={"act": "close", "by": by, "reason": reason})
        if not await self.store.close_by_hand(incident_id, now, message, entry):
            raise ManualRefused(f"{incident_id} is no longer escalated")
        await self.notifications.emit(EventKind.CLOSED, incident_id, message=message)
        return message
