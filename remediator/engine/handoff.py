"""Acknowledge and release: a human takes an incident, and its target, from the robot.

    acknowledge(id, who) ─▶ context["ack"] = {by, at, via} + timeline "ack" (MTTA)
                          ─▶ flag "held:<target>" = {incident, by, at}
                          ─▶ event ACKNOWLEDGED, wake the run
    release(id, who)     ─▶ context["ack"] = None, context["released"] = {by, at}
                          ─▶ flag dropped, event RELEASED, wake the run

While the hold stands, ``holder`` answers for the target and the guards refuse every
step on it (``guards.Guards.hold_refusal``), and the escalation chain stops paging
(``escalation``). A hold whose incident closed (resolved or recovered by any path) or
was released is stale: ``holder`` drops it, so a hold never outlives its incident.

The acknowledgement and its hold are written in the store, so every replica and a
restarted daemon see them; the run is only woken here (a run on another replica sees
the hold at its next step).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from remediator.clock import Clock
from remediator.engine.silences import lift
from remediator.metrics import Metrics
from remediator.model.incident import IncidentView, TargetRef, TimelineEntry
from remediator.ports.alerts import SilencesApi
from remediator.ports.sinks import EventKind
from remediator.ports.store import Store

if TYPE_CHECKING:
    from remediator.engine.notifications import Notifications

log = logging.getLogger("remediator.engine")

HOLD_PREFIX = "held:"


class HandoffError(Exception):
    """An acknowledgement or release that cannot be done; ``code`` says why:
    ``not_found`` (no such incident), ``closed`` (it is over), ``not_acknowledged``
    (a release of an incident nobody acknowledged)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Handoff:
    """What an acknowledgement or release did."""

    incident_id: str
    by: str
    at: datetime
    already: bool = False                  # acknowledged before (by ``by``): nothing written
    mtta_seconds: float | None = None      # from the incident's first alert to the ack


def hold_flag(target: TargetRef | str) -> str:
    return f"{HOLD_PREFIX}{target}"


def ack_of(view: IncidentView) -> dict[str, Any] | None:
    """The incident's standing acknowledgement ({by, at, via}), or None."""
    ack = view.context.get("ack")
    return ack if isinstance(ack, dict) and ack.get("by") else None


class Handoffs:
    def __init__(self, store: Store, clock: Clock, metrics: Metrics,
                 notifications: Notifications, wake: Callable[[str], None],
                 silences: Callable[[], SilencesApi | None] = lambda: None) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.notifications = notifications
        self.wake = wake
        self.silences = silences

    async def _open_view(self, incident_id: str) -> IncidentView:
        view = await self.store.get_incident(incident_id, alert_limit=1)
        if view is None:
            raise HandoffError("not_found", f"no incident {incident_id!r}")
        if view.state.closed:
            raise HandoffError("closed", f"incident {incident_id} is {view.state.value}: "
                                         "there is nothing to acknowledge or release")
        return view

    async def acknowledge(self, incident_id: str, who: str, *, via: str = "api") -> Handoff:
        view = await self._open_view(incident_id)
        now = self.clock.now()
        standing = ack_of(view)
        if standing is not None:
            return Handoff(incident_id, str(standing["by"]),
                           datetime.fromisoformat(str(standing["at"])), already=True)
        since = view.first_alert_at or view.created_at
        mtta = max(0.0, (now - since).total_seconds())
        ack = {"by": who, "at": now.isoformat(), "via": via, "mtta_seconds": mtta}
        entry = TimelineEntry(at=now, kind="ack", message=f"acknowledged by {who} (via {via}) "
                              f"after {mtta:.0f}s: humans have "
                              f"{view.target or 'the incident'}; no automated action until "
                              "it is resolved or released", data={**ack})
        await self.store.journal(incident_id, now, context={"ack": ack}, timeline=(entry,))
        if view.target is not None:
            await self.store.set_flag(hold_flag(view.target), json.dumps(
                {"incident": incident_id, "by": who, "at": now.isoformat()}))
        await lift(self.store, self.silences(), self.clock, incident_id, view.context,
                   f"acknowledged by {who}")
        self.metrics.time_to_acknowledge.labels(view.playbook).observe(mtta)
        log.info("incident acknowledged by %s", who, extra={"incident": incident_id})
        await self.notifications.emit(EventKind.ACKNOWLEDGED, incident_id,
                                      message=f"acknowledged by {who}")
        self.wake(incident_id)
        return Handoff(incident_id, who, now, mtta_seconds=mtta)

    async def release(self, incident_id: str, who: str, *, via: str = "api") -> Handoff:
        view = await self._open_view(incident_id)
        standing = ack_of(view)
        if standing is None:
            raise HandoffError("not_acknowledged", f"incident {incident_id} is not "
                                                   "acknowledged: nothing to release")
        now = self.clock.now()
        entry = TimelineEntry(at=now, kind="ack", message=f"released by {who} (via {via}): "
                              f"automation may act on {view.target or 'the incident'} again",
                              data={"released_by": who, "acknowledged_by": standing["by"]})
        await self.store.journal(incident_id, now, context={
            "ack": None, "released": {"by": who, "at": now.isoformat(), "via": via}},
            timeline=(entry,))
        if view.target is not None:
            await self._drop_hold(str(view.target), incident_id)
        log.info("incident released by %s", who, extra={"incident": incident_id})
        await self.notifications.emit(EventKind.RELEASED, incident_id,
                                      message=f"released by {who}")
        self.wake(incident_id)
        return Handoff(incident_id, who, now)

    async def note(self, incident_id: str, message: str) -> None:
        """A timeline note about the incident's hand-off (e.g. resolved in PagerDuty)."""
        now = self.clock.now()
        await self.store.journal(incident_id, now, timeline=(
            TimelineEntry(at=now, kind="ack", message=message),))

    async def refused(self, incident_id: str, who: str, reason: str, *,
                      via: str = "slack") -> None:
        """Journal an acknowledgement that was refused (who tried, and why)."""
        now = self.clock.now()
        entry = TimelineEntry(at=now, kind="ack", message=f"acknowledgement by {who} (via "
                              f"{via}) refused: {reason}", data={"refused": who, "via": via})
        await self.store.journal(incident_id, now, timeline=(entry,))
        log.warning("acknowledgement by %s refused: %s", who, reason,
                    extra={"incident": incident_id})

    async def _drop_hold(self, target: str, incident_id: str) -> None:
        raw = await self.store.get_flag(hold_flag(target))
        if raw is not None and json.loads(raw).get("incident") == incident_id:
            await self.store.set_flag(hold_flag(target), None)

    async def holder(self, target: TargetRef | None) -> dict[str, Any] | None:
        """The standing hold on ``target`` ({incident, by, at}), or None; a hold whose
        incident closed or was released is dropped here."""
        if target is None:
            return None
        raw = await self.store.get_flag(hold_flag(target))
        if raw is None:
            return None
        hold = json.loads(raw)
        view = await self.store.get_incident(str(hold.get("incident")), alert_limit=1)
        if view is None or view.state.closed or ack_of(view) is None:
            await self._drop_hold(str(target), str(hold.get("incident")))
            return None
        return dict(hold)
