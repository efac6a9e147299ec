"""Alertmanager silences while remediating (a playbook's ``silence: {while: remediating}``).

When an incident starts remediating, each of its firing alerts gets a silence whose
matchers are exactly that alert's labels (equality, never a regex, never a subset that
would hide another alert), ``createdBy: remediator`` and a comment naming the incident.
The ids are kept in the incident's context (``silences``), so a restarted daemon still
expires them. They are expired when the incident recovers or resolves, before it
escalates (escalation never happens under a silence: Alertmanager's own notifications
must reach humans again), and when a human acknowledges it.

Here: ``lift`` (the expiry, used by escalation, the incident run and acknowledgements).
Creating them is ``incident.silence`` (it needs the run).
"""

from __future__ import annotations

import logging
from typing import Any

from remediator.clock import Clock
from remediator.errors import PermanentError, TemporaryError
from remediator.model.incident import TimelineEntry
from remediator.ports.alerts import SilencesApi
from remediator.ports.store import Store

log = logging.getLogger("remediator.engine")

CREATED_BY = "remediator"


async def lift(store: Store, api: SilencesApi | None, clock: Clock, incident_id: str,
               context: dict[str, Any], why: str) -> None:
    """Expire the incident's silences (those that fail stay recorded, and are tried again
    at the next lift)."""
    ids = [str(i) for i in context.get("silences") or []]
    if not ids or api is None:
        return
    left = []
    for silence_id in ids:
        try:
            await api.expire_silence(silence_id)
        except (TemporaryError, PermanentError) as exc:
            log.warning("could not expire silence %s: %s", silence_id, exc,
                        extra={"incident": incident_id})
            left.append(silence_id)
    now = clock.now()
    done = [i for i in ids if i not in left]
    message = f"Alertmanager silences expired ({why}): {', '.join(done)}" if done else \
        f"Alertmanager silences could not be expired ({why}): {', '.join(left)}"
    await store.journal(incident_id, now, context={"silences": left},
                        timeline=(TimelineEntry(at=now, kind="silence", message=message,
                                                data={"expired": done, "left": left}),))
    context["silences"] = left
