"""The ladder's decision, table-driven: journal so far (+ the last outcome) → next move.

No engine, no store, no clock: ``decide`` is a pure function."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from remediator.engine.ladder import EXHAUSTED, acted, closing_state, decide
from remediator.engine.outcomes import (
    Applied,
    CloseResolved,
    Escalate,
    Failed,
    Halt,
    Interrupted,
    Interruption,
    Move,
    NotVerified,
    Recover,
    Refused,
    RunStep,
    StepOutcome,
    Verified,
)
from remediator.model.incident import IncidentState, StepRecord, StepStatus

T = datetime(2026, 12, 4, tzinfo=UTC)
MUTATES = {"action": "kubernetes.restart", "description": "restart", "mutates": True}
HARMLESS = {"action": "wait", "description": "wait 60s", "mutates": False}


def rec(index: int, status: StepStatus, *, intent: dict[str, Any] | None = None,
        verify: str | None = None, action: str = "kubernetes.restart",
        finished: bool = False) -> StepRecord:
    return StepRecord(index=index, name=f"s{index}", action=action, status=status,
                      intent=intent, verify=verify,
                      verify_started_at=T if verify is not None else None,
                      finished_at=T if finished or status in (StepStatus.SUCCEEDED,
                                                              StepStatus.FAILED,
                                                              StepStatus.SKIPPED) else None)


S, F, K, P = StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.PENDING

DECISIONS: list[tuple[str, int, list[StepRecord], tuple[int, StepOutcome] | None, Move]] = [
    ("nothing journaled: the first step", 3, [], None, RunStep(0)),
    ("a step cut mid-way resumes", 3, [rec(0, StepStatus.INTENT, intent=MUTATES)], None,
     RunStep(0)),
    ("a step cut while verifying resumes", 3,
     [rec(0, StepStatus.VERIFYING, intent=MUTATES)], None, RunStep(0)),
    ("a failed step: the next one", 3, [rec(0, F, intent=MUTATES)], None, RunStep(1)),
    ("a refused (skipped) step: the next one", 2, [rec(0, K)], None, RunStep(1)),
    ("no verification, applied: the next one", 2, [rec(0, S, intent=HARMLESS)],
     (0, Applied("waited 60s")), RunStep(1)),
    ("not verified: the next one", 2, [rec(0, F, intent=MUTATES, verify="did not hold")],
     (0, NotVerified("did not hold within 300s")), RunStep(1)),
    ("verified: recover at that step", 2, [rec(0, S, intent=MUTATES, verify="held")],
     (0, Verified("held: 1 series")), Recover(0, "held: 1 series")),
    ("verified in the journal, the state write was cut: recover", 3,
     [rec(0, F, intent=MUTATES, verify="no"), rec(1, S, intent=MUTATES, verify="held")],
     None, Recover(1, "held")),
    ("an unverified success is not a recovery", 2, [rec(0, S, intent=MUTATES)], None,
     RunStep(1)),
    ("the alerts resolved", 3, [rec(0, StepStatus.VERIFYING, intent=MUTATES)],
     (0, Interrupted(Interruption.RESOLVED)), CloseResolved()),
    ("shutting down halts without a state change", 3, [],
     (0, Interrupted(Interruption.STOPPING)), Halt(Interruption.STOPPING)),
    ("a lost lease halts", 3, [], (0, Interrupted(Interruption.LOST)),
     Halt(Interruption.LOST)),
    ("a refusal that escalates", 3, [rec(0, K)],
     (0, Refused("budget", "storm", escalate=True, run_escalation=False)),
     Escalate("storm", "budget", False)),
    ("a refusal that only skips", 2, [rec(0, K)], (0, Refused("paused", "no")), RunStep(1)),
    ("a permanent failure: the next one", 2, [rec(0, F, intent=MUTATES)],
     (0, Failed("403 forbidden")), RunStep(1)),
    ("every step finished: exhausted", 2, [rec(0, F, intent=MUTATES), rec(1, K)], None,
     Escalate(EXHAUSTED, "exhausted")),
    ("a failed last step: exhausted", 1, [rec(0, F, intent=MUTATES)],
     (0, Failed("boom")), Escalate(EXHAUSTED, "exhausted")),
    ("a finished dry run step: the next one", 2,
     [rec(0, StepStatus.DRY_RUN, finished=True)], None, RunStep(1)),
    ("an unfinished dry run step resumes", 2, [rec(0, StepStatus.DRY_RUN)], None, RunStep(0)),
    ("a pending record runs", 2, [rec(0, P)], None, RunStep(0)),
    ("no steps at all: exhausted", 0, [], None, Escalate(EXHAUSTED, "exhausted")),
]


@pytest.mark.parametrize(("steps", "records", "last", "move"),
                         [d[1:] for d in DECISIONS], ids=[d[0] for d in DECISIONS])
def test_decide(steps: int, records: list[StepRecord],
                last: tuple[int, StepOutcome] | None, move: Move) -> None:
    assert decide(steps, {r.index: r for r in records}, last) == move


CLOSING: list[tuple[str, list[StepRecord], bool, IncidentState]] = [
    ("no step ran", [], False, IncidentState.RESOLVED),
    ("only a wait ran", [rec(0, S, intent=HARMLESS, action="wait")], False,
     IncidentState.RESOLVED),
    ("a wait while it was waiting", [rec(0, StepStatus.INTENT, intent=HARMLESS,
                                         action="wait")], False, IncidentState.RESOLVED),
    ("a restart applied", [rec(0, StepStatus.APPLIED, intent=MUTATES)], False,
     IncidentState.RECOVERED),
    ("a restart whose call may have happened", [rec(0, StepStatus.INTENT, intent=MUTATES)],
     False, IncidentState.RECOVERED),
    ("a restart that failed permanently (may have partly happened)",
     [rec(0, F, intent=MUTATES)], False, IncidentState.RECOVERED),
    ("a restart refused by a guard", [rec(0, K, intent=MUTATES)], False,
     IncidentState.RESOLVED),
    ("a dry-run restart", [rec(0, StepStatus.DRY_RUN,
                               intent={**MUTATES, "mutates": False})], False,
     IncidentState.RESOLVED),
    ("escalated after a restart", [rec(0, F, intent=MUTATES)], True, IncidentState.RESOLVED),
    ("an escalation action does not count",
     [rec(0, S, intent={"action": "jira.incident", "description": "x", "mutates": True},
          action="escalate:jira.incident")], False, IncidentState.RESOLVED),
]


@pytest.mark.parametrize(("records", "escalated", "state"), [c[1:] for c in CLOSING],
                         ids=[c[0] for c in CLOSING])
def test_closing_state(records: list[StepRecord], escalated: bool,
                       state: IncidentState) -> None:
    assert closing_state(records, escalated=escalated) == state
    if not escalated:
        assert acted(records) == (state == IncidentState.RECOVERED)
