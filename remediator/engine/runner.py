"""One incident, run to its end: guards, the step ladder, verification, escalation.

The runner is restartable at any point: everything it decides is journaled
first, and on start it reads the journal back. A step whose intent was written
but whose outcome was not is re-applied from the *recorded* intent (actions are
idempotent), never planned again; a step that was applied resumes verifying.

Outcomes of a step: the verification held → recovered; it did not, or the
action failed permanently → next step; the alerts resolved → recovered (if we
acted) or resolved. The ladder exhausted, a refusing guard, a rejected or
expired approval → escalate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from remediator.actions import registry
from remediator.actions.base import ActionContext, IncidentSnapshot, Intent
from remediator.engine.routing import template_context
from remediator.errors import ActionError, PermanentError, TemplateError, TemporaryError
from remediator.model.incident import (
    ALERTS_IN_VIEW,
    IncidentState,
    IncidentView,
    StepRecord,
    StepStatus,
    TimelineEntry,
)
from remediator.model.playbook import Escalation, Playbook, Step
from remediator.notify.base import EventKind
from remediator.templating import render_value

if TYPE_CHECKING:
    from remediator.engine.core import Engine, Slot

log = logging.getLogger("remediator.engine")
T = TypeVar("T")

_DONE = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED)


class Stop(Exception):
    """Internal: the ladder stops here (resolved, escalated, shutting down)."""


class RetriesExhausted(PermanentError):
    """Temporary errors went on for every retry allowed."""


class IncidentRun:
    def __init__(self, engine: Engine, incident_id: str, wake: asyncio.Event,
                 slot: Slot | None = None) -> None:
        self.engine = engine
        self.slot = slot
        self.store = engine.store
        self.clock = engine.clock
        self.id = incident_id
        self.wake = wake
        self.view: IncidentView
        self.pb: Playbook
        self.acted = False
        self.lock_released = False      # a closing state was written: the store dropped it

    # --- helpers ---------------------------------------------------------------

    def entry(self, kind: str, message: str, **data: Any) -> TimelineEntry:
        return TimelineEntry(at=self.clock.now(), kind=kind, message=message, data=data)

    def logged(self, entry: TimelineEntry) -> None:
        """Log a timeline entry (once it is written)."""
        log.info(entry.message, extra={"incident": self.id, "kind": entry.kind})

    async def note(self, kind: str, message: str, **data: Any) -> None:
        entry = self.entry(kind, message, **data)
        await self.engine.give_way()
        await self.store.add_timeline(self.id, entry)
        self.logged(entry)

    async def firing(self) -> int:
        return await self.store.firing_alert_count(self.id)

    async def wait(self, seconds: float) -> None:
        """Sleep on the engine's clock; return early when the incident is woken."""
        if self.wake.is_set():
            self.wake.clear()
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self.wake.wait())
        if self.slot is not None:
            self.slot.give()                    # waiting is not working
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)
            if self.slot is not None:
                await self.slot.take()
        self.wake.clear()
        if self.engine.stopping:
            raise Stop("shutting down")
        if self.engine.lost(self.id):
            raise Stop("another replica took the incident over")

    async def set_state(self, state: IncidentState, summary: str | None = None, *,
                        context: dict[str, Any] | None = None) -> None:
        """Write the state and its timeline note in one write; ``context`` is merged into
        the incident's context in that same write, before the state."""
        await self.engine.give_way()
        if self.view.state == state and summary is None:
            if context is not None:
                await self.store.merge_context(self.id, context, self.clock.now())
            return
        self.view.state = state
        now = self.clock.now()
        entry = self.entry("state", f"incident {state.value}" + (f": {summary}" if summary
                                                                  else ""))
        await self.store.journal(self.id, now, context=context, state=state, summary=summary,
                                 timeline=(entry,))
        if not state.active:
            self.lock_released = True
        self.logged(entry)
        kind = EventKind.CLOSED if state in (IncidentState.RECOVERED,
                                             IncidentState.RESOLVED) else EventKind.STATE
        if state == IncidentState.ESCALATED:
            kind = EventKind.ESCALATED
        await self.engine.notifications.emit(kind, self.id, message=summary or "")

    async def save(self, phase: str, rec: StepRecord, kind: str | None = None,
                   message: str = "", **data: Any) -> None:
        """Journal the step record; with ``kind``, its timeline note too, in the same write
        (what ``note`` would add)."""
        await self.engine.give_way()
        now = self.clock.now()
        if kind is None:
            await self.store.save_step(self.id, phase, rec, now)
            return
        entry = self.entry(kind, message, **data)
        await self.store.journal(self.id, now, step=(phase, rec), timeline=(entry,))
        self.logged(entry)

    def template_context(self) -> dict[str, Any]:
        alert = self.view.alerts[0] if self.view.alerts else {}
        return template_context(alert.get("labels", {}), alert.get("annotations", {}), alert,
                                incident={"id": self.id, "key": self.view.key,
                                          "playbook": self.view.playbook},
                                target=self.view.target)

    def action_context(self, step_name: str) -> ActionContext:
        ports = self.engine.ports
        alerts: list[Mapping[str, Any]] = list(self.view.alerts)
        return ActionContext(
            incident_id=self.id, incident_key=self.view.key, playbook=self.view.playbook,
            step=step_name, target=self.view.target, alerts=alerts,
            clock=self.clock, cluster=ports.cluster, tickets=ports.tickets, chat=ports.chat,
            http=ports.http, incident=IncidentSnapshot(self.view),     # dumped only if read
            sink_state=lambda sink, key: self.store.sink_get(self.id, f"{sink}:{key}"))

    async def with_retries(self, what: str, retries: int, fn: Callable[[], Awaitable[T]],
                           rec: StepRecord | None = None, *, until: datetime | None = None) -> T:
        """Run ``fn``; retry TemporaryError with exponential backoff up to ``retries`` times
        (or, with ``until``, until that time). Exhausted: ``RetriesExhausted``."""
        cfg = self.engine.config
        attempt = 0
        while True:
            await self.engine.give_way()      # an API call, and what it takes to plan it
            try:
                async with asyncio.timeout(cfg.call_timeout):
                    return await fn()
            except TimeoutError as exc:
                error: ActionError = TemporaryError(f"{what} timed out after "
                                                    f"{cfg.call_timeout:g}s")
                error.__cause__ = exc
            except TemporaryError as exc:
                error = exc
            attempt += 1
            if rec is not None:
                rec.attempts += 1
            if (attempt > retries) if until is None else (self.clock.now() >= until):
                raise RetriesExhausted(f"{what} failed after {attempt} attempts: {error}") \
                    from error
            delay = (error.delay if isinstance(error, TemporaryError) and error.delay
                     else min(cfg.retry_max, cfg.retry_base * 2 ** (attempt - 1)))
            left = f"{attempt}/{retries}" if until is None else f"{attempt} (until {until:%H:%M})"
            await self.note("retry", f"{what}: {error}; retry {left} in {delay:g}s")
            await self.wait(delay)

    # --- the run ---------------------------------------------------------------

    async def run(self) -> None:
        await self.engine.give_way()
        view = await self.store.get_incident(self.id, alert_limit=ALERTS_IN_VIEW)
        if view is None:
            return
        self.view = view
        if view.state in (IncidentState.RECOVERED, IncidentState.RESOLVED):
            return
        self.acted = any(s.status in (StepStatus.APPLIED, StepStatus.VERIFYING,
                                      StepStatus.SUCCEEDED, StepStatus.INTENT)
                         or (s.status == StepStatus.FAILED and s.intent is not None)
                         for s in view.steps)
        try:
            # the view was just read with its counts: no second read for the firing count
            if view.firing_count == 0:
                await self.close_resolved()
                return
            if view.state == IncidentState.ESCALATED:
                if view.context.get("escalation") == "pending":
                    # cut by a crash or shutdown after the state was written: finish paging
                    await self.run_escalation()
                return      # humans have it; it closes when the alerts resolve
            pb = self.engine.playbooks.get(view.playbook)
            if pb is None:
                await self.escalate(f"playbook {view.playbook!r} is no longer loaded")
                return
            self.pb = pb
            await self.ladder()
        except Stop:
            return
        finally:
            if (self.view.target is not None and not self.view.state.active
                    and not self.lock_released):
                await self.store.release_target(str(self.view.target), self.id)

    async def close_resolved(self) -> None:
        if self.acted and self.view.state != IncidentState.ESCALATED:
            await self.set_state(IncidentState.RECOVERED, "the alert resolved after remediation")
            self.engine.record_recovery(self.view)
        else:
            await self.set_state(IncidentState.RESOLVED, "the alert resolved")
        self.engine.metrics.incidents.labels(self.view.playbook, self.view.state.value).inc()

    async def ladder(self) -> None:
        view, pb = self.view, self.pb
        started = any(s.started_at for s in view.steps)
        if view.state == IncidentState.OPEN and not started:
            await self.engine.notifications.emit(EventKind.OPENED, self.id)
            if view.context.get("error"):
                await self.escalate(str(view.context["error"]), guard="target")
                return
            refusal = await self.engine.guards.at_start(view, pb)
            if refusal is not None:
                guard, reason = refusal
                await self.note("guard", f"refused by {guard}: {reason}", guard=guard)
                self.engine.metrics.guard_refusals.labels(guard).inc()
                await self.escalate(reason, guard=guard)
                return
        if view.target is not None:
            await self.take_target_lock()
        if self.view.state != IncidentState.AWAITING_APPROVAL:
            await self.set_state(IncidentState.REMEDIATING)
        records = {s.index: s for s in view.steps if not s.action.startswith("escalate:")}
        for index, step in enumerate(pb.spec.steps):
            rec = records.get(index) or StepRecord(index=index, name=step.name,
                                                   action=step.action)
            if rec.status in _DONE:
                continue
            outcome = await self.run_step(step, rec)
            if outcome == "recovered":
                await self.set_state(IncidentState.RECOVERED, f"recovered at step {step.name!r}")
                self.engine.record_recovery(self.view)
                self.engine.metrics.incidents.labels(pb.name, "recovered").inc()
                return
            if outcome == "resolved":
                await self.close_resolved()
                return
            if outcome == "escalate":
                return
        await self.escalate("every step was tried and the alert is still firing",
                            guard="exhausted")

    async def take_target_lock(self) -> None:
        target = str(self.view.target)
        while True:
            holder = await self.store.acquire_target(target, self.id)
            if holder is None:
                return
            await self.note("guard", f"waiting: {target} is being remediated by incident "
                                     f"{holder}", guard="target_lock", holder=holder)
            self.engine.metrics.guard_refusals.labels("target_lock").inc()
            await self.wait(self.engine.config.lock_retry_interval)
            if await self.firing() == 0:
                await self.close_resolved()
                raise Stop("resolved while waiting for the target lock")

    # --- one step --------------------------------------------------------------

    async def run_step(self, step: Step, rec: StepRecord) -> str:
        spec = registry.get(step.action)
        dry_run = self.view.dry_run or self.engine.config.dry_run
        now = self.clock.now()
        if rec.status == StepStatus.PENDING:
            rec.started_at = rec.started_at or now
            refusal = await self.engine.guards.before_step(self.view, spec, dry_run)
            if refusal is not None:
                guard, reason, escalate_now = refusal
                rec.status, rec.error, rec.finished_at = StepStatus.SKIPPED, reason, now
                await self.save("ladder", rec, "guard",
                                f"step {step.name!r} refused by {guard}: {reason}", guard=guard)
                self.engine.metrics.guard_refusals.labels(guard).inc()
                self.engine.metrics.actions.labels(step.action, "refused").inc()
                await self.engine.notifications.emit(EventKind.STEP, self.id, step=rec)
                if escalate_now:
                    await self.escalate(reason, guard=guard,
                                        run_actions=await self.engine.guards.should_escalate(
                                            guard, self.id))
                    return "escalate"
                return "next"
            if step.approval is not None and not dry_run:
                decision = await self.engine.approvals.obtain(self, step, rec)
                if decision is not None:
                    rec.status, rec.error, rec.finished_at = StepStatus.SKIPPED, decision, \
                        self.clock.now()
                    await self.save("ladder", rec)
                    await self.escalate(decision, guard="approval")
                    return "escalate"
                await self.set_state(IncidentState.REMEDIATING)
            if await self.firing() == 0:
                return "resolved"
            try:
                intent = await self.plan(step, spec, rec)
            except (PermanentError, TemplateError, ValidationError) as exc:
                return await self.step_failed(step, rec, f"could not plan: {_reason(exc)}")
            rec.intent = {**intent.model_dump(), "mutates": spec.mutates_cluster and not dry_run
                          and not intent.noop}
            rec.status = StepStatus.INTENT
            # the intent is durable before any API call (the note is in the same write)
            await self.save("ladder", rec, "step", f"step {step.name!r}: "
                            f"{'would ' if dry_run else ''}{intent.description}",
                            step=step.name, intent=rec.intent)
            await self.engine.notifications.emit(EventKind.STEP, self.id, step=rec)
        if rec.status == StepStatus.INTENT:
            assert rec.intent is not None
            intent = Intent.model_validate({k: v for k, v in rec.intent.items() if k != "mutates"})
            if dry_run:
                rec.status, rec.result = StepStatus.DRY_RUN, f"dry-run: would {intent.description}"
                self.engine.metrics.actions.labels(step.action, "dry_run").inc()
            elif intent.noop:
                rec.status, rec.result = StepStatus.APPLIED, f"nothing to do: {intent.description}"
                self.engine.metrics.actions.labels(step.action, "noop").inc()
            else:
                if await self.firing() == 0:
                    return "resolved"       # never act on a resolved alert
                try:
                    result = await self.with_retries(
                        f"{step.action}", step.retries,
                        lambda: registry.implementation(step.action).apply(
                            self.action_context(step.name), intent), rec)
                except PermanentError as exc:
                    self.engine.metrics.actions.labels(step.action, "permanent_error").inc()
                    self.acted = True   # it may have partly happened; never claim "resolved"
                    return await self.step_failed(step, rec, str(exc))
                self.acted = True
                rec.status, rec.result = StepStatus.APPLIED, result.summary
                self.engine.metrics.actions.labels(step.action, "success").inc()
                ctx_patch = result.details.get("context")
                if isinstance(ctx_patch, dict):
                    await self.store.merge_context(self.id, ctx_patch, self.clock.now())
                    self.view.context.update(ctx_patch)
            started = rec.started_at or now
            self.engine.metrics.step_duration.labels(step.action).observe(
                (self.clock.now() - started).total_seconds())
            await self.save("ladder", rec, "step", f"step {step.name!r}: {rec.result}",
                            step=step.name)
        if step.verify is None:
            if rec.status != StepStatus.DRY_RUN:
                rec.status = StepStatus.SUCCEEDED
            rec.finished_at = self.clock.now()
            await self.save("ladder", rec)
            await self.engine.notifications.emit(EventKind.STEP, self.id, step=rec)
            return "next"
        return await self.verify_step(step, rec)

    async def plan(self, step: Step, spec: registry.ActionSpec, rec: StepRecord) -> Intent:
        context = self.template_context()
        raw = render_value(step.params, context)
        params = spec.params.model_validate(raw)
        action = registry.implementation(step.action)
        return await self.with_retries(f"{step.action} (plan)", step.retries,
                                       lambda: action.plan(self.action_context(step.name), params),
                                       rec)

    async def verify_step(self, step: Step, rec: StepRecord) -> str:
        assert step.verify is not None
        dry_run = rec.status == StepStatus.DRY_RUN
        if rec.verify_started_at is None:
            rec.verify_started_at = self.clock.now()
            if not dry_run:
                rec.status = StepStatus.VERIFYING
            await self.save("ladder", rec)
        # alert_resolved asks Alertmanager about every alert still firing, not only the
        # ones in the view
        firing = ([{"fingerprint": fp, "status": "firing"}
                   for fp in await self.store.firing_fingerprints(self.id)]
                  if step.verify.alert_resolved else [])
        verdict = await self.engine.verifier.run(
            step.verify, context=self.template_context(), target=self.view.target,
            started_at=rec.verify_started_at, firing=self.firing, wait=self.wait,
            alerts=self.engine.ports.alerts, incident_alerts=firing)
        took = (self.clock.now() - rec.verify_started_at).total_seconds()
        self.engine.metrics.verify_duration.labels("held" if verdict.held else "failed").observe(
            took)
        rec.verify, rec.finished_at = verdict.summary, self.clock.now()
        if not dry_run:
            rec.status = StepStatus.SUCCEEDED if verdict.held else StepStatus.FAILED
        await self.save("ladder", rec, "verify",
                        f"step {step.name!r} verification: {verdict.summary}",
                        step=step.name, held=verdict.held)
        await self.engine.notifications.emit(EventKind.STEP, self.id, step=rec)
        if verdict.resolved:
            return "resolved"
        return "recovered" if verdict.held else "next"

    async def step_failed(self, step: Step, rec: StepRecord, reason: str) -> str:
        rec.status, rec.error, rec.finished_at = StepStatus.FAILED, reason, self.clock.now()
        await self.save("ladder", rec, "step", f"step {step.name!r} failed: {reason}",
                        step=step.name)
        await self.engine.notifications.emit(EventKind.STEP, self.id, step=rec)
        return "next"

    # --- escalation --------------------------------------------------------------

    async def escalate(self, reason: str, *, guard: str = "exhausted",
                       run_actions: bool = True) -> None:
        self.engine.metrics.escalations.labels(self.view.playbook, guard).inc()
        # Journaled with the state, in the same write (never the state without the mark):
        # a run cut after it finishes the escalation actions on the next start instead of
        # leaving an escalated incident unpaged.
        mark = {"escalation": "pending" if run_actions else "suppressed"}
        self.view.context.update(mark)
        await self.set_state(IncidentState.ESCALATED, reason, context=mark)
        if not run_actions:
            await self.note("escalate", "escalation actions suppressed: automation is paused "
                                        "and the storm was already escalated once")
            return
        await self.run_escalation()

    async def run_escalation(self) -> None:
        """Run the playbook's escalation actions that have not run yet (journaled each)."""
        pb = self.engine.playbooks.get(self.view.playbook)
        if pb is None:
            return
        fresh = await self.store.get_incident(self.id, alert_limit=ALERTS_IN_VIEW)
        done = {s.index: s for s in (fresh or self.view).steps
                if s.action.startswith("escalate:")}
        if done:
            fresh = None    # its records are updated in place below: the actions read anew
        cfg = self.engine.config
        # First every action gets a few quick tries, so that the page goes out even while
        # Jira is down; then those that met only temporary errors keep trying, for up to
        # escalation_retry_for, each in turn.
        later = []
        for index, esc in enumerate(pb.spec.escalate):
            rec = done.get(index) or StepRecord(index=index, name=f"escalate {index + 1}",
                                                action=f"escalate:{esc.action}")
            if rec.status in _DONE or rec.status == StepStatus.DRY_RUN:
                continue
            # the first action to run gets the view just read (nothing was written since)
            if not await self._escalate_one(esc, rec, retries=cfg.escalation_retries,
                                            fresh=fresh):
                later.append((esc, rec))
            fresh = None
        until = self.clock.now() + timedelta(seconds=cfg.escalation_retry_for)
        for esc, rec in later:
            await self._escalate_one(esc, rec, retries=0, until=until)
        await self.store.merge_context(self.id, {"escalation": "done"}, self.clock.now())
        self.view.context["escalation"] = "done"

    async def _escalate_one(self, esc: Escalation, rec: StepRecord, *, retries: int,
                            until: datetime | None = None,
                            fresh: IncidentView | None = None) -> bool:
        """Run one escalation action. False when it met only temporary errors and its
        retries ran out (it may be tried again later); True when it is settled. The action
        sees the incident as stored now: ``fresh`` if given, else read again."""
        dry_run = self.view.dry_run or self.engine.config.dry_run
        rec.started_at = rec.started_at or self.clock.now()
        spec = registry.get(esc.action)
        try:
            raw = render_value(esc.params, self.template_context())
            params = spec.params.model_validate(raw)
            action = registry.implementation(esc.action)
            ctx = self.action_context(rec.name)
            self.view = (fresh or await self.store.get_incident(self.id, alert_limit=ALERTS_IN_VIEW)
                         or self.view)
            ctx.incident = IncidentSnapshot(self.view)
            intent = await self.with_retries(f"{esc.action} (plan)", retries,
                                             lambda: action.plan(ctx, params), until=until)
            rec.intent = {**intent.model_dump(), "mutates": False}
            if dry_run:
                rec.status, rec.result = StepStatus.DRY_RUN, \
                    f"dry-run: would {intent.description}"
            else:
                rec.status = StepStatus.INTENT
                await self.save("escalate", rec)
                result = await self.with_retries(esc.action, retries,
                                                 lambda: action.apply(ctx, intent), rec,
                                                 until=until)
                rec.status, rec.result = StepStatus.SUCCEEDED, result.summary
                patch = result.details.get("context")
                if isinstance(patch, dict):
                    await self.store.merge_context(self.id, patch, self.clock.now())
            self.engine.metrics.actions.labels(esc.action, "dry_run" if dry_run
                                               else "success").inc()
        except RetriesExhausted as exc:
            if until is None:
                rec.error = f"{_reason(exc)}; trying again for a while"
                await self.save("escalate", rec, "escalate", f"{esc.action}: {rec.error}")
                return False
            rec.status, rec.error = StepStatus.FAILED, _reason(exc)
            self.engine.metrics.actions.labels(esc.action, "temporary_error").inc()
        except (ActionError, TemplateError, ValidationError) as exc:
            rec.status, rec.error = StepStatus.FAILED, _reason(exc)
            self.engine.metrics.actions.labels(esc.action, "permanent_error").inc()
        if rec.status != StepStatus.FAILED:
            rec.error = None
        rec.finished_at = self.clock.now()
        await self.save("escalate", rec, "escalate", f"{esc.action}: {rec.result or rec.error}")
        await self.engine.notifications.emit(EventKind.STEP, self.id, step=rec)
        return True


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: "
                         f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
    return str(exc)

