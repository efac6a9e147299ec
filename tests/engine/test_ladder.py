"""The whole ladder, in each outcome, through the real HTTP server, real SQLite and
the simulated cluster (real kubernetes_asyncio client): counts of write calls in
the simulator's log prove what was and was not done."""

from __future__ import annotations

import asyncio
import logging

import pytest

from remediator.model.incident import IncidentState, StepStatus
from remediator.settings import EngineSettings

from .rig import Rig, alert, ladder_playbook, resolved

RESTART = "/apis/apps/v1/namespaces/prod/deployments/api"
SCALE = "/apis/apps/v1/namespaces/prod/deployments/api/scale"


def patches(rig: Rig, path: str) -> list[dict[str, object]]:
    return [c for c in rig.writes() if c["path"] == path and c["method"] == "PATCH"]


async def test_recovered_at_step_1(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    rig.metrics.holding = {"step1_ok"}
    body = await rig.post([alert()])
    assert body["alerts"] == {"new": 1}
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RECOVERED
    assert [s.status for s in inc.steps] == [StepStatus.SUCCEEDED]
    assert len(patches(rig, RESTART)) == 1
    assert patches(rig, SCALE) == []
    assert rig.hooks.calls == []
    # the restart annotation was really written through the API
    body0 = patches(rig, RESTART)[0]["body"]
    assert "kubectl.kubernetes.io/restartedAt" in str(body0)


async def test_recovered_at_step_3(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    rig.metrics.holding = {"step3_ok"}
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RECOVERED, inc.summary
    assert [s.status for s in inc.steps] == [StepStatus.FAILED, StepStatus.FAILED,
                                             StepStatus.SUCCEEDED]
    writes = [(c["method"], c["path"]) for c in rig.writes()]
    # restart, scale (3 → 6), rollback (one JSON patch on the Deployment)
    assert writes == [("PATCH", RESTART), ("PATCH", SCALE), ("PATCH", RESTART)]
    assert patches(rig, SCALE)[0]["body"] == {"spec": {"replicas": 6}}
    assert isinstance(patches(rig, RESTART)[1]["body"], list)     # json-patch: rollout undo
    assert rig.hooks.calls == []


async def test_exhausted_escalates_once_even_across_restart_and_repeats(rig: Rig) -> None:
    pb = ladder_playbook(hook=rig.hooks.url)
    await rig.start(pb)
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    assert "every step was tried" in inc.summary
    assert rig.hooks.calls == [{"incident": inc.id, "pb": "ladder"}]
    assert len(rig.writes()) == 3
    # Alertmanager repeats the notification; the daemon restarts: nothing runs again.
    await rig.post([alert()])
    await rig.restart(pb)
    await rig.post([alert()])
    await rig.settle()
    assert rig.hooks.calls == [{"incident": inc.id, "pb": "ladder"}]
    assert len(rig.writes()) == 3
    # the alert resolves: the escalated incident closes as resolved, nothing acts
    await rig.post([resolved(alert())])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RESOLVED
    assert len(rig.writes()) == 3


async def test_permanent_error_moves_to_next_step(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    rig.sim.control.add_fault(status=403, count=1, method="PATCH", path="deployments/api$")
    rig.metrics.holding = {"step2_ok"}
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RECOVERED
    first, second = inc.steps
    assert first.status == StepStatus.FAILED
    assert "403" in (first.error or "") or "forbidden" in (first.error or "").lower(), first.error
    assert first.attempts == 1                     # a permanent error is not retried
    assert second.status == StepStatus.SUCCEEDED
    assert [c["status"] for c in patches(rig, RESTART)] == [403]
    assert len(patches(rig, SCALE)) == 1
    assert rig.hooks.calls == []


async def test_temporary_errors_are_retried_with_backoff_then_succeed(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url),
                    EngineSettings(retry_base=5.0, retry_max=60.0))
    rig.sim.control.add_fault(status=500, count=2, method="PATCH", path="deployments/api$")
    rig.metrics.holding = {"step1_ok"}
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RECOVERED
    assert inc.steps[0].status == StepStatus.SUCCEEDED
    assert inc.steps[0].attempts == 3               # two temporary errors, then success
    assert [c["status"] for c in patches(rig, RESTART)] == [500, 500, 200]
    retries = [e for e in inc.timeline if e.kind == "retry"]
    assert [e.message.rsplit(" in ", 1)[1] for e in retries] == ["5s", "10s"]
    # the waits happened on the engine's clock: at least 15s passed between them
    assert (retries[1].at - retries[0].at).total_seconds() >= 5


async def test_temporary_errors_beyond_retries_fail_the_step(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url, retries=1))
    rig.sim.control.add_fault(status=503, count=2, method="PATCH", path="deployments/api$")
    rig.metrics.holding = {"step2_ok"}
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RECOVERED
    assert inc.steps[0].status == StepStatus.FAILED
    assert "after 2 attempts" in (inc.steps[0].error or "")
    assert inc.steps[1].status == StepStatus.SUCCEEDED


async def test_resolved_webhook_mid_ladder_closes_as_recovered(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    a = alert()
    posted = asyncio.Event()

    async def resolve_once(promql: str) -> None:
        if not posted.is_set():
            posted.set()
            await rig.post([resolved(a)])

    rig.metrics.on_query = resolve_once
    await rig.post([a])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RECOVERED, inc.summary
    assert "resolved after remediation" in inc.summary
    assert len(inc.steps) == 1                       # scale and rollback never started
    assert len(patches(rig, RESTART)) == 1
    assert patches(rig, SCALE) == []
    assert rig.hooks.calls == []


async def test_alert_resolved_before_any_action(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url), EngineSettings(max_parallel=1))
    await rig.engine.slots.acquire("test")        # hold the only worker slot: the run queues
    try:
        a = alert()
        await rig.post([a])
        await rig.post([resolved(a)])
    finally:
        rig.engine.slots.release("test")
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RESOLVED
    assert inc.steps == []
    assert rig.writes() == []
    assert rig.hooks.calls == []


async def test_never_act_on_a_resolved_alert(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    a = alert()
    # a resolved notification for an episode never seen firing: recorded, nothing opened
    body = await rig.post([resolved(a)])
    assert body["alerts"] == {"resolved": 1}
    # the firing notification arriving late (reordered delivery) is stale: no incident
    body = await rig.post([a])
    assert body["alerts"] == {"stale": 1}
    await rig.settle()
    assert await rig.incidents() == []
    assert rig.writes() == []


async def test_resolved_while_the_action_is_being_planned_is_not_acted_on(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    # the plan's GET of the Deployment takes 0.5s (real); the resolve lands meanwhile
    rig.sim.control.add_fault(count=1, method="GET", path="deployments/api$", latency=0.5)
    a = alert()
    await rig.post([a])
    await asyncio.sleep(0.2)
    await rig.post([resolved(a)])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RESOLVED
    assert rig.writes() == []


async def test_waiting_incidents_do_not_hold_the_working_slots(rig: Rig) -> None:
    # One working slot, two incidents whose verification waits: both must still act.
    # (A waiting run gives its slot back; otherwise the second would queue until the
    # first one's whole ladder ended.)
    await rig.start(ladder_playbook(hook=rig.hooks.url),
                    EngineSettings(retry_base=5.0, max_parallel=1))
    rig.metrics.holding = {"step3_ok"}
    await rig.post([alert(namespace="prod"), alert(namespace="staging")])
    await rig.settle()
    first, second = sorted(await rig.incidents(), key=lambda i: i.steps[0].started_at or 0)
    assert {first.state, second.state} == {IncidentState.RECOVERED}
    # the second started acting while the first was still verifying its first step
    assert second.steps[0].started_at is not None
    assert first.steps[0].finished_at is not None
    assert second.steps[0].started_at < first.steps[0].finished_at


async def test_an_escalation_that_cannot_reach_humans_is_a_warning(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """Every journal entry is logged; one saying an escalation target could not be
    reached is a WARNING (it was INFO, lost among the rest)."""
    await rig.start(ladder_playbook(hook="http://127.0.0.1:9/hook"),
                    EngineSettings(retry_base=5.0, escalation_retry_for=60.0))
    caplog.set_level(logging.INFO, "remediator.engine")
    await rig.post([alert()])
    await rig.settle(30)
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    warned = [r.getMessage() for r in caplog.records
              if r.name == "remediator.engine" and r.levelno == logging.WARNING]
    assert any(m.startswith("http.post: ") for m in warned), warned
    escalations = [r for r in caplog.records if getattr(r, "kind", None) == "escalate"]
    assert escalations
    assert all(r.levelno == logging.WARNING for r in escalations)    # it never got through
