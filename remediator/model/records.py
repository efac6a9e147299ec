"""The records that cross the store boundary: alerts and their routes going in, what
intake decided coming out, approvals, and the verdict of ``reserve_action``.

Plain frozen dataclasses and enums, no I/O; the role protocols that use them are in
``remediator.ports.store`` (which re-exports them all).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from remediator.model.incident import (
    POLLS_KEPT,
    IncidentView,
    StepRecord,
    TargetRef,
    VerifyPoll,
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


def poll_slot(number: int) -> int:
    """Where the store keeps poll ``number`` (1: the first) of a verification: slot 1
    for the first, then slots 2 to ``POLLS_KEPT`` in turn, each poll overwriting the
    one ``POLLS_KEPT - 1`` before it. So the first and the latest ``POLLS_KEPT - 1``
    are kept, and a poll is one row written in place (migration 0010)."""
    return 1 if number <= 1 else 2 + (number - 2) % (POLLS_KEPT - 1)


def attach_polls(steps: Iterable[tuple[str, StepRecord]],
                 rows: Iterable[tuple[str, int, int, str]]) -> None:
    """Give journaled steps, ``(phase, record)``, their verification polls from the
    store's rows ``(phase, step index, poll number, VerifyPoll JSON)`` in poll order:
    the first and the latest ``POLLS_KEPT - 1``; ``poll_count`` is the highest number."""
    by_key = {(phase, rec.index): rec for phase, rec in steps}
    for phase, index, number, record in rows:
        rec = by_key.get((phase, index))
        if rec is not None:
            rec.polls.append(VerifyPoll.model_validate_json(record))
            rec.poll_count = max(rec.poll_count, number)
    for rec in by_key.values():
        if len(rec.polls) > POLLS_KEPT:
            del rec.polls[1:len(rec.polls) - POLLS_KEPT + 1]


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


class Reservation(StrEnum):
    """What ``reserve_action`` decided. A ``str``: ``verdict == "ok"`` still works."""

    OK = "ok"              # one action reserved against the cluster's budget
    TRIPPED = "tripped"    # the cluster's budget is spent: its pause flag was just set
    PAUSED = "paused"      # automation was already paused (everywhere or in the cluster)


GLOBAL_PAUSE = "paused"    # the flag of the kill switch for every cluster


def pause_flag(cluster: str) -> str:
    """The flag that pauses one cluster (``''``: the default one). Cluster names are
    DNS-1123 labels, so ``paused:<name>`` never collides with another flag."""
    return f"{GLOBAL_PAUSE}:{cluster}"


@dataclass(frozen=True)
class ChainTimer:
    """What an incident's on-call chain fires next, and when (see ``engine/chain.py``)."""

    incident_id: str
    policy: str
    level: int              # index in the policy's levels
    round: int              # 0 the first time through, 1 after the first repeat, …
    step: int               # 0: the level's page; k: its k-th reminder
    level_at: datetime      # when the level's page fell due (reminders count from it)
    due_at: datetime

    @property
    def position(self) -> tuple[int, int, int]:
        return (self.round, self.level, self.step)
