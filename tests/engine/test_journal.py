"""What an incident run writes, logs and hands to actions: the journal of the storm's
common path (every step fails to plan on a missing Deployment, then escalation) is
exact, each change goes to the store with its timeline note in one write, and the
intent of a step is durable, note included, before its API call."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from remediator.actions import registry
from remediator.clock import FakeClock
from remediator.engine.contract import ActionResult, IncidentSnapshot, Intent, RunContext
from remediator.engine.core import Engine
from remediator.engine.outcomes import Verified
from remediator.engine.ports import Ports
from remediator.engine.run import Run, WakeEvent
from remediator.engine.step import verify_step
from remediator.model.incident import (
    ALERTS_IN_VIEW,
    IncidentState,
    IncidentView,
    StepRecord,
    StepStatus,
)
from remediator.model.playbook import Step
from remediator.ports.store import AlertRecord, IngestItem, Routing
from remediator.settings import DiagnosisSettings, EngineSettings
from remediator.store.sqlite import SqliteStore

from .rig import T0, Rig, alert

MISSING = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: missing}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}",
           name: "{{ labels.deployment }}"}
  steps:
    - name: restart
      action: kubernetes.restart
      with: {reason: "HighErrorRate {{ labels.deployment }}"}
      verify: {alert_resolved: true, timeout: 1m}
    - name: scale out
      action: kubernetes.scale
      with: {factor: 2, max_replicas: 20}
      verify: {alert_resolved: true, timeout: 1m}
    - name: roll back
      action: kubernetes.rollback
      with: {revision: previous}
      verify: {alert_resolved: true, timeout: 1m}
  escalate:
    - action: jira.incident
      with: {project: OPS, summary: "errors on {{ labels.deployment }}"}
    - action: slack.page
      with: {channel: "#oncall", mention: "@oncall"}
"""

WRITES = ("journal", "save_step", "add_timeline", "set_state", "merge_context",
          "acquire_target", "release_target", "claim", "release")


