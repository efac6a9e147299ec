"""The Store port: everything remediator remembers, as small role protocols.

Each role is what one part of the daemon needs (intake, the engine's incidents and
journal, leases between replicas, guards, notifications, approvals); ``Store`` is
their union, what a backend implements (``sqlite.SqliteStore``,
``postgres.PostgresStore`` in ``remediator.store``). The records crossing the
boundary live in ``remediator.model.records`` and are re-exported here. No
implementation here: this is the engine's storage port, below it in the layers.

Implementations must make ``ingest`` atomic and idempotent (one episode per
``(fingerprint, startsAt)``, at most one open incident per incident key),
persist before returning, and keep the step journal exact: an intent is written
before an action is applied and an outcome after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from remediator.model.incident import (
    EvidenceItem,
    IncidentState,
    IncidentSummary,
    IncidentView,
    StepRecord,
    TimelineEntry,
    VerifyPoll,
)
from remediator.model.records import (
    AlertRecord,
    ApprovalRecord,
    ChainTimer,
    IngestItem,
    IngestOutcome,
    IngestOutcomeKind,
    Reservation,
    Routing,
    count_alerts,
)

__all__ = [
    "PRUNED_TABLES",
    "AlertRecord",
    "ApprovalRecord",
    "ApprovalStore",
    "ChainTimer",
    "GuardStore",
    "IncidentStore",
    "IncidentSummary",
    "IngestItem",
    "IngestOutcome",
    "IngestOutcomeKind",
    "IntakeStore",
    "JournalStore",
    "LeaseStore",
    "LifecycleStore",
    "ManualStore",
    "OutboxStore",
    "PageKey",
    "Reservation",
    "RetentionStore",
    "Routing",
    "Store",
    "TimerStore",
    "WakeCallback",
    "count_alerts",
]

WakeCallback = Callable[[str], None]
#: Where a page of the incident list ends: the last row's ``(created_at, id)``.
PageKey = tuple[datetime, str]

ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def search_hay(row: IncidentSummary) -> str:
    """What ``incident_page(text=…)`` searches, as the stores build it in SQL: id, key,
    playbook, target (as ``str(TargetRef)``), summary and state, space-separated, ASCII
    letters lowered."""
    return " ".join((row.id, row.key, row.playbook, str(row.target or ""), row.summary or "",
                     row.state.value)).translate(ASCII_LOWER)



class LifecycleStore(Protocol):
    """Opening (migrations included), closing, and the readiness probe."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the store cannot be read."""
        ...


class IntakeStore(Protocol):
    """Alerts in: episodes deduplicated, folded into one open incident per key; and the
    wake-up of an incident's waiter when something about it changed elsewhere."""

    async def ingest(self, items: list[IngestItem], now: datetime) -> list[IngestOutcome]: ...

    def redelivered(self, alerts: Sequence[tuple[str, datetime, str]]
                    ) -> list[IngestOutcome] | None:
        """What ``ingest`` would answer for alerts ``(fingerprint, starts_at, status)``
        that change nothing (all duplicates or stale), when that is known without a
        transaction; else None (always None for a store shared by several replicas)."""
        ...

    def watch(self, callback: WakeCallback) -> None:
        """Call ``callback(incident_id)`` (on the event loop) whenever another process
        sharing this store resolves one of the incident's alerts or decides one of its
        approvals, within about a second. Changes made through this object need no
        watching (the caller knows), but may be reported too. A no-op for a store only
        one process uses (SQLite). Callable before or after ``open``."""
        ...


class IncidentStore(Protocol):
    """Reading incidents and alerts: views for the API and CLI, counts for the engine."""

    async def active_incident_ids(self) -> list[str]: ...

    async def count_open_incidents(self) -> int:
        """How many incidents are not closed (escalated ones that still fire included)."""
        ...

    async def get_incident(self, incident_id: str, *,
                           alert_limit: int | None = None) -> IncidentView | None:
        """The incident with its steps and timeline, and its alerts in arrival order: all
        of them, or the first ``alert_limit``; ``alert_count`` and ``firing_count`` count
        them all."""
        ...

    async def list_incidents(self, *, state: str | None = None,
                             limit: int = 100) -> list[IncidentView]: ...

    async def incident_page(self, *, state: str | None = None, playbook: str | None = None,
                            after: PageKey | None = None, limit: int = 100,
                            namespace: str | None = None, text: str | None = None
                            ) -> tuple[list[IncidentSummary], PageKey | None]:
        """Up to ``limit`` incidents (of ``state`` and ``playbook`` when given; of a
        target in ``namespace``; whose ``search_hay`` contains ``text``, ASCII letters
        compared case-insensitively, nothing else folded), newest
        first by ``(created_at, id)`` descending, and only those strictly after ``after``
        in that order: keyset pagination, stable under inserts (a new incident is newer
        than every page already read). Returns the rows and the key to pass as ``after``
        for the next page, or None when this page is the last. Served by an index on
        ``(created_at, id)`` (and on ``(state, …)``, ``(playbook, …)`` for the filters);
        rows without alerts, counted in one query per page."""
        ...

    async def firing_alert_count(self, incident_id: str) -> int: ...

    async def firing_alert_counts(self, incident_ids: Sequence[str]) -> dict[str, int]:
        """``firing_alert_count`` of many incidents in one read (0 for an unknown id)."""
        ...

    async def firing_fingerprints(self, incident_id: str) -> list[str]:
        """The fingerprints of the incident's alerts still firing, each once, sorted."""
        ...

    async def list_alerts(self, *, outcome: str | None = None,
                          limit: int = 100) -> list[dict[str, Any]]: ...


