"""Diagnosis in the engine, end to end: a bad rollout is diagnosed, the finding steers
the ladder (restart skipped, rollback run), verification confirms the fix; the
findings are journaled and served by the API."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from remediator.adapters.k8s_inspect import KubernetesInspector
from remediator.adapters.openai_chat import OpenAIChat
from remediator.model.incident import IncidentState, IncidentView, StepStatus, TargetRef
from remediator.settings import DiagnosisSettings, EngineSettings
from remediator.simulator import Simulator
from remediator.testing.fake_openai import FakeOpenAI

from .rig import AUTH, Rig, alert

PLAYBOOK = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: api-errors}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}",
           name: "{{ labels.deployment }}"}
  steps:
    - name: restart
      action: kubernetes.restart
      skip_if: {finding: recent_rollout}
      verify: {rollout: complete, timeout: 2m, interval: 5s}
    - name: roll back
      action: kubernetes.rollback
      with: {revision: previous}
      when: {finding: recent_rollout}
      verify: {rollout: complete, timeout: 30m, interval: 5s}
  escalate:
    - action: http.post
      with: {url: "http://127.0.0.1:9/hook", json: {incident: "{{ incident.id }}"}}
"""


@contextlib.asynccontextmanager
async def ticking(sim: Simulator) -> AsyncIterator[None]:
    """The simulator's controller runs (its clock moves a second every few ms)."""
    async def tick() -> None:
        while True:
            await sim.clock.advance(1)      # type: ignore[attr-defined]
            await asyncio.sleep(0.005)
    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def bad_rollout(rig: Rig, sim: Simulator) -> dict[str, Any]:
    """Roll api out to 1.3.0, which crash-loops; two minutes later the alert fires."""
    async with rig.http.post(f"{sim.url}/sim/v1/pod-states", headers={
            "Authorization": f"Bearer {sim.token}"}, json={
            "image": "example/api:1.3.0", "state": "CrashLoopBackOff", "exit_code": 2,
            "log": "fatal: config key 'db.pool' is not a number"}) as r:
        assert r.status == 201
    await rig.cluster.patch_workload(
        TargetRef(kind="Deployment", namespace="prod", name="api"),
        {"spec": {"template": {"spec": {"containers": [{"name": "api",
                                                        "image": "example/api:1.3.0"}]}}}},
        content_type="application/strategic-merge-patch+json")
    for _ in range(120):
        await sim.clock.advance(1)          # type: ignore[attr-defined]
    return alert(starts_at=sim.clock.now())


async def test_a_bad_rollout_is_diagnosed_and_rolled_back_because_of_it(
        rig: Rig, sim: Simulator) -> None:
    await rig.start(PLAYBOOK)
    rig.engine.ports.inspect = KubernetesInspector(rig.cluster)
    firing = await bad_rollout(rig, sim)
    async with ticking(sim):
        await rig.post([firing])
        await rig.settle(30)
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RECOVERED, [t.message for t in inc.timeline]
    notes = [t for t in inc.timeline if t.kind == "diagnosis"]
    opened = notes[0]
    assert opened.message.startswith(
        "diagnosis (incident opened): rollout of api: image example/api:1.2.0 → "
        "example/api:1.3.0 (revision 3 → 4), 2m before the first alert (HighErrorRate)")
    assert "recent_rollout:" in opened.data["findings"][0]
    # the restart was skipped because of the finding, the rollback ran because of it
    restart, rollback = inc.steps
    assert restart.status == StepStatus.SKIPPED
    assert (restart.result or "").startswith(
        "skipped: skip_if {finding: recent_rollout}: rollout of api")
    decisions = [(t.data.get("step"), t.data.get("decision"), t.data.get("finding"))
                 for t in notes if t.data.get("decision")]
    rollout_id = opened.data["findings"][0]
    assert decisions == [("restart", "skip", rollout_id), ("roll back", "run", rollout_id)]
    assert rollback.status == StepStatus.SUCCEEDED
    assert "rollout" in (rollback.verify or "")
    # what the pods said is there too: the crash loop with its exit code and log line
    kinds = {f["kind"]: f for f in inc.context["diagnosis"]["findings"]}
    assert "exit code 2" in kinds["crash_loop"]["summary"]
    assert "fatal: config key 'db.pool' is not a number" in kinds["crash_loop"]["summary"]
    # the cluster is back on 1.2.0
    obj = await rig.cluster.read_workload(inc.target)     # type: ignore[arg-type]
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "example/api:1.2.0"
    # and the API serves the findings
    assert rig.client is not None
    resp = await rig.client.get(f"/api/v1/incidents/{inc.id}", headers=AUTH)
    body = await resp.json()
    assert [f["id"] for f in body["context"]["diagnosis"]["findings"]] == \
        [f["id"] for f in inc.context["diagnosis"]["findings"]]


