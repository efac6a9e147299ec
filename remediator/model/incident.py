"""Incidents as the rest of the system sees them: states, steps, timeline events.

An incident is keyed by ``(playbook, rendered target)``; alerts that map to the
same key while it is open attach to it. The engine owns the transitions; the
store persists these records; the API and the notifiers read them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


class IncidentState(StrEnum):
    OPEN = "open"                      # created, not yet acted on
    REMEDIATING = "remediating"        # the step ladder is running
    AWAITING_APPROVAL = "awaiting_approval"
    RECOVERED = "recovered"            # a step verified, or the alert resolved after we acted
    ESCALATED = "escalated"            # automation gave up; humans have it
    RESOLVED = "resolved"              # the alert resolved (by itself, or after escalation)

    @property
    def active(self) -> bool:
        """True while the engine still has work to do for the incident."""
        return self in (IncidentState.OPEN, IncidentState.REMEDIATING,
                        IncidentState.AWAITING_APPROVAL)

    @property
    def closed(self) -> bool:
        """True for the states an incident ends in (an escalated one closes later, when
        its alerts resolve)."""
        return self in (IncidentState.RECOVERED, IncidentState.RESOLVED)


class StepStatus(StrEnum):
    PENDING = "pending"
    INTENT = "intent"              # intent journaled, the API call may or may not have happened
    APPLIED = "applied"            # the action succeeded; verification pending
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"        # action applied and verification held
    FAILED = "failed"              # verification did not hold, or the action failed
    SKIPPED = "skipped"            # refused by a guard, rejected approval, cancelled by resolution
    DRY_RUN = "dry_run"            # would have acted


class TargetRef(BaseModel, frozen=True):
    """The object a playbook's steps act on, after rendering and validation."""

    kind: str
    namespace: str
    name: str
    cluster: str = ""           # a name under settings' kubernetes.clusters; "": the default

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name  # a Node: none
        return f"{self.kind} {where}" + (f" in cluster {self.cluster}" if self.cluster else "")


#: Polls of one verification kept on its step record (the first and the latest ones),
#: and the series of one query kept in a poll.
POLLS_KEPT = 30
SERIES_KEPT = 10


class SeriesValue(BaseModel):
    """One series of an instant-query result: its labels and its value as Prometheus
    sent it (a string: "NaN" and "+Inf" are values too)."""

    labels: dict[str, str] = Field(default_factory=dict)
    value: str


class PromqlPoll(BaseModel):
    """What one promql check saw: the rendered query and the values it returned."""

    query: str
    series: int = 0                            # series returned (only the first are kept)
    samples: list[SeriesValue] = Field(default_factory=list)
    # a filtering comparison (``lhs < 0.05``) that dropped every series: its left side,
    # queried on its own, and the values it has now
    lhs: str | None = None
    lhs_series: int = 0
    lhs_samples: list[SeriesValue] = Field(default_factory=list)
    comparison: str | None = None              # "< 0.05", "bool", None: any sample holds
    error: str | None = None                   # Prometheus could not be asked: no value


class VerifyPoll(BaseModel):
    """One poll of a step's verification: journaled as measured (a row of its own in the
    store), and kept on the step record (``StepRecord.polls``)."""

    at: datetime
    # holds: every check held on this poll; not_met: one did not; unavailable: a
    # dependency could not be asked (not a value); failed: it can no longer hold
    verdict: Literal["holds", "not_met", "unavailable", "failed"]
    held_for: float = 0.0                      # seconds the checks have held so far
    needs_for: float = 0.0                     # seconds they must hold (``for``)
    promql: PromqlPoll | None = None
    rollout: str | None = None
    alerts: str | None = None
    text: str = ""                             # the poll in words


