"""What a stage hands back: typed outcomes, never strings or tuples.

A step of the ladder ends in exactly one ``StepOutcome``::

    Verified(summary)                the action applied and the verification held
    Applied(summary)                 the action applied; the step has no verification
    NotVerified(reason, last_values) the verification did not hold within its timeout
    Failed(error, permanent)         the action (or its planning) failed
    Refused(guard, reason, escalate) a guard or a human said no before any call
    Interrupted(why)                 the run must stop: resolved, lost, stopping, …

``remediator.engine.ladder.decide`` turns the journal plus the last outcome into the
next ``Move``. This module holds data only: no I/O, no clock, no store.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Interruption(StrEnum):
    """Why a run stopped before its ladder ended."""

    RESOLVED = "resolved"          # the incident's alerts resolved
    STOPPING = "stopping"          # the daemon shuts down; the journal says where we were
    LOST = "lost"                  # another replica took the incident over (its lease)


@dataclass(frozen=True, slots=True)
class Verified:
    summary: str


@dataclass(frozen=True, slots=True)
class Applied:
    summary: str


@dataclass(frozen=True, slots=True)
class NotVerified:
    reason: str
    last_values: str = ""


@dataclass(frozen=True, slots=True)
class Failed:
    error: str
    permanent: bool = True


@dataclass(frozen=True, slots=True)
class Refused:
    guard: str                      # namespace, cooldown, budget, paused, approval, …
    reason: str
    escalate: bool = False          # hand the incident to humans now (not only skip the step)
    run_escalation: bool = True     # with ``escalate``: run the playbook's escalate actions


@dataclass(frozen=True, slots=True)
class Interrupted:
    why: Interruption
    detail: str = ""


StepOutcome = Verified | Applied | NotVerified | Failed | Refused | Interrupted


class RunInterrupted(Exception):
    """Raised by a wait (or any stage) deep inside a step; the run turns it into
    ``Interrupted``. The only exception that crosses stage boundaries on purpose."""

    def __init__(self, why: Interruption, detail: str = "") -> None:
        super().__init__(detail or why.value)
        self.outcome = Interrupted(why, detail)


# --- what the ladder decides -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunStep:
    index: int


@dataclass(frozen=True, slots=True)
class Recover:
    step: int
    summary: str


@dataclass(frozen=True, slots=True)
class CloseResolved:
    pass


@dataclass(frozen=True, slots=True)
class Escalate:
    reason: str
    guard: str = "exhausted"
    run_actions: bool = True


@dataclass(frozen=True, slots=True)
class Halt:
    """Stop the run without changing the incident (shutdown, lost lease): it resumes
    from the journal on the next wake."""

    why: Interruption


Move = RunStep | Recover | CloseResolved | Escalate | Halt
