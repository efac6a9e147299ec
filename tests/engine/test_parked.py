"""A run waiting for an approval parks: the engine holds it as data (no task, coroutine
or view), looks at the decision on a clock timer without a run, and turns it back into
a run that goes straight back to that approval when it is decided, expires, the alerts
resolve, or the incident is woken; after a restart it parks again on the same approval."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

from remediator.engine.core import BACKLOG_AHEAD
from remediator.engine.incident import IncidentRun
from remediator.engine.journal import RunJournal
from remediator.model.incident import IncidentState
from remediator.settings import DiagnosisSettings, EngineSettings

from .rig import AUTH, Rig, alert, resolved
from .test_cli_approvals import approval_playbook

N = 5


def incident_tasks() -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks()
            if t.get_name().startswith("incident-") and not t.done()]


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(1000):                     # real time, bounded
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


def held_runs(rig: Rig, *, collect: bool = True) -> list[object]:
    """Runs and run journals of this rig's incidents still in memory (not other tests')."""
    ids = rig.engine.parking.ids()
    if collect:
        gc.collect()
    return [o for o in gc.get_objects()
            if isinstance(o, IncidentRun | RunJournal) and o.id in ids]


def busy() -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if not t.done()
            and t.get_name().startswith(("incident-", "approval-"))]


async def parked_rig(rig: Rig, n: int = N, config: EngineSettings | None = None) -> list[str]:
    """``n`` incidents of the approval playbook, all parked; their approval ids."""
    rig.clock.auto_advance = False              # the approvals wait until the test acts
    await rig.start(approval_playbook(rig.hooks.url), config)
    await rig.post([alert(deployment=f"d{i}") for i in range(n)])
    await until(lambda: rig.engine.parked == n and not incident_tasks(), "all parked")
    views = await rig.incidents()
    assert {v.state for v in views} == {IncidentState.AWAITING_APPROVAL}
    return [v.context["approval"]["id"] for v in views]


async def approve(rig: Rig, approval: str) -> None:
    assert rig.client is not None
    resp = await rig.client.post(f"/api/v1/approvals/{approval}/approve", headers=AUTH)
    assert resp.status == 200, await resp.text()


async def test_a_run_awaiting_approval_holds_no_task(rig: Rig) -> None:
    # (no diagnosis: a kept-alive cluster connection holds the context of the run that
    # opened it, run and all; the store's flush task may hold one too, at most)
    approvals = await parked_rig(rig, N, EngineSettings(
        retry_base=5.0, diagnosis=DiagnosisSettings(enabled=False)))
    assert rig.engine.running == N               # still the engine's incidents
    assert incident_tasks() == []
    # nor its run, journal or view: its timer does not keep the run's context
    assert len(held_runs(rig)) <= 1
    # the looks at the decision every 5 s are no runs: nothing journaled, still parked
    for _ in range(4):
        await rig.clock.advance(5)
        await until(lambda: not busy(), "looks done")
    assert rig.engine.parked == N
    assert incident_tasks() == []
    assert len(held_runs(rig)) <= 1
    assert len(set(approvals)) == N
    for approval in approvals:
        record = await rig.store.get_approval(approval)
        assert record is not None
        assert record.decision is None

    await approve(rig, approvals[0])             # a decision turns it back into a run
    # the approved step ran (its approval note, asked once), then the ladder was done
    await until(lambda: rig.hooks.calls == [{"step": "tell"}, {"escalated": True}],
                "the approved step ran")
    await until(lambda: rig.engine.parked == N - 1 and not incident_tasks(), "one left")
    record = await rig.store.get_approval(approvals[0])
    assert record is not None
    assert record.decision == "approved"
    view = await rig.store.get_incident(record.incident_id)
    assert view is not None
    assert view.state == IncidentState.ESCALATED
    assert [s.status for s in view.steps if s.name == "tell"] == ["succeeded"]
    notes = [t.message for t in view.timeline if t.kind == "approval"]
    assert len(notes) == 2, notes
    assert "waits for approval" in notes[0], notes
    assert notes[1].startswith("step 'tell' approved by"), notes

    for _ in range(15 * 60 // 5 + 2):            # the rest expire unanswered: escalated
        await rig.clock.advance(5)
        await until(lambda: not busy(), "looks and runs done")
    assert rig.engine.parked == 0
    assert not incident_tasks()
    await until(lambda: len(rig.hooks.calls) == N + 1, "escalations posted")
    for approval in approvals[1:]:
        record = await rig.store.get_approval(approval)
        assert record is not None
        assert record.decision == "expired"
    assert {v.state for v in await rig.incidents()} == {IncidentState.ESCALATED}


async def test_a_run_that_ended_is_freed_without_the_cycle_collector(rig: Rig) -> None:
    """Reference counting alone frees a run once it parked: the daemon freezes its heap
    once started (``settle_heap``), with the runs resumed at start in it, and a cycle
    through a frozen task is never collected (10,000 parked runs kept 415 MB)."""
    gc.disable()
    try:
        await parked_rig(rig, N, EngineSettings(
            retry_base=5.0, diagnosis=DiagnosisSettings(enabled=False)))
        assert len(held_runs(rig, collect=False)) <= 1
    finally:
        gc.enable()


async def test_a_parked_wait_ends_when_the_alert_resolves(rig: Rig) -> None:
    (approval,) = await parked_rig(rig, 1)
    await rig.post([resolved(alert(deployment="d0"))])
    await until(lambda: rig.engine.parked == 0 and not incident_tasks(), "woken")
    view = await rig.only_incident()
    assert view.state == IncidentState.RESOLVED
    record = await rig.store.get_approval(approval)
    assert record is not None
    assert record.decision == "expired"
    assert rig.hooks.calls == []


def cluster_reads(rig: Rig) -> int:
    """GETs the simulated cluster has answered (a diagnosis reads the target)."""
    return sum(c["method"] == "GET" for c in rig.sim.control.calls)


async def test_parked_waits_resume_on_the_same_approval_after_a_restart(rig: Rig) -> None:
    approvals = await parked_rig(rig, 2)
    read = cluster_reads(rig)
    assert read >= 2                                   # the diagnoses read the targets
    await rig.restart(approval_playbook(rig.hooks.url))
    await until(lambda: rig.engine.parked == 2 and not incident_tasks(), "parked again")
    views = await rig.incidents()
    assert sorted(v.context["approval"]["id"] for v in views) == sorted(approvals)
    # back to the undecided approvals without a second diagnosis (its cluster reads)
    assert cluster_reads(rig) == read
    await approve(rig, approvals[1])
    await until(lambda: {"step": "tell"} in rig.hooks.calls, "the approved step ran")


def depth(rig: Rig) -> float | None:
    return rig.engine.metrics.registry.get_sample_value("remediator_queue_depth")


async def test_the_backlog_resumed_at_start_is_started_a_few_runs_at_a_time(rig: Rig) -> None:
    """10,000 incidents resumed at once stepped 10,000 new tasks in one go right after
    ready (the event loop held ~45 ms, a new webhook waiting): the engine keeps at most
    BACKLOG_AHEAD runs per working slot waiting, counts the rest in
    remediator_queue_depth, and still takes every incident up."""
    settings = EngineSettings(max_parallel=2, diagnosis=DiagnosisSettings(enabled=False))
    approvals = await parked_rig(rig, 12, settings)
    await rig.restart(approval_playbook(rig.hooks.url), settings)
    ahead = BACKLOG_AHEAD * settings.max_parallel
    most = 0

    def started() -> bool:
        nonlocal most
        most = max(most, len(incident_tasks()))
        return rig.engine.parked == 12 and not incident_tasks()
    assert depth(rig) == 12      # all still to start
    await until(started, "all 12 taken up and parked again")
    assert most <= ahead + settings.max_parallel             # waiting + working, never 12
    views = await rig.incidents()
    assert sorted(v.context["approval"]["id"] for v in views) == sorted(approvals)
    assert depth(rig) == 0