class JournalStore(Protocol):
    """Writing an incident's record: steps, context, state and timeline, one part at a
    time or several in one transaction (``journal``)."""

    async def set_state(self, incident_id: str, state: IncidentState, now: datetime, *,
                        summary: str | None = None) -> None: ...

    async def merge_context(self, incident_id: str, patch: dict[str, Any],
                            now: datetime) -> None: ...

    async def save_step(self, incident_id: str, phase: str, step: StepRecord,
                        now: datetime) -> None:
        """The step record of ``phase`` (``ladder``, ``escalate``) without its polls:
        those are journaled one by one (``journal_poll``)."""
        ...

    def journal_poll(self, incident_id: str, now: datetime, *, phase: str, step: int,
                     number: int, poll: VerifyPoll) -> asyncio.Future[None]:
        """Poll ``number`` (1: the first) of the verification of step ``step`` of
        ``phase``, as it was measured. The write is under way when this returns, and
        committed within ``POLL_GATHER`` with the other polls made meanwhile (one
        transaction); the awaitable is its outcome (``close`` writes what is pending).
        The store keeps the first poll and the latest ``POLLS_KEPT - 1``;
        ``get_incident``'s steps carry them (``polls``) and the highest number
        (``poll_count``)."""
        ...

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


class ManualStore(Protocol):
    """What a person does to an incident by hand (the console, the API), and the journal
    read as one stream of events (the console's live updates)."""

    async def restart_ladder(self, incident_id: str, now: datetime,
                             entry: TimelineEntry) -> bool:
        """An escalated incident back to ``remediating`` with its ladder from the first
        step: its ladder and escalation step records are kept but set aside (their phase
        becomes ``ladder@N``/``escalate@N``, no longer in views), the context's
        ``escalation`` mark dropped, ``entry`` added to its timeline; one transaction.
        False (nothing changed) when the incident is not escalated."""
        ...

    async def close_by_hand(self, incident_id: str, now: datetime, summary: str,
                            entry: TimelineEntry) -> bool:
        """An escalated incident closed as ``resolved`` with ``summary``, its target lock
        dropped and ``entry`` on its timeline; one transaction. False when it is not
        escalated."""
        ...

    async def timeline_after(self, after: int, limit: int
                             ) -> list[tuple[int, str, TimelineEntry]]:
        """Timeline entries of every incident with an id greater than ``after``, oldest
        first: ``(id, incident id, entry)``. Ids only grow."""
        ...

    async def last_timeline_id(self) -> int:
        """The greatest timeline id (0 when there is none)."""
        ...

    async def count_by_state(self) -> dict[str, int]:
        """How many incidents are in each state (states with none are left out)."""
        ...

    async def last_steps(self, incident_ids: Sequence[str]) -> dict[str, StepRecord]:
        """The ladder step of highest index journaled for each of ``incident_ids`` (those
        with none are left out), without its polls (a list shows its name and status)."""
        ...


class LeaseStore(Protocol):
    """Who works on what when several replicas share the store: incident and sink
    leases. Single-process stores grant everything to their one process."""

    #: True when only one process may use the store (SQLite): leases left by a
    #: previous run of this process are released on start instead of waited out.
    single_process: bool

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

    async def renew_leases(self, owner: str, incident_ids: Sequence[str], now: datetime,
                           lease: float) -> set[str]:
        """Extend ``owner``'s leases on these open incidents to ``now + lease`` in one
        write; the ids it still held (the others another replica took, nobody holds, or
        are closed: as ``claim``, which renews only an open incident's lease)."""
        ...

    async def release_leases(self, owner: str, incident_ids: Sequence[str]) -> None:
        """``release`` of many incidents in one write."""
        ...


class GuardStore(Protocol):
    """What the safety guards read and reserve: cooldowns, run counts, the action budget
    of each cluster, per-target locks and flags (``paused``, ``paused:<cluster>``)."""

    async def last_closed_at(self, incident_key: str, *, acted_only: bool) -> datetime | None: ...

    async def runs_since(self, incident_key: str, since: datetime) -> int: ...

    async def mutations_since(self, since: datetime, cluster: str = "") -> int:
        """Actions reserved against ``cluster``'s budget (``''``: the default cluster)
        since ``since``."""
        ...

    async def reserve_action(self, incident_id: str, step: str, now: datetime,
                             since: datetime, budget: int, pause_value: str,
                             cluster: str = "") -> Reservation:
        """Atomically: "paused" if the global ``paused`` flag or ``cluster``'s
        (``pause_flag(cluster)``) is set; else "tripped" (and set the cluster's flag to
        ``pause_value``) if ``budget`` actions were reserved in ``cluster`` since
        ``since``; else reserve one in ``cluster`` and return "ok". A cluster's
        reservations never count against another's budget."""
        ...

    async def acquire_target(self, target: str, incident_id: str) -> str | None:
        """Take the per-target lock; returns the holder's incident id if someone else has it."""
        ...

    async def release_target(self, target: str, incident_id: str) -> None: ...

    async def get_flag(self, name: str) -> str | None: ...

    async def set_flag(self, name: str, value: str | None) -> None: ...


