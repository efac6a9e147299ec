"""The ladder's decision: given the journal so far, what happens next?

Pure functions over step records and outcomes: no I/O, no clock, no store. The
incident run asks ``decide`` after every step (and once when it resumes from the
journal) and does what the returned ``Move`` says::

    a step verified                → Recover
    the alerts resolved            → CloseResolved (recovered if we changed the cluster)
    a guard or a human refused and
      the refusal escalates        → Escalate
    shutting down / lease lost     → Halt (resume from the journal later)
    otherwise                      → RunStep(first step not finished), or, when every
                                     step is finished, Escalate("exhausted")

Only steps that change the cluster count as remediation (``acted``): a ``wait``, an
``http.post`` or a Slack message in the ladder does not make an incident "recovered",
nor start a cooldown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from remediator.engine.outcomes import (
    CloseResolved,
    Escalate,
    Halt,
    Interrupted,
    Interruption,
    Move,
    Recover,
    Refused,
    RunStep,
    StepOutcome,
    Verified,
)
from remediator.model.incident import IncidentState, StepRecord, StepStatus

EXHAUSTED = "every step was tried and the alert is still firing"

_FINISHED = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED})
# statuses after which a mutating intent may have reached the cluster
_REACHED = frozenset({StepStatus.INTENT, StepStatus.APPLIED, StepStatus.VERIFYING,
                      StepStatus.SUCCEEDED, StepStatus.FAILED})


def finished(rec: StepRecord) -> bool:
    """The step is over: it will not be run or verified again."""
    if rec.status in _FINISHED:
        return True
    return rec.status == StepStatus.DRY_RUN and rec.finished_at is not None


def verified(rec: StepRecord) -> bool:
    """The step's verification held (it had one, and it is journaled as succeeded)."""
    return rec.status == StepStatus.SUCCEEDED and rec.verify is not None and rec.error is None \
        and rec.verify_started_at is not None


def mutated(rec: StepRecord) -> bool:
    """The step's action may have changed the cluster (a mutating intent was journaled
    and not refused). A permanent error counts: the call may have partly happened."""
    return rec.status in _REACHED and rec.intends_change


def acted(records: Iterable[StepRecord]) -> bool:
    """Whether remediation changed the cluster for this incident."""
    return any(mutated(r) for r in records if not r.action.startswith("escalate:"))


def closing_state(records: Iterable[StepRecord], *, escalated: bool) -> IncidentState:
    """The state an incident closes in when its alerts resolve."""
    if escalated or not acted(records):
        return IncidentState.RESOLVED
    return IncidentState.RECOVERED


def decide(step_count: int, records: Mapping[int, StepRecord],
           last: tuple[int, StepOutcome] | None = None) -> Move:
    """The next move of a ladder of ``step_count`` steps, from its journaled records
    (by step index) and the outcome of the step that just ran, if any."""
    if last is not None:
        index, outcome = last
        match outcome:
            case Verified(summary=summary):
                return Recover(index, summary)
            case Interrupted(why=Interruption.RESOLVED):
                return CloseResolved()
            case Interrupted(why=why):
                return Halt(why)
            case Refused(escalate=True) as refused:
                return Escalate(refused.reason, refused.guard, refused.run_escalation)
            case _:
                pass                # applied, not verified, failed, refused: go on
    for index in range(step_count):
        rec = records.get(index)
        if rec is None:
            return RunStep(index)
        if verified(rec):           # journaled as held, the state write was cut: recover
            return Recover(index, rec.verify or "")
        if not finished(rec):
            return RunStep(index)
    return Escalate(EXHAUSTED, "exhausted")
