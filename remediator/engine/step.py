"""One step of the ladder, from the journal's point of view:

    pending ─guard─▶ (refused) │ ─approval─▶ (rejected) │ ─plan─▶ intent journaled
      ─apply─▶ applied ─verify─▶ succeeded │ failed

Each arrow is journaled before the next one starts, so a run cut anywhere resumes
from the record: a journaled intent is applied as recorded (actions are idempotent),
never planned again; an applied step resumes verifying.

The step ends in one ``StepOutcome``. Its ``timeout`` bounds the action, its retries
and its verification together (from the moment the step starts acting); passing it
fails the step. Whatever the action raises, the step ends: an ``ActionError`` as the
failure it describes, anything else (a bug) as a failure journaled with its traceback.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from typing import Any

from remediator.engine import action, approvals, diagnosis, evidence
from remediator.engine.contract import Intent
from remediator.engine.outcomes import (
    Applied,
    Failed,
    Interrupted,
    Interruption,
    NotVerified,
    Refused,
    RunInterrupted,
    StepOutcome,
    Verified,
)
from remediator.engine.run import ParkedApproval, Run, StepTimedOut
from remediator.engine.verification import poll_phase
from remediator.errors import PermanentError
from remediator.model.durations import human_duration
from remediator.model.incident import IncidentState, StepRecord, StepStatus
from remediator.model.playbook import Step
from remediator.ports.sinks import EventKind

log = logging.getLogger("remediator.engine")


async def run_step(run: Run, step: Step, rec: StepRecord) -> StepOutcome:
    """Run (or resume) one step to its outcome."""
    try:
        if rec.status == StepStatus.PENDING:
            # back to an approval wait (parked, or undecided when the process stopped):
            # its diagnosis and guards ran before it was requested
            resume = run.resumes(rec.index) or await _requested(run, step, rec)
            if resume is None:
                steered = await diagnosis.before_step(run, step, rec, run.take_diagnosis())
                if steered is not None:
                    return steered
            refused = await _admit(run, step, rec, resume)
            if refused is not None:
                return refused
            if await run.firing() == 0:
                return Interrupted(Interruption.RESOLVED)
        run.deadline = (rec.started_at or run.clock.now()) + timedelta(
            seconds=step.effective_timeout)
        outcome = await _act_and_verify(run, step, rec)
        run.deadline = None
        await evidence.gather(run, step.collect, f"after step {step.name!r}")
        return outcome
    except RunInterrupted as exc:
        if exc.outcome.why == Interruption.RESOLVED and rec.status == StepStatus.INTENT \
                and rec.intent is not None and not rec.intends_change:
            await _cut_short(run, step, rec, f"ended early: {exc.outcome.detail}")
        return exc.outcome
    except StepTimedOut:
        return await failed(run, step, rec, f"timed out: the step's timeout of "
                                            f"{human_duration(step.effective_timeout)} passed")
    except action.Unexpected as exc:
        log.error("step %r: %s\n%s", step.name, exc, exc.trace, extra={"incident": run.id})
        return await failed(run, step, rec, str(exc), trace=exc.trace)
    finally:
        run.deadline = None


async def _requested(run: Run, step: Step, rec: StepRecord) -> ParkedApproval | None:
    """The step's approval, requested by an earlier run and still undecided (a restart
    resumes it): the wait to go back to without diagnosing again. Each resumed incident
    otherwise read the cluster for a second diagnosis before the same wait (10,000
    resumed after a SIGKILL: ~15 s, half of it those reads)."""
    if step.approval is None or run.dry_run:
        return None
    record = await run.deps.store.pending_approval(run.id, rec.index)
    if record is None or record.decision is not None:
        return None
    return ParkedApproval(run.id, rec.index, record.id, record.expires_at)


async def _admit(run: Run, step: Step, rec: StepRecord,
                 resume: ParkedApproval | None = None) -> Refused | None:
    """Guards, then approval; the refusal (journaled) if the step may not act.
    ``resume``: back to a parked approval wait (the guards admitted the step then)."""
    deps = run.deps
    if resume is None:
        spec = deps.catalogue.get(step.action)
        now = run.clock.now()
        refusal = await deps.guards.before_step(run.view, spec, run.dry_run)
        if refusal is not None:
            rec.started_at = now
            return await _refused(run, step, rec, refusal)
    if step.approval is not None and not run.dry_run:
        rejected = await approvals.obtain(run, step, rec, resume)
        if rejected is not None:
            now = run.clock.now()
            rec.status, rec.error, rec.started_at, rec.finished_at = \
                StepStatus.SKIPPED, rejected, now, now
            await run.journal.step("ladder", rec)
            return Refused("approval", rejected, escalate=True)
        held = await deps.guards.hold_refusal(run.view)
        if held is not None:        # acknowledged while the approval was awaited
            now = run.clock.now()
            rec.status, rec.error, rec.started_at, rec.finished_at = \
                StepStatus.SKIPPED, held.reason, now, now
            await run.journal.step("ladder", rec, "guard", f"step {step.name!r} refused by "
                                   f"{held.guard}: {held.reason}", guard=held.guard)
            return held
        await run.journal.state(IncidentState.REMEDIATING)
    rec.started_at = run.clock.now()
    return None


async def _refused(run: Run, step: Step, rec: StepRecord, refusal: Refused,
                   **data: Any) -> Refused:
    """Journal the step as refused by a guard (skipped, nothing done)."""
    deps = run.deps
    rec.status, rec.error, rec.finished_at = StepStatus.SKIPPED, refusal.reason, run.clock.now()
    await run.journal.step("ladder", rec, "guard", f"step {step.name!r} refused by "
                           f"{refusal.guard}: {refusal.reason}", guard=refusal.guard, **data)
    deps.metrics.guard_refusals.labels(refusal.guard).inc()
    deps.metrics.actions.labels(step.action, "refused").inc()
    await run.journal.emit(EventKind.STEP, step=rec)
    return refusal


async def _act_and_verify(run: Run, step: Step, rec: StepRecord) -> StepOutcome:
    deps = run.deps
    if rec.status == StepStatus.PENDING:
        try:
            intent = await action.plan(run, step.action, step.name, step.params,
                                       step.retries)
        except action.PLAN_ERRORS as exc:
            return await failed(run, step, rec, f"could not plan: {action.reason(exc)}")
        forbidden = deps.guards.intent_refusal(intent)
        if forbidden is not None:
            return await _refused(run, step, rec, forbidden[0], **forbidden[1])
        spec = deps.catalogue.get(step.action)
        rec.intent = {**intent.model_dump(), "mutates": spec.mutates_cluster
                      and not run.dry_run and not intent.noop}
        rec.status = StepStatus.INTENT
        # the intent is durable before any API call (the note is in the same write)
        await run.journal.step("ladder", rec, "step", f"step {step.name!r}: "
                               f"{'would ' if run.dry_run else ''}{intent.description}",
                               step=step.name, intent=rec.intent)
        await run.journal.emit(EventKind.STEP, step=rec)
    if rec.status == StepStatus.INTENT:
        outcome = await _apply(run, step, rec)
        if outcome is not None:
            return outcome
    if step.verify is None:
        if rec.status != StepStatus.DRY_RUN:
            rec.status = StepStatus.SUCCEEDED
        rec.finished_at = run.clock.now()
        await run.journal.step("ladder", rec)
        await run.journal.emit(EventKind.STEP, step=rec)
        return Applied(rec.result or "")
    return await verify_step(run, step, rec)


async def _apply(run: Run, step: Step, rec: StepRecord) -> StepOutcome | None:
    """Apply the journaled intent; an outcome only when the step ends here."""
    deps = run.deps
    assert rec.intent is not None
    intent = Intent.model_validate({k: v for k, v in rec.intent.items() if k != "mutates"})
    if run.dry_run:
        rec.status, rec.result = StepStatus.DRY_RUN, f"dry-run: would {intent.description}"
        deps.metrics.actions.labels(step.action, "dry_run").inc()
    elif intent.noop:
        rec.status, rec.result = StepStatus.APPLIED, f"nothing to do: {intent.description}"
        deps.metrics.actions.labels(step.action, "noop").inc()
    else:
        if await run.firing() == 0:                        # never act on a resolved alert
            rec.status, rec.finished_at = StepStatus.SKIPPED, run.clock.now()
            rec.result = "not called: the alert resolved first"
            rec.intent = {**rec.intent, "mutates": False}      # nothing reached the cluster
            await run.journal.step("ladder", rec, "step", f"step {step.name!r}: {rec.result}",
                                   step=step.name)
            return Interrupted(Interruption.RESOLVED)
        try:
            result = await action.apply(run, step.action, step.name, intent, step.retries, rec)
        except action.Unexpected:
            deps.metrics.actions.labels(step.action, "error").inc()
            raise
        except PermanentError as exc:
            deps.metrics.actions.labels(step.action, "permanent_error").inc()
            return await failed(run, step, rec, str(exc))
        rec.status, rec.result = StepStatus.APPLIED, result.summary
        deps.metrics.actions.labels(step.action, "success").inc()
        patch = result.details.get("context")
        if isinstance(patch, dict):
            await run.journal.context(patch)
    started = rec.started_at or run.clock.now()
    deps.metrics.step_duration.labels(step.action).observe(
        (run.clock.now() - started).total_seconds())
    await run.journal.step("ladder", rec, "step", f"step {step.name!r}: {rec.result}",
                           step=step.name)
    return None


async def _cut_short(run: Run, step: Step, rec: StepRecord, result: str) -> None:
    """A step that changes nothing (a wait) ended by a resolve: journaled as skipped."""
    rec.status, rec.result, rec.finished_at = StepStatus.SKIPPED, result, run.clock.now()
    await run.journal.step("ladder", rec, "step", f"step {step.name!r}: {result}",
                           step=step.name)


async def failed(run: Run, step: Step, rec: StepRecord, reason: str, *,
                 trace: str | None = None) -> Failed:
    """Journal the step as failed (with the traceback of a bug, if any)."""
    rec.status, rec.error, rec.finished_at = StepStatus.FAILED, reason, run.clock.now()
    data: dict[str, Any] = {"step": step.name}
    if trace is not None:
        data["traceback"] = trace
    await run.journal.step("ladder", rec, "step", f"step {step.name!r} failed: {reason}",
                           **data)
    await run.journal.emit(EventKind.STEP, step=rec)
    return Failed(reason)


async def verify_step(run: Run, step: Step, rec: StepRecord) -> StepOutcome:
    """The verification stage of a step: poll until it holds, times out, or the alerts
    resolve; journal the verdict on the step record."""
    assert step.verify is not None
    deps = run.deps
    dry_run = rec.status == StepStatus.DRY_RUN
    if rec.verify_started_at is None:
        rec.verify_started_at = run.clock.now()
        if not dry_run:
            rec.status = StepStatus.VERIFYING
        await run.journal.step("ladder", rec)
    # alert_resolved asks Alertmanager about every alert still firing, not only the
    # ones in the view
    firing = ([{"fingerprint": fp, "status": "firing"}
               for fp in await deps.store.firing_fingerprints(run.id)]
              if step.verify.alert_resolved else [])

    verdict = await deps.verifier.run(
        step.verify, context=run.template_context(), target=run.view.target,
        started_at=rec.verify_started_at, firing=run.firing_lately, wait=run.wait,
        alerts=deps.ports.alerts, incident_alerts=firing,
        on_poll=partial(run.journal.poll, "ladder", rec),
        phase=poll_phase(f"{run.id}/{rec.index}"))
    took = (run.clock.now() - rec.verify_started_at).total_seconds()
    deps.metrics.verify_duration.labels("held" if verdict.held else "failed").observe(took)
    rec.verify, rec.finished_at = verdict.summary, run.clock.now()
    if not dry_run:
        rec.status = StepStatus.SUCCEEDED if verdict.held else StepStatus.FAILED
    await run.journal.step("ladder", rec, "verify",
                           f"step {step.name!r} verification: {verdict.summary}",
                           step=step.name, held=verdict.held)
    await run.journal.emit(EventKind.STEP, step=rec)
    if verdict.resolved:
        return Interrupted(Interruption.RESOLVED, verdict.summary)
    return Verified(verdict.summary) if verdict.held else NotVerified(verdict.summary)
