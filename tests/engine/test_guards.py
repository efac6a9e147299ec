"""Each guard, end to end: dry-run, the kill switch, namespace policy, the per-target
lock, cooldown, max_runs_per_hour and the global action budget."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from remediator.model.incident import IncidentState, StepStatus
from remediator.settings import EngineSettings

from .rig import AUTH, T0, Rig, alert, ladder_playbook, resolved


async def test_global_dry_run_journals_would_and_writes_nothing(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url), EngineSettings(dry_run=True))
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    assert [s.status for s in inc.steps if not s.action.startswith("escalate:")] == \
        [StepStatus.DRY_RUN] * 3
    would = [e.message for e in inc.timeline if e.kind == "step" and "would" in e.message]
    assert any("would restart Deployment prod/api" in m for m in would), would
    assert any("would scale Deployment prod/api from 3 to 6" in m for m in would), would
    # the exact API call is in the journal
    assert all(s.intent and s.intent["api_calls"] for s in inc.steps)
    assert rig.writes() == []                  # zero write calls reached the API server
    assert rig.hooks.calls == []               # escalation actions are dry-run too


async def test_playbook_dry_run_guard(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url, guards="{dry_run: true}"))
    rig.metrics.holding = {"step1_ok"}
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.dry_run
    assert inc.steps[0].status == StepStatus.DRY_RUN
    assert rig.writes() == []


async def _call(rig: Rig, path: str, headers: dict[str, str] | None = None,
                body: Any = None) -> tuple[int, dict[str, Any]]:
    assert rig.client is not None
    resp = await rig.client.post(path, headers=headers,
                                 data=json.dumps(body) if body is not None else None)
    return resp.status, await resp.json()


async def test_kill_switch_authenticated_persisted_and_resumable(rig: Rig) -> None:
    pb = ladder_playbook(hook=rig.hooks.url)
    await rig.start(pb)
    rig.metrics.holding = {"step1_ok"}
    assert (await _call(rig, "/api/v1/pause"))[0] == 401
    assert (await _call(rig, "/api/v1/pause", {"Authorization": "Bearer nope"}))[0] == 401
    assert (await _call(rig, "/api/v1/resume"))[0] == 401
    status, body = await _call(rig, "/api/v1/pause", {**AUTH, "Content-Type":
                                                      "application/json"},
                               {"reason": "change freeze", "by": "alice"})
    assert status == 200
    assert body["paused"] is True
    # persisted: a restarted daemon is still paused
    await rig.restart(pb)
    assert rig.client is not None
    st = await (await rig.client.get("/api/v1/status", headers=AUTH)).json()
    assert st["paused"] is True
    assert st["pause"]["kind"] == "manual"
    assert st["pause"]["reason"] == "change freeze"
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    assert "automation is paused (change freeze)" in inc.summary
    assert rig.writes() == []
    assert len(rig.hooks.calls) == 1           # a manual pause hands every incident to humans
    status, body = await _call(rig, "/api/v1/resume", AUTH)
    assert status == 200
    assert body == {"paused": False, "by": "token"}      # the credential, not the body
    await rig.restart(pb)
    st = await (await rig.client.get("/api/v1/status", headers=AUTH)).json()
    assert (st["paused"], st["pause"]) == (False, None)
    await rig.post([alert(deployment="web")])
    await rig.settle()
    web = [i for i in await rig.incidents() if i.target and i.target.name == "web"]
    assert web[0].state == IncidentState.RECOVERED
    assert len(rig.writes()) == 1


async def test_namespace_deny_list(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url), EngineSettings(deny_namespaces=["prod"]))
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    assert "deny list" in inc.summary
    assert rig.writes() == []
    assert len(rig.hooks.calls) == 1


async def test_namespace_allow_list(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url),
                    EngineSettings(allow_namespaces=["staging"]))
    rig.metrics.holding = {"step1_ok"}
    await rig.post([alert(), alert(namespace="staging")])
    await rig.settle()
    by_ns = {i.target.namespace: i for i in await rig.incidents() if i.target}
    assert by_ns["prod"].state == IncidentState.ESCALATED
    assert "not on the allow list" in by_ns["prod"].summary
    assert by_ns["staging"].state == IncidentState.RECOVERED
    assert [c["path"] for c in rig.writes()] == [
        "/apis/apps/v1/namespaces/staging/deployments/api"]


async def test_per_target_lock_two_playbooks_never_act_concurrently(rig: Rig) -> None:
    both = ladder_playbook("first", hook=rig.hooks.url, continue_=True) + "---" + \
        ladder_playbook("second", hook=rig.hooks.url)
    await rig.start(both, EngineSettings(lock_retry_interval=10.0))
    rig.metrics.holding = {"step2_ok"}          # each needs two steps: long enough to overlap
    await rig.post([alert()])
    await rig.settle()
    incs = await rig.incidents()
    assert sorted(i.playbook for i in incs) == ["first", "second"]
    assert all(i.state == IncidentState.RECOVERED for i in incs)
    # one waited for the other; their acting windows do not overlap
    waited = [i for i in incs if any(e.data.get("guard") == "target_lock" for e in i.timeline)]
    assert len(waited) == 1
    holder = next(i for i in incs if i is not waited[0])
    assert holder.closed_at is not None
    first_act = min(s.started_at for s in waited[0].steps if s.started_at)
    assert holder.closed_at <= first_act
    assert len([c for c in rig.writes() if c["path"].endswith("/scale")]) == 2


async def test_cooldown_refuses_a_new_run_too_soon(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url, guards="{cooldown: 30m}"))
    rig.metrics.holding = {"step1_ok"}
    first = alert()
    await rig.post([first])
    await rig.settle()
    await rig.post([resolved(first)])
    await rig.clock.advance(600)
    await rig.post([alert(starts_at=T0 + timedelta(minutes=11))])
    await rig.settle()
    states = sorted((i.created_at, i.state, i.summary) for i in await rig.incidents())
    assert [s for _, s, _ in states] == [IncidentState.RECOVERED, IncidentState.ESCALATED]
    assert "cooldown" in states[1][2]
    assert len(rig.writes()) == 1
    # after the cooldown a new episode is remediated again
    await rig.post([resolved(alert(starts_at=T0 + timedelta(minutes=11)))])
    await rig.settle()
    await rig.clock.advance(1900)
    await rig.post([alert(starts_at=T0 + timedelta(minutes=50))])
    await rig.settle()
    assert len(rig.writes()) == 2


async def test_max_runs_per_hour(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url, guards="{max_runs_per_hour: 2}"))
    rig.metrics.holding = {"step1_ok"}
    for n in range(3):
        a = alert(starts_at=T0 + timedelta(minutes=n))
        await rig.post([a])
        await rig.settle()
        await rig.post([resolved(a)])
        await rig.settle()
        await rig.clock.advance(60)
    incs = sorted(await rig.incidents(), key=lambda i: i.created_at)
    assert [i.state for i in incs] == [IncidentState.RECOVERED, IncidentState.RECOVERED,
                                       IncidentState.RESOLVED]
    assert any(e.data.get("guard") == "max_runs_per_hour" for e in incs[2].timeline)
    assert len(rig.writes()) == 2


async def test_global_budget_pauses_and_escalates_once(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url),
                    EngineSettings(action_budget=4, action_budget_window=86400))
    # three targets, each would take three mutating steps: 9 > 4
    await rig.post([alert(), alert(deployment="web"), alert(namespace="staging")])
    await rig.settle()
    incs = await rig.incidents()
    assert len(incs) == 3
    assert all(i.state == IncidentState.ESCALATED for i in incs)
    # four actions were reserved; prod/web's scale was refused by its HPA (no write)
    assert await rig.store.mutations_since(T0) == 4
    assert len(rig.writes()) <= 4
    assert len(rig.hooks.calls) == 1, rig.hooks.calls
    storm = [i for i in incs if "remediation storm" in i.summary]
    assert len(storm) == 1
    assert rig.hooks.calls[0]["incident"] == storm[0].id
    paused = await rig.engine.guards.paused()
    assert paused is not None
    assert paused.kind == "budget"
    assert rig.engine.metrics.registry.get_sample_value("remediator_automation_paused") == 1
