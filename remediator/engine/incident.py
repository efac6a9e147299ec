"""One incident, run to its end: read from the journal, admitted by the guards, the
ladder driven by ``ladder.decide``, closed or escalated.

    load ─▶ closed? done │ alerts resolved? close │ escalated? finish paging
      ─▶ guards at start ─(refused)▶ escalate
      ─▶ per-target lock ─▶ loop: decide ─▶ run_step ─▶ decide …
           Recover → recovered   CloseResolved → recovered/resolved
           Escalate → escalated  Halt → stop here, resume from the journal

The run is restartable at any point: everything it decides is journaled first, and
on start it reads the journal back (``step.run_step`` resumes a step mid-way).
"""

from __future__ import annotations

from datetime import timedelta

from remediator.engine import diagnosis, ladder
from remediator.engine.escalation import escalate, lift_run, run_escalation
from remediator.engine.health import note_dependencies_in, stop_noting_dependencies
from remediator.engine.outcomes import (
    CloseResolved,
    Escalate,
    Halt,
    Interruption,
    Recover,
    RunInterrupted,
    RunStep,
    StepOutcome,
)
from remediator.engine.quarantine import undone_on_close
from remediator.engine.run import Run
from remediator.engine.silences import CREATED_BY
from remediator.engine.step import run_step
from remediator.errors import PermanentError, TemporaryError
from remediator.model.incident import ALERTS_IN_VIEW, IncidentState, StepRecord, TimelineEntry
from remediator.ports.sinks import EventKind