class EvidenceItem(BaseModel):
    """One thing collected from the cluster for an incident: a container's log (redacted,
    capped) or an object's events."""

    at: datetime
    kind: Literal["logs", "events"]
    moment: str                                # "escalation", or "after step 'restart'"
    namespace: str
    pod: str | None = None                     # logs: the pod; events: the object's name
    object_kind: str = "Pod"
    container: str | None = None
    previous: bool = False                     # the last terminated instance
    text: str = ""
    truncated: bool = False                    # cut to the byte cap
    redacted: int = 0                          # matches of the redaction patterns replaced

    @property
    def title(self) -> str:
        """``logs of pod shop/cart-1 container app (previous)``."""
        if self.kind == "events":
            return f"events of {self.object_kind.lower()} {self.namespace}/{self.pod}"
        what = f"logs of pod {self.namespace}/{self.pod} container {self.container}"
        return what + (" (previous)" if self.previous else "")


class StepRecord(BaseModel):
    index: int
    name: str
    action: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0                         # calls of the action (retries included)
    intent: dict[str, Any] | None = None      # Intent.model_dump(): what we computed before calling
    result: str | None = None                 # human summary of the outcome
    error: str | None = None
    verify: str | None = None                 # human summary of the verification
    verify_started_at: datetime | None = None
    # the verification's polls (at most POLLS_KEPT: the first, then the latest), and
    # how many there were in all
    polls: list[VerifyPoll] = Field(default_factory=list)
    poll_count: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def add_poll(self, poll: VerifyPoll, keep: int = POLLS_KEPT) -> None:
        """Count ``poll`` and keep it: the first poll stays, then the latest ``keep - 1``
        (``keep=1``: the latest only)."""
        self.poll_count += 1
        if keep <= 1:
            self.polls[:] = [poll]
            return
        self.polls.append(poll)
        if len(self.polls) > keep:
            del self.polls[1]

    def journal_json(self) -> str:
        """The record as the store journals it: without its polls, which are journaled
        one by one as they are measured (``journal_poll``) and given back on read."""
        return self.model_dump_json(exclude={"polls"})

    def slim(self) -> StepRecord:
        """This record with its latest poll only (notification events carry it: the
        polls are read from the store by those who need them)."""
        return self if len(self.polls) <= 1 else self.model_copy(
            update={"polls": self.polls[-1:]})

    @property
    def intends_change(self) -> bool:
        """Its journaled intent changes the cluster (the ``mutates`` mark)."""
        return bool(self.intent and self.intent.get("mutates"))


class TimelineEntry(BaseModel):
    at: datetime
    kind: str           # received, guard, step, verify, approval, escalate, state, notify, resolved
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


#: Alerts an incident run, its actions and its notifications read: the first ones (by
#: arrival), with ``alert_count`` and ``firing_count`` for all (verification asks the
#: store for every firing fingerprint). An incident that gathered thousands of alerts in
#: a storm costs each step, page and event the same as one with a few (a notification
#: event stores its view in the outbox), and its Jira report stays under Jira's size
#: limit.
ALERTS_IN_VIEW = 20


class IncidentSummary(BaseModel):
    """One row of the incident list: an incident without its alerts, steps, timeline,
    context and notify spec (``IncidentView`` is the full view)."""

    id: str
    key: str
    playbook: str
    target: TargetRef | None
    state: IncidentState
    dry_run: bool = False
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    first_alert_at: datetime | None = None
    # every alert of the incident, and those still firing (a view's ``alerts`` may hold
    # only the first few of them: ``Store.get_incident(alert_limit=…)``)
    alert_count: int = 0
    firing_count: int = 0
    summary: str = ""


class IncidentView(IncidentSummary):
    """A full snapshot of one incident: what the API returns and notifiers render."""

    alerts: list[dict[str, Any]] = Field(default_factory=list)   # labels, annotations, urls
    steps: list[StepRecord] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    context: dict[str, Any] = Field(default_factory=dict)        # events, restarts, tickets
    notify: dict[str, Any] = Field(default_factory=dict)         # the playbook's spec.notify

    @property
    def total_alerts(self) -> int:
        """Every alert of the incident, also for a view built without the counts."""
        return max(self.alert_count, len(self.alerts))