async def test_without_the_finding_the_when_step_is_skipped(rig: Rig, sim: Simulator) -> None:
    """No rollout before the alert: the restart runs (nothing to skip it) and does not
    help (the pods never become ready), the rollback's ``when`` is not met, so it is
    skipped and the incident escalates."""
    await rig.start(PLAYBOOK)
    rig.engine.ports.inspect = KubernetesInspector(rig.cluster)
    async with rig.http.post(f"{sim.url}/sim/v1/pod-states", headers={
            "Authorization": f"Bearer {sim.token}"}, json={
            "image": "example/api:1.2.0", "state": "Unready"}) as r:
        assert r.status == 201
    async with ticking(sim):
        await rig.post([alert(starts_at=sim.clock.now() + timedelta(seconds=1))])
        await rig.settle(30)
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED, [t.message for t in inc.timeline]
    restart, rollback = inc.steps[:2]
    assert restart.status != StepStatus.SKIPPED          # nothing skipped it: it acted
    assert restart.intent is not None
    assert rollback.status == StepStatus.SKIPPED
    assert rollback.result == "skipped: when {finding: recent_rollout}: no recent_rollout finding"


@pytest.mark.parametrize("enabled", [False])
async def test_diagnosis_off_means_when_steps_are_skipped_and_said_so(
        rig: Rig, sim: Simulator, enabled: bool) -> None:
    await rig.start(PLAYBOOK, EngineSettings(retry_base=5.0,
                                             diagnosis=DiagnosisSettings(enabled=enabled)))
    firing = await bad_rollout(rig, sim)
    async with ticking(sim):
        await rig.post([firing])
        await rig.settle(30)
    inc = await rig.only_incident()
    assert "diagnosis" not in inc.context
    rollback = inc.steps[1]
    assert rollback.result == \
        "skipped: when {finding: recent_rollout}: no diagnosis was made"


async def summary_arrived(rig: Rig, limit: float = 10.0) -> IncidentView:
    """The incident once the model's summary (asked in the background) is journaled
    (real time, bounded: the model is an HTTP server)."""
    async def poll() -> IncidentView:
        while True:
            inc = await rig.only_incident()
            if any(t.message.startswith("model summary") for t in inc.timeline):
                return inc
            await asyncio.sleep(0.02)
    return await asyncio.wait_for(poll(), limit)


async def with_model(rig: Rig, sim: Simulator, fake: FakeOpenAI,
                     model_timeout: float = 60) -> dict[str, Any]:
    """The rig on PLAYBOOK with the inspector and ``fake`` as its model ("qwen"), and a
    bad rollout made: the alert to post."""
    await rig.start(PLAYBOOK)
    rig.engine.ports.inspect = KubernetesInspector(rig.cluster)
    rig.engine.ports.model = OpenAIChat(fake.base_url, "qwen", rig.http, timeout=model_timeout)
    return await bad_rollout(rig, sim)


