"""The contract between the engine and the notification sinks.

The engine emits a ``NotificationEvent`` for every change a human should see.
A dispatcher (engine side) hands each event to every configured ``Sink`` in
order, per incident, retrying a sink that raises ``TemporaryError`` with backoff
in the background: a failing Slack or Jira never blocks remediation.

A sink keeps what it must remember about an incident (the Slack root message's
``channel``/``ts``, the Jira issue key) in ``SinkState``, which the store
persists, so that after a restart it edits the same message and comments on the
same ticket instead of creating new ones.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel

from remediator.model.incident import IncidentView, StepRecord


class EventKind(StrEnum):
    OPENED = "opened"                        # a new incident
    STATE = "state"                          # the incident's state changed (see incident.state)
    STEP = "step"                            # a step started, finished, failed or was skipped
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_DECIDED = "approval_decided"
    ESCALATED = "escalated"                  # automation gave up
    CLOSED = "closed"                        # recovered or resolved: final state
    ACKNOWLEDGED = "acknowledged"            # a human took the incident (context["ack"])
    RELEASED = "released"                    # the human gave it back to automation


class NotificationEvent(BaseModel):
    id: int = 0                              # the store's sequence number (dedup on redelivery)
    kind: EventKind
    at: datetime
    incident: IncidentView                   # a snapshot at the time of the event
    step: StepRecord | None = None
    message: str = ""


class SinkState(Protocol):
    """Durable per-incident memory of one sink."""

    async def get(self, incident_id: str, key: str) -> str | None: ...

    async def set(self, incident_id: str, key: str, value: str) -> None: ...


class Sink(Protocol):
    name: str

    async def deliver(self, event: NotificationEvent, state: SinkState) -> None:
        """Deliver one event. Raise ``TemporaryError`` to be retried later (the same
        event, with the same ``id``), ``PermanentError`` to drop it with a log line."""
        ...


async def delivered_before(event: NotificationEvent, state: SinkState, key: str) -> bool:
    """True for a redelivery: an event at or below the last one this sink finished
    (recorded under ``key``). Events without an id are never treated as seen."""
    if not event.id:
        return False
    last = await state.get(event.incident.id, key)
    return last is not None and event.id <= int(last)


async def remember_delivered(event: NotificationEvent, state: SinkState, key: str) -> None:
    """Record that this sink finished ``event`` (see ``delivered_before``)."""
    if event.id:
        await state.set(event.incident.id, key, str(event.id))


class MemorySinkState:
    """A ``SinkState`` in a dict, for tests and the console."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], str] = {}

    async def get(self, incident_id: str, key: str) -> str | None:
        return self.data.get((incident_id, key))

    async def set(self, incident_id: str, key: str, value: str) -> None:
        self.data[(incident_id, key)] = value
