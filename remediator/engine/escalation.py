"""Escalation: hand the incident to humans, with the playbook's escalate actions.

The state and an ``escalation: pending`` mark are written together first, so a run
cut after that finishes the actions on the next start instead of leaving an escalated
incident unpaged. Every action first gets a few quick tries (the page goes out even
while Jira is down); those that met only temporary errors then keep trying, for up to
``escalation_retry_for``, each in turn.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from remediator.engine import action, evidence
from remediator.engine.handoff import ack_of
from remediator.engine.outcomes import RunInterrupted
from remediator.engine.run import Run, StepTimedOut
from remediator.engine.silences import lift
from remediator.errors import ActionError
from remediator.model.incident import ALERTS_IN_VIEW, IncidentState, StepRecord, StepStatus
from remediator.model.playbook import Escalation
from remediator.ports.sinks import EventKind

_SETTLED = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.DRY_RUN)


async def escalate(run: Run, reason: str, *, guard: str = "exhausted",
                   run_actions: bool = True) -> None:
    run.deps.metrics.escalations.labels(run.view.playbook, guard).inc()
    await lift_run(run, "escalating")          # never escalate under a silence
    mark = {"escalation": "pending" if run_actions else "suppressed"}
    run.view.context.update(mark)
    # stored before the escalation's notification, which shares it with humans (not in a
    # storm whose escalation is suppressed: thousands of incidents would read the cluster)
    if run_actions:
        await evidence.gather(run, ("logs", "events"), "escalation")
    await run.journal.state(IncidentState.ESCALATED, reason, context=mark)
    if not run_actions:
        await run.journal.note("escalate", "escalation actions suppressed: automation is "
                                           "paused and the storm was already escalated once")
        return
    await run_escalation(run)


async def run_escalation(run: Run) -> None:
    """Run the playbook's escalation actions that have not run yet (journaled each)."""
    pb = run.deps.playbooks.get(run.view.playbook)
    if pb is None:
        return
    store = run.deps.store
    fresh = await store.get_incident(run.id, alert_limit=ALERTS_IN_VIEW)
    if fresh is not None:
        run.attach(fresh)
    await lift_run(run, "escalating")          # resumed after a crash: lifted first
    ack = ack_of(run.view)
    if ack is not None:          # a human has it already: nobody else is paged
        await run.journal.note("escalate", f"escalation stopped: acknowledged by {ack['by']}")
        await run.journal.context({"escalation": "done"})
        return
    done = {s.index: s for s in run.view.steps if s.action.startswith("escalate:")}
    later: list[tuple[Escalation, StepRecord]] = []
    refresh = bool(done)        # records updated in place below: the actions read anew
    cfg = run.deps.settings
    for index, esc in enumerate(pb.spec.escalate):
        rec = done.get(index) or StepRecord(index=index, name=f"escalate {index + 1}",
                                            action=f"escalate:{esc.action or 'policy'}")
        if rec.status in _SETTLED:
            continue
        if esc.policy is not None:
            await _start_chain(run, esc.policy, rec)
            continue
        # the first action to run gets the view just read (nothing was written since)
        if not await _escalate_one(run, esc, rec, retries=cfg.escalation_retries,
                                   refresh=refresh):
            later.append((esc, rec))
        refresh = True
    until = run.clock.now() + timedelta(seconds=cfg.escalation_retry_for)
    for esc, rec in later:
        await _escalate_one(run, esc, rec, retries=0, until=until, refresh=True)
    await run.journal.context({"escalation": "done"})


async def _start_chain(run: Run, policy: str, rec: StepRecord) -> None:
    """An ``escalate: - policy:`` entry: start the incident's on-call chain (its timer,
    in the store, is fired by ``engine/chain.py``)."""
    chains = run.deps.chains
    rec.started_at = rec.started_at or run.clock.now()
    if run.dry_run:
        rec.status, rec.result = StepStatus.DRY_RUN, f"dry-run: would page policy {policy!r}"
    elif chains is None or policy not in chains.policies:
        rec.status, rec.error = StepStatus.FAILED, f"escalation policy {policy!r} is not " \
                                                   "configured"
    else:
        await chains.start(run.id, policy)
        rec.status, rec.result = StepStatus.SUCCEEDED, f"escalation policy {policy!r} started"
    rec.finished_at = run.clock.now()
    await run.journal.step("escalate", rec, "escalate", f"policy {policy}: "
                           f"{rec.result or rec.error}")
    await run.journal.emit(EventKind.STEP, step=rec)


async def _escalate_one(run: Run, esc: Escalation, rec: StepRecord, *, retries: int,
                        until: datetime | None = None, refresh: bool = True) -> bool:
    """Run one escalation action. False when it met only temporary errors and its
    retries ran out (it may be tried again later); True when it is settled."""
    deps = run.deps
    rec.started_at = rec.started_at or run.clock.now()
    if refresh:
        view = await deps.store.get_incident(run.id, alert_limit=ALERTS_IN_VIEW)
        if view is not None:         # the action sees the incident as stored now
            run.attach(view)
    try:
        intent = await action.plan(run, esc.action, rec.name, esc.params, retries,
                                   until=until)
        rec.intent = {**intent.model_dump(), "mutates": False}
        if run.dry_run:
            rec.status, rec.result = StepStatus.DRY_RUN, f"dry-run: would {intent.description}"
        else:
            rec.status = StepStatus.INTENT
            await run.journal.step("escalate", rec)
            result = await action.apply(run, esc.action, rec.name, intent, retries, rec,
                                        until=until)
            rec.status, rec.result = StepStatus.SUCCEEDED, result.summary
            patch = result.details.get("context")
            if isinstance(patch, dict):
                await run.journal.context(patch)
        deps.metrics.actions.labels(esc.action, "dry_run" if run.dry_run else "success").inc()
    except action.RetriesExhausted as exc:
        if until is None:
            rec.error = f"{action.reason(exc)}; trying again for a while"
            await run.journal.step("escalate", rec, "escalate", f"{esc.action}: {rec.error}",
                                   level=logging.WARNING)
            return False
        rec.status, rec.error = StepStatus.FAILED, action.reason(exc)
        deps.metrics.actions.labels(esc.action, "temporary_error").inc()
    except (RunInterrupted, StepTimedOut):
        raise
    except (*action.PLAN_ERRORS, ActionError) as exc:    # permanent, or could not plan
        rec.status, rec.error = StepStatus.FAILED, action.reason(exc)
        deps.metrics.actions.labels(esc.action, "permanent_error").inc()
    if rec.status != StepStatus.FAILED:
        rec.error = None
    rec.finished_at = run.clock.now()
    failed = rec.status == StepStatus.FAILED          # humans were not reached this way
    await run.journal.step("escalate", rec, "escalate", f"{esc.action}: {rec.result or rec.error}",
                           level=logging.WARNING if failed else logging.INFO)
    await run.journal.emit(EventKind.STEP, step=rec)
    return True


async def lift_run(run: Run, why: str) -> None:
    """Expire the incident's Alertmanager silences (see ``engine/silences.py``)."""
    await lift(run.deps.store, run.deps.ports.silences, run.clock, run.id, run.view.context,
               why)