async def test_the_first_action_does_not_wait_for_the_model_summary(
        rig: Rig, sim: Simulator) -> None:
    fake = FakeOpenAI(_cite_first)
    fake.gate = asyncio.Event()                # the model answers when the test says so
    await fake.start()
    try:
        firing = await with_model(rig, sim, fake)
        async with ticking(sim):
            await rig.post([firing])
            await rig.settle(30)
            # the whole ladder ran while the model had the question and no answer yet
            before = await rig.only_incident()
            assert len(fake.requests) == 1
            assert before.state == IncidentState.RECOVERED
            assert [s.status for s in before.steps] == [StepStatus.SKIPPED,
                                                        StepStatus.SUCCEEDED]
            assert not any(t.message.startswith("model summary") for t in before.timeline)
            assert "summary" not in before.context["diagnosis"]
            fake.gate.set()
            inc = await summary_arrived(rig)
    finally:
        await fake.stop()
    messages = [t.message for t in inc.timeline]
    [note] = [m for m in messages if m.startswith("model summary")]
    assert note.startswith("model summary (qwen): A rollout just before the alert broke "
                           "the pods [recent_rollout:")
    rollback = next(i for i, t in enumerate(inc.timeline)
                    if t.data.get("step") == "roll back")
    assert rollback < messages.index(note)             # the action came first
    said = inc.context["diagnosis"]["summary"]
    assert said["cited"] == [inc.context["diagnosis"]["findings"][0]["id"]]


async def test_a_summary_still_pending_when_the_engine_stops_is_cancelled(
        rig: Rig, sim: Simulator) -> None:
    fake = FakeOpenAI(_cite_first)
    fake.gate = asyncio.Event()                # never answers
    await fake.start()
    try:
        firing = await with_model(rig, sim, fake)
        async with ticking(sim):
            await rig.post([firing])
            await rig.settle(30)
        assert len(fake.requests) == 1
        await rig.stop(grace=0.1)              # the supervisor cancels it: no task left
        assert not any(t.get_name().startswith("diagnosis-summary-")
                       for t in asyncio.all_tasks())
    finally:
        fake.gate.set()
        await fake.stop()


def _cite_first(messages: list[dict[str, Any]]) -> str:
    findings = json.loads(messages[-1]["content"])["findings"]
    return f"A rollout just before the alert broke the pods [{findings[0]['id']}]."


@pytest.mark.parametrize(("behaviour", "says"), [
    ("good", "model summary (qwen): A rollout just before the alert broke the pods "
             "[recent_rollout:"),
    ("nonsense", "model summary discarded (the incident goes on): it cites findings that do "
                 "not exist: db_down:pg-0"),
    ("down", "model summary not made (the incident goes on): model at "),
    ("slow", "model summary not made (the incident goes on): model at "),
])
async def test_the_model_summary_is_checked_and_never_changes_the_incident(
        rig: Rig, sim: Simulator, behaviour: str, says: str) -> None:
    fake = FakeOpenAI(_cite_first if behaviour != "nonsense"
                      else (lambda messages: "The database is down [db_down:pg-0]."))
    await fake.start()
    try:
        if behaviour == "down":
            await fake.down()
        if behaviour == "slow":
            fake.delay = 2.0
        firing = await with_model(rig, sim, fake, model_timeout=0.3)
        async with ticking(sim):
            await rig.post([firing])
            await rig.settle(30)
            inc = await summary_arrived(rig)
    finally:
        await fake.stop()
    # the same story as without a model: skipped restart, rollback, recovered
    assert inc.state == IncidentState.RECOVERED
    assert [s.status for s in inc.steps] == [StepStatus.SKIPPED, StepStatus.SUCCEEDED]
    notes = [t.message for t in inc.timeline if t.kind == "diagnosis"]
    assert any(n.startswith(says) for n in notes), notes
    said = inc.context["diagnosis"]["summary"]
    assert ("text" in said) == (behaviour == "good")
    if behaviour != "down":
        [request] = fake.requests
        assert "fatal: config key" in request["messages"][1]["content"]