class OutboxStore(Protocol):
    """Notifications: events appended in order, delivered once per sink, and the little
    state a sink keeps per incident (e.g. the chat message to update)."""

    async def append_event(self, incident_id: str, payload: str, now: datetime) -> int: ...

    async def undelivered_events(self, sink: str, limit: int) -> list[tuple[int, str, str]]:
        """(event id, incident id, payload) not yet delivered to ``sink``, oldest first."""
        ...

    async def mark_delivered(self, sink: str, event_id: int) -> None: ...

    async def sink_get(self, incident_id: str, key: str) -> str | None: ...

    async def sink_set(self, incident_id: str, key: str, value: str) -> None: ...


class ApprovalStore(Protocol):
    """Approval requests of gated steps, and their single-use decisions."""

    async def create_approval(self, record: ApprovalRecord) -> None: ...

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None: ...

    async def get_approvals(self, approval_ids: Sequence[str]) -> dict[str, ApprovalRecord]:
        """The approvals of these ids that exist, by id, in one read."""
        ...

    async def pending_approval(self, incident_id: str, step_index: int) -> ApprovalRecord | None:
        ...

    async def decide_approval(self, approval_id: str, decision: str, by: str,
                              at: datetime) -> bool:
        """Record a decision once; False when already decided (single use)."""
        ...


class TimerStore(Protocol):
    """The timers of on-call escalation chains: one per incident, fired by one replica."""

    async def set_timer(self, timer: ChainTimer) -> None:
        """Create or replace the incident's timer (unowned)."""
        ...

    async def get_timer(self, incident_id: str) -> ChainTimer | None: ...

    async def claim_timers(self, owner: str, now: datetime, lease: float,
                           limit: int) -> list[ChainTimer]:
        """Take up to ``limit`` timers due at ``now`` that nobody holds (or whose lease
        expired) for ``lease`` seconds. Concurrent callers never get the same timer."""
        ...

    async def advance_timer(self, timer: ChainTimer, owner: str,
                            after: ChainTimer | None) -> bool:
        """Compare and set: if the incident's timer is still ``timer`` (same position)
        held by ``owner``, replace it by ``after`` (unowned), or delete it (None).
        False when it moved on or was taken over meanwhile."""
        ...

    async def drop_timer(self, incident_id: str) -> None: ...


#: The tables a retention pass deletes from, in the order it reports them.
PRUNED_TABLES = ("incidents", "incident_alerts", "alerts", "steps", "timeline", "approvals",
                 "sink_state", "outbox", "deliveries", "budget", "evidence",
                 "verify_polls")


class RetentionStore(Protocol):
    """Forgetting what is old: closed incidents with their records, delivered outbox rows,
    and giving the space back."""

    async def prune(self, before: datetime, *, sinks: Sequence[str],
                    batch: int = 500) -> dict[str, int] | None:
        """Delete, in transactions of at most ``batch`` incidents (or alerts, outbox rows),
        yielding to other writers between them:

        * incidents closed before ``before``, with their steps, timeline, approvals and
          sink state, their links to alerts, and those of their alerts that no other
          incident holds and that resolved before ``before``;
        * alerts that no incident holds, unmatched or recorded resolved, last seen
          before ``before``; reservations of the action budget made before it;
        * outbox rows delivered to every sink of ``sinks``, and their deliveries.

        Never an incident that is not closed (an escalated one still firing included),
        an outbox row some sink of ``sinks`` has not had, or an episode an open incident
        holds (its re-delivery must stay a duplicate). Returns the rows deleted by table
        (``PRUNED_TABLES``), or None when another replica is pruning the shared store."""
        ...

    async def reclaim(self) -> int:
        """Give the space freed by ``prune`` back to the file system where the backend
        does not on its own (SQLite's incremental vacuum); the bytes given back."""
        ...


class EvidenceStore(Protocol):
    """What was collected from the cluster for an incident (pod logs, events)."""

    async def add_evidence(self, incident_id: str, items: Sequence[EvidenceItem], *,
                           keep: int) -> None:
        """Append ``items`` (in one transaction); then keep the incident's latest ``keep``."""
        ...

    async def list_evidence(self, incident_id: str) -> list[EvidenceItem]:
        """The incident's items, oldest first."""
        ...


class Store(LifecycleStore, IntakeStore, IncidentStore, JournalStore, ManualStore, LeaseStore,
            GuardStore, OutboxStore, ApprovalStore, RetentionStore, TimerStore, EvidenceStore,
            Protocol):
    """Every role: what a backend implements and what the daemon is handed."""