def count_calls(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()
    for name in (*WRITES, "get_incident", "firing_alert_count"):
        method = getattr(rig.store, name)

        def counted(*args: Any, _name: str = name, _method: Any = method,
                    **kwargs: Any) -> Any:
            calls[_name] += 1
            if _name == "journal" and kwargs.get("timeline") and not any(
                    kwargs.get(part) is not None for part in ("step", "context", "state")):
                calls["note alone"] += 1
            return _method(*args, **kwargs)
        monkeypatch.setattr(rig.store, name, counted)
    return calls


async def test_missing_target_path_journal_logs_and_store_traffic(
        rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # (the exact traffic of the path without diagnosis; tests/diagnosis journals that)
    await rig.start(MISSING, EngineSettings(dry_run=True, retry_base=5.0,
                                            diagnosis=DiagnosisSettings(enabled=False)))
    calls = count_calls(rig, monkeypatch)
    dumps = Counter[str]()
    real_dump = IncidentView.model_dump

    def counting_dump(self: IncidentView, *args: Any, **kwargs: Any) -> Any:
        dumps["view"] += 1
        return real_dump(self, *args, **kwargs)
    monkeypatch.setattr(IncidentView, "model_dump", counting_dump)
    caplog.set_level(logging.INFO, "remediator.engine")
    await rig.post([alert(deployment="gone")])
    await rig.settle()
    monkeypatch.undo()
    inc = await rig.only_incident()

    assert inc.state == IncidentState.ESCALATED
    assert inc.context == {"escalation": "done"}
    assert [(s.name, s.status) for s in inc.steps] == [
        ("restart", StepStatus.FAILED), ("scale out", StepStatus.FAILED),
        ("roll back", StepStatus.FAILED), ("escalate 1", StepStatus.DRY_RUN),
        ("escalate 2", StepStatus.DRY_RUN)]
    # (the adapter words its errors; the journal carries them as they are)
    errors = [s.error or "" for s in inc.steps[:3]]
    assert all(e.startswith("could not plan: ") and "404" in e and '"gone"' in e
               for e in errors), errors
    jira, page = (s.intent for s in inc.steps[3:])
    assert jira is not None
    assert page is not None
    assert jira["args"]["summary"] == "errors on gone"
    # what could not be collected at escalation (the target is gone) is said once
    [gathered] = [e for e in inc.timeline if e.kind == "evidence"]
    assert gathered.message.startswith("escalation: collected 0 logs of 0 failing pods and "
                                       "0 event lists; could not read: the pods of "
                                       "Deployment prod/gone: ")
    assert [(e.kind, e.message) for e in inc.timeline if e.kind != "evidence"] == [
        ("opened", "incident opened: 1 alert(s), playbook missing"),
        ("state", "incident remediating"),
        ("step", f"step 'restart' failed: {errors[0]}"),
        ("step", f"step 'scale out' failed: {errors[1]}"),
        ("step", f"step 'roll back' failed: {errors[2]}"),
        ("state", "incident escalated: every step was tried and the alert is still firing"),
        ("escalate", f"jira.incident: dry-run: would {jira['description']}"),
        ("escalate", "slack.page: dry-run: would page @oncall in #oncall")]
    assert [e.data for e in inc.timeline[2:5]] == [
        {"step": "restart"}, {"step": "scale out"}, {"step": "roll back"}]
    # every timeline entry is logged once, after it was written, with its extras
    logged = [(getattr(r, "kind", None), r.getMessage()) for r in caplog.records
              if r.name == "remediator.engine" and getattr(r, "incident", None) == inc.id]
    assert logged == [(e.kind, e.message) for e in inc.timeline]

    # Each change and its note went to the store together: no note was written alone
    # (but the evidence note, which goes with no change of the incident's record), and
    # no more journal writes than notes plus the escalation's "done" mark; reads
    # only where something may have changed (the run, the escalation, its 2nd action).
    assert calls["note alone"] == 1, calls
    assert calls["journal"] <= len(inc.timeline) + 1, calls
    assert calls["get_incident"] <= 3, calls
    # no action read ctx.incident on this path: the incident was never dumped
    assert dumps["view"] == 0


async def test_intent_and_its_note_are_durable_before_the_api_call(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    await rig.start(MISSING)
    restart = registry.implementation("kubernetes.restart")
    real_apply = restart.apply
    seen: list[tuple[Any, ...]] = []

    async def apply(ctx: RunContext, intent: Intent) -> ActionResult:
        view = await rig.store.get_incident(ctx.incident_id)
        assert view is not None
        step = view.steps[0]
        seen.append((step.status, step.intent and step.intent["description"],
                     view.timeline[-1].kind, view.timeline[-1].message,
                     isinstance(ctx.incident, IncidentSnapshot) and ctx.incident["id"]
                     == view.id and dict(ctx.incident) == ctx.incident.view.model_dump(
                         mode="json")))
        return await real_apply(ctx, intent)
    monkeypatch.setattr(restart, "apply", apply)
    await rig.post([alert()])                 # prod/api exists: the restart is applied
    await rig.settle()
    monkeypatch.undo()
    [(status, description, kind, message, snapshot)] = seen
    assert status == StepStatus.INTENT
    assert kind == "step"
    assert message == f"step 'restart': {description}"
    assert snapshot
    assert len(rig.writes("deployments/api")) >= 1


async def test_escalation_reads_a_bounded_view_of_a_big_incident(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs, escalation actions and notifications get the first ALERTS_IN_VIEW alerts and
    the counts of all."""
    await rig.start(MISSING, EngineSettings(dry_run=True, retry_base=5.0))
    reads: list[tuple[int | None, int, int, int]] = []
    real = rig.store.get_incident

    async def recorded(incident_id: str, **kwargs: Any) -> IncidentView | None:
        view = await real(incident_id, **kwargs)
        assert view is not None
        reads.append((kwargs.get("alert_limit"), len(view.alerts), view.alert_count,
                      view.firing_count))
        return view
    monkeypatch.setattr(rig.store, "get_incident", recorded)
    many = ALERTS_IN_VIEW + 5
    await rig.post([alert(deployment="gone", instance=str(i)) for i in range(many)])
    await rig.settle()
    monkeypatch.undo()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    assert (len(inc.alerts), inc.alert_count, inc.firing_count) == (many, many, many)
    # the run, the escalation and its second action
    assert reads == [(ALERTS_IN_VIEW, ALERTS_IN_VIEW, many, many)] * 3


class ListedNowhere:
    """An Alertmanager API that lists none of the alerts it is asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def is_firing(self, fingerprint: str) -> bool:
        self.asked.append(fingerprint)
        return False


async def test_alert_resolved_asks_about_every_firing_alert_not_only_the_view(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "verify.db")
    await store.open()
    alerts_api = ListedNowhere()
    engine = Engine(store=store, playbooks=[], clock=FakeClock(auto_advance=True),
                    catalogue=registry, ports=Ports(alerts=alerts_api))
    many = ALERTS_IN_VIEW + 5
    records = [AlertRecord(f"{i:016x}", T0 + timedelta(seconds=i), None, "firing",
                           {"alertname": "A", "n": str(i)}, {}) for i in range(many)]
    route = (Routing("pb", "pb/key", None),)
    outcomes = await store.ingest([IngestItem(r, route) for r in records], T0)
    incident = outcomes[0].incident_ids[0]
    gone = [IngestItem(AlertRecord(r.fingerprint, r.starts_at, T0, "resolved", r.labels, {}),
                       ()) for r in records[:2]]
    await store.ingest(gone, T0)
    run = Run(engine.deps, incident, WakeEvent())
    view = await store.get_incident(incident, alert_limit=ALERTS_IN_VIEW)
    assert view is not None
    run.attach(view)
    step = Step.model_validate({"name": "wait", "action": "wait", "with": {"duration": "1s"},
                                "verify": {"alert_resolved": True, "timeout": "1m"}})
    rec = StepRecord(index=0, name="wait", action="wait", status=StepStatus.APPLIED)
    assert isinstance(await verify_step(run, step, rec), Verified)
    assert alerts_api.asked == sorted(r.fingerprint for r in records[2:])
    assert "no longer lists" in (rec.verify or "")
    await store.close()


PAUSE_THEN_RESTART = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: pause-then-restart}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}",
           name: "{{ labels.deployment }}"}
  steps:
    - {name: pause, action: wait, with: {duration: 10m}}
    - name: restart
      action: kubernetes.restart
      with: {reason: "HighErrorRate {{ labels.deployment }}"}
      verify: {alert_resolved: true, timeout: 1m}
  escalate: [{action: slack.notify, with: {text: x}}]
"""


async def test_a_waiting_run_holds_one_alert_and_an_action_after_it_gets_them_all(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of waiting incidents (approvals, verifications) must not each hold
    their alerts: while a run waits its view keeps the first alert only (the templates'
    ``alert``), and the next action's context reads them again, with what arrived
    meanwhile."""
    await rig.start(PAUSE_THEN_RESTART)
    during_wait: list[int] = []
    timeline_during_wait: list[int] = []
    real_sleep = Run._sleep_or_wake

    async def sleep(self: Run, seconds: float) -> None:
        await real_sleep(self, seconds)
        during_wait.append(len(self.view.alerts))
        timeline_during_wait.append(len(self.view.timeline))
        if len(during_wait) == 1:          # an alert arrives while the run waits
            await rig.post([alert(instance="late")])
    monkeypatch.setattr(Run, "_sleep_or_wake", sleep)
    restart = registry.implementation("kubernetes.restart")
    real_plan = restart.plan
    given: list[list[str]] = []
    timelines: list[list[str]] = []

    async def plan(ctx: RunContext, params: Any) -> Intent:
        given.append(sorted(a["labels"].get("instance", "") for a in ctx.alerts))
        timelines.append([t["kind"] for t in ctx.incident["timeline"]])
        return await real_plan(ctx, params)
    monkeypatch.setattr(restart, "plan", plan)
    await rig.post([alert(instance=str(i)) for i in range(3)])
    await rig.settle()
    monkeypatch.undo()
    assert during_wait
    assert set(during_wait) == {1}
    assert given[0] == ["0", "1", "2", "late"]
    # nor its timeline while it waits; the action after the wait sees all of it again
    assert set(timeline_during_wait) == {0}
    assert "state" in timelines[0], timelines
    assert len(timelines[0]) >= 2, timelines


async def test_a_waiting_run_holds_no_helper_task(rig: Rig) -> None:
    """A waiting run is its own task and a timer entry of the clock: no sleeping helper
    task per wait (10,000 incidents waiting held 10,000 of them)."""
    rig.clock.auto_advance = False
    await rig.start(PAUSE_THEN_RESTART)

    def sleepers() -> list[str]:
        return [t.get_name() for t in asyncio.all_tasks()
                if "sleep" in getattr(t.get_coro(), "__qualname__", "")]
    before = sleepers()
    await rig.post([alert(deployment=f"d{i}") for i in range(4)])
    for _ in range(500):                       # real time, bounded: every run is waiting
        if rig.engine.running == 4 and rig.clock.pending() >= 4:
            break
        await asyncio.sleep(0.01)
    assert rig.engine.running == 4
    assert sleepers() == before
    assert {s.state for s in await rig.incidents()} == {IncidentState.REMEDIATING}
    await rig.clock.advance(601)               # the timers end the waits
    await rig.settle()
    assert all(any(step.name == "restart" for step in v.steps) for v in await rig.incidents())