class IncidentRun(Run):
    __slots__ = ()

    async def run(self) -> None:
        note_dependencies_in(self.journal)      # a dependency down or back: in the timeline
        try:
            await self._run()
        finally:
            stop_noting_dependencies()

    async def _run(self) -> None:
        await self.deps.give_way()
        view = await self.deps.store.get_incident(self.id, alert_limit=ALERTS_IN_VIEW)
        if view is None or view.state.closed:
            return
        self.attach(view)
        try:
            # the view was just read with its counts: no second read for the firing count
            # (back from a parked approval wait, the approval sees it: it expires first)
            if view.firing_count == 0 and not (
                    self.resume is not None and view.state == IncidentState.AWAITING_APPROVAL):
                await self.close_resolved()
            elif view.state == IncidentState.ESCALATED:
                if view.context.get("escalation") == "pending":
                    # cut by a crash or shutdown after the state was written: finish paging
                    await run_escalation(self)
            elif view.playbook not in self.deps.playbooks:
                await escalate(self, f"playbook {view.playbook!r} is no longer loaded",
                               guard="playbook")
            else:
                self.pb = self.deps.playbooks[view.playbook]
                await self.remediate()
        except RunInterrupted as exc:
            if exc.outcome.why == Interruption.RESOLVED:
                await self.close_resolved()
        finally:
            if (self.view.target is not None and not self.view.state.active
                    and not self.journal.closed):
                await self.deps.store.release_target(str(self.view.target), self.id)
            if self.view.state.closed and any(
                    undone_on_close(self.deps.catalogue, s.action)
                    for s in self.view.steps if s.intends_change):
                await self.deps.quarantine.incident_closed(self.id)

    async def close_resolved(self) -> None:
        """The alerts resolved: recovered if a step changed the cluster, else resolved."""
        view = self.view
        await lift_run(self, "the alerts resolved")
        state = ladder.closing_state(view.steps, escalated=view.state == IncidentState.ESCALATED)
        if state == IncidentState.RECOVERED:
            await self.journal.state(state, "the alert resolved after remediation")
            self.record_recovery()
        else:
            await self.journal.state(state, "the alert resolved")
        self.deps.metrics.incidents.labels(view.playbook, view.state.value).inc()

    def record_recovery(self) -> None:
        if self.view.first_alert_at is not None:
            took = (self.clock.now() - self.view.first_alert_at).total_seconds()
            self.deps.metrics.time_to_recover.labels(self.view.playbook).observe(max(0.0, took))

    async def remediate(self) -> None:
        view, deps = self.view, self.deps
        opened: tuple[TimelineEntry, ...] = ()
        if view.state == IncidentState.OPEN and not any(s.started_at for s in view.steps):
            await self.journal.emit(EventKind.OPENED)
            opened = (self.journal.entry("opened", f"incident opened: {view.total_alerts} "
                                                   f"alert(s), playbook {view.playbook}"),)
            if view.context.get("error"):
                await self.journal.note("opened", opened[0].message)
                await escalate(self, str(view.context["error"]), guard="target")
                return
            refused = await deps.guards.at_start(view, self.pb)
            if refused is not None:
                await self.journal.note("opened", opened[0].message)
                await self.journal.note("guard", f"refused by {refused.guard}: "
                                                 f"{refused.reason}", guard=refused.guard)
                deps.metrics.guard_refusals.labels(refused.guard).inc()
                await escalate(self, refused.reason, guard=refused.guard,
                               run_actions=refused.run_escalation)
                return
            self.diagnosis = await diagnosis.diagnose(self, diagnosis.OPENED)
        if view.target is not None:
            await self.take_target_lock()
        if self.view.state != IncidentState.AWAITING_APPROVAL:
            await self.journal.state(IncidentState.REMEDIATING, before=opened)
        await silence(self)
        await self.climb()

    async def climb(self) -> None:
        """The ladder: decide, run the step, decide again, until a final move."""
        steps = self.pb.spec.steps
        records: dict[int, StepRecord] = {
            s.index: s for s in self.view.steps if not s.action.startswith("escalate:")}
        last: tuple[int, StepOutcome] | None = None
        while True:
            move = ladder.decide(len(steps), records, last)
            match move:
                case RunStep(index=index):
                    step = steps[index]
                    rec = records.setdefault(index, StepRecord(index=index, name=step.name,
                                                               action=step.action))
                    if rec not in self.view.steps:
                        self.view.steps.append(rec)
                    last = (index, await run_step(self, step, rec))
                case Recover(step=index):
                    await lift_run(self, "recovered")
                    await self.journal.state(IncidentState.RECOVERED,
                                             f"recovered at step {steps[index].name!r}")
                    self.record_recovery()
                    self.deps.metrics.incidents.labels(self.pb.name, "recovered").inc()
                    return
                case CloseResolved():
                    await self.close_resolved()
                    return
                case Escalate(reason=reason, guard=guard, run_actions=run_actions):
                    await escalate(self, reason, guard=guard, run_actions=run_actions)
                    return
                case Halt():
                    return

    async def take_target_lock(self) -> None:
        target = str(self.view.target)
        while True:
            holder = await self.deps.store.acquire_target(target, self.id)
            if holder is None:
                return
            await self.journal.note("guard", f"waiting: {target} is being remediated by "
                                             f"incident {holder}", guard="target_lock",
                                    holder=holder)
            self.deps.metrics.guard_refusals.labels("target_lock").inc()
            await self.wait(self.deps.settings.lock_retry_interval)
            if await self.firing() == 0:
                raise RunInterrupted(Interruption.RESOLVED, "resolved waiting for the lock")


async def silence(run: Run) -> None:
    """Silence the incident's firing alerts (once; nothing when the playbook does not ask
    or Alertmanager is not configured, which is noted)."""
    spec = run.pb.spec.silence
    if spec is None or run.dry_run or run.view.context.get("silences") is not None:
        return
    api = run.deps.ports.silences
    if api is None:
        await run.journal.note("silence", "no silence: alertmanager_url is not configured")
        await run.journal.context({"silences": []})
        return
    now = run.clock.now()
    comment = (f"remediator is remediating incident {run.id} (playbook {run.view.playbook}"
               f"{', ' + str(run.view.target) if run.view.target else ''}); expired when it "
               "recovers, escalates or is acknowledged")
    ids: list[str] = []
    for alert in run.view.alerts:
        if alert.get("status") != "firing":
            continue
        try:
            ids.append(await api.create_silence(
                alert["labels"], starts_at=now, ends_at=now + timedelta(seconds=spec.for_),
                created_by=CREATED_BY, comment=comment))
        except (TemporaryError, PermanentError) as exc:
            await run.journal.note("silence", f"could not silence an alert: {exc}")
    await run.journal.context({"silences": ids})
    if ids:
        await run.journal.note("silence", f"Alertmanager silenced while remediating: "
                                          f"{', '.join(ids)}", silences=ids)
