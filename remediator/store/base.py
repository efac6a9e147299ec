"""The Store port: everything remediator remembers, behind one small Protocol.

Implementations must make ``ingest`` atomic and idempotent (one episode per
``(fingerprint, startsAt)``, at most one active incident per incident key),
persist before returning, and keep the step journal exact: an intent is written
before an action is applied and an outcome after. The SQLite implementation is
the embedded default; the shape fits a PostgreSQL one (unique constraints for
idempotency, row locks for claiming incidents).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from remediator.model.incident import (
    IncidentState,
    IncidentView,
    StepRecord,
    TargetRef,
    TimelineEntry,
)

IngestOutcomeKind = Literal["new", "duplicate", "resolved", "unmatched", "stale"]


@dataclass(frozen=True)
class AlertRecord:
    fingerprint: str
    starts_at: datetime
    ends_at: datetime | None
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str = ""


@dataclass(frozen=True)
class Routing:
    """Where a matched alert goes: one per matching playbook."""

    playbook: str
    incident_key: str
    target: TargetRef | None
    dry_run: bool = False
    notify: dict[str, Any] = field(default_factory=dict)
    error: str | None = None          # e.g. the target could not be rendered


@dataclass(frozen=True)
class IngestItem:
    alert: AlertRecord
    routes: tuple[Routing, ...]       # empty: no playbook matched


@dataclass(frozen=True)
class IngestOutcome:
    outcome: IngestOutcomeKind
    incident_ids: tuple[str, ...] = ()      # incidents the engine should look at
    created: tuple[str, ...] = ()           # of those, the ones just created


def count_alerts(view: IncidentView) -> None:
    """``alert_count`` and ``firing_count`` of a view that holds every alert."""
    view.alert_count = len(view.alerts)
    view.firing_count = sum(a["status"] == "firing" for a in view.alerts)


@dataclass(frozen=True)
class ApprovalRecord:
    id: str
    incident_id: str
    step_index: int
    requested_at: datetime
    expires_at: datetime
    approvers: tuple[str, ...]
    decision: Literal["approved", "rejected", "expired"] | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None


class Store(Protocol):
    #: True when only one process may use the store (SQLite): leases left by a
    #: previous run of this process are released on start instead of waited out.
    single_process: bool

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the store cannot be read."""
        ...

    # intake
    async def ingest(self, items: list[IngestItem], now: datetime) -> list[IngestOutcome]: ...

    def redelivered(self, alerts: Sequence[tuple[str, datetime, str]]
                    ) -> list[IngestOutcome] | None:
        """What ``ingest`` would answer for alerts ``(fingerprint, starts_at, status)``
        that change nothing (all duplicates or stale), when that is known without a
        transaction; else None (always None for a store shared by several replicas)."""
        ...

    # incidents
    async def active_incident_ids(self) -> list[str]: ...

    # claiming (several replicas): an incident is worked on by the replica holding its lease
    async def claim(self, incident_id: str, owner: str, now: datetime, lease: float) -> bool:
        """Take or renew the lease of an open incident: succeeds when it has no owner, its
        lease expired before ``now``, or ``owner`` already holds it. Atomic."""
        ...

    async def claim_batch(self, owner: str, now: datetime, lease: float,
                          limit: int) -> list[str]:
        """Claim up to ``limit`` incidents with work to do (active ones, and escalated ones
        whose alerts all resolved) that nobody holds or whose lease expired; return their
        ids. Concurrent callers never get the same incident (SKIP LOCKED)."""
        ...

    async def claim_sink(self, sink: str, owner: str, now: datetime, lease: float) -> bool:
        """Take or renew the lease to deliver ``sink``'s notifications (one replica at a
        time delivers each sink, so a message is not posted twice)."""
        ...

    async def release(self, incident_id: str, owner: str) -> None:
        """Give the lease up (only if ``owner`` holds it)."""
        ...

    async def release_all(self) -> None:
        """Drop every lease (single-process stores, on start)."""
        ...

    async def get_incident(self, incident_id: str, *,
                           alert_limit: int | None = None) -> IncidentView | None:
        """The incident with its steps and timeline, and its alerts in arrival order: all
        of them, or the first ``alert_limit``; ``alert_count`` and ``firing_count`` count
        them all."""
        ...

    async def list_incidents(self, *, state: str | None = None,
                             limit: int = 100) -> list[IncidentView]: ...

    async def firing_alert_count(self, incident_id: str) -> int: ...

    async def firing_fingerprints(self, incident_id: str) -> list[str]:
        """The fingerprints of the incident's alerts still firing, each once, sorted."""
        ...

    async def set_state(self, incident_id: str, state: IncidentState, now: datetime, *,
                        summary: str | None = None) -> None: ...

    async def merge_context(self, incident_id: str, patch: dict[str, Any],
                            now: datetime) -> None: ...

    async def save_step(self, incident_id: str, phase: str, step: StepRecord,
                        now: datetime) -> None: ...

    async def add_timeline(self, incident_id: str, entry: TimelineEntry) -> None: ...

    async def journal(self, incident_id: str, now: datetime, *,
                      step: tuple[str, StepRecord] | None = None,
                      context: dict[str, Any] | None = None,
                      state: IncidentState | None = None, summary: str | None = None,
                      timeline: Sequence[TimelineEntry] = ()) -> None:
        """Several journal writes in one transaction (all or nothing), in this order:
        ``save_step(incident_id, *step, now)``, ``merge_context(incident_id, context, now)``,
        ``set_state(incident_id, state, now, summary=summary)``, then ``add_timeline`` of
        each entry; each part as the method of that name does it. An incident run makes
        one write of a change and its timeline note instead of two."""
        ...

    async def list_alerts(self, *, outcome: str | None = None,
                          limit: int = 100) -> list[dict[str, Any]]: ...

    # guards
    async def last_closed_at(self, incident_key: str, *, acted_only: bool) -> datetime | None: ...

    async def runs_since(self, incident_key: str, since: datetime) -> int: ...

    async def mutations_since(self, since: datetime) -> int: ...

    async def reserve_action(self, incident_id: str, step: str, now: datetime,
                             since: datetime, budget: int, pause_value: str) -> str:
        """Atomically: "paused" if the ``paused`` flag is set; else "tripped" (and set the
        flag to ``pause_value``) if ``budget`` actions were reserved since ``since``;
        else reserve one and return "ok"."""
        ...

    async def acquire_target(self, target: str, incident_id: str) -> str | None:
        """Take the per-target lock; returns the holder's incident id if someone else has it."""
        ...

    async def release_target(self, target: str, incident_id: str) -> None: ...

    async def get_flag(self, name: str) -> str | None: ...

    async def set_flag(self, name: str, value: str | None) -> None: ...

    # notifications (outbox) and sink state
    async def append_event(self, incident_id: str, payload: str, now: datetime) -> int: ...

    async def undelivered_events(self, sink: str, limit: int) -> list[tuple[int, str, str]]:
        """(event id, incident id, payload) not yet delivered to ``sink``, oldest first."""
        ...

    async def mark_delivered(self, sink: str, event_id: int) -> None: ...

    async def sink_get(self, incident_id: str, key: str) -> str | None: ...

    async def sink_set(self, incident_id: str, key: str, value: str) -> None: ...

    # approvals
    async def create_approval(self, record: ApprovalRecord) -> None: ...

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None: ...

    async def pending_approval(self, incident_id: str, step_index: int) -> ApprovalRecord | None:
        ...

    async def decide_approval(self, approval_id: str, decision: str, by: str,
                              at: datetime) -> bool:
        """Record a decision once; False when already decided (single use)."""
        ...
