"""Pod logs and events collected at escalation and after a step with ``collect``:
through the engine, the real kubernetes_asyncio client and the simulator, whose
crash-looping pods log secrets and a panic."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.clock import FakeClock
from remediator.engine.evidence import REDACTED, Redactor
from remediator.errors import ConfigError
from remediator.loader import load
from remediator.model.incident import IncidentState
from remediator.settings import DEFAULT_REDACT, EngineSettings, EvidenceSettings
from remediator.simulator import Simulator
from remediator.simulator.logs import PANIC, SECRETS
from remediator.simulator.seed import Seed
from remediator.simulator.seed import load as load_seed

from .rig import AUTH, Rig, alert


@pytest.fixture
def seed() -> Seed:
    return load_seed("bad_images: ['img:bad']\ndeployments:\n"
                     "- {namespace: prod, name: api, replicas: 4, image: 'img:bad',"
                     " history: ['img:1']}\n")


def playbook(hook: str, collect: str = "") -> str:
    return f"""
apiVersion: remediator/v1
kind: Playbook
metadata: {{name: collect}}
spec:
  match: ['alertname="HighErrorRate"']
  target: {{kind: Deployment, namespace: "{{{{ labels.namespace }}}}",
           name: "{{{{ labels.deployment }}}}"}}
  steps:
    - name: restart
      action: kubernetes.restart
      {collect}
      verify: {{promql: 'never_ok{{deployment="{{{{ target.name }}}}"}}', timeout: 2m}}
  escalate:
    - action: http.post
      with: {{url: "{hook}", json: {{incident: "{{{{ incident.id }}}}"}}}}
"""


async def _crash_loop(sim: Simulator) -> None:
    assert isinstance(sim.clock, FakeClock)
    await sim.clock.advance(35)
    sim.controller.tick()


async def test_escalation_collects_the_logs_of_three_failing_pods(
        rig: Rig, sim: Simulator) -> None:
    await _crash_loop(sim)
    await rig.start(playbook(rig.hooks.url), EngineSettings(
        retry_base=5.0, evidence=EvidenceSettings(log_bytes=1024)))
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    items = await rig.store.list_evidence(inc.id)
    logs = [i for i in items if i.kind == "logs"]
    assert len({i.pod for i in logs}) == 3                      # of 4 failing pods
    assert {i.previous for i in logs} == {False, True}          # current and previous
    assert all(PANIC in i.text for i in logs)
    assert all(i.moment == "escalation" for i in items)
    for i in logs:
        assert not any(secret in i.text for secret in SECRETS), i.text
        assert i.redacted == 3
        assert REDACTED in i.text
    # at most log_bytes per pod, all its containers together
    for pod in {i.pod for i in logs}:
        assert sum(len(i.text.encode()) for i in logs if i.pod == pod) <= 1024 + 64 * 3
    events = [i for i in items if i.kind == "events"]
    assert any("BackOff" in e.text for e in events)
    assert any(e.object_kind == "Deployment" for e in events)
    note = [t for t in inc.timeline if t.kind == "evidence"]
    assert note
    assert note[0].message.startswith("escalation: collected 6 logs of 3 failing pods")
    # the API returns it
    assert rig.client is not None
    resp = await rig.client.get(f"/api/v1/incidents/{inc.id}/evidence", headers=AUTH)
    body = await resp.json()
    assert any(PANIC in c["text"] for c in body["collected"])
    assert body["collected"][0]["title"].startswith("logs of pod prod/api-")
    # and the simulator saw the reads with kubectl's parameters
    reads = [c for c in sim.control.calls if c["path"].endswith("/log")]
    assert reads
    assert all("tailLines=100" in c["query"] for c in reads)


async def test_a_step_with_collect_gathers_after_it_ends(rig: Rig, sim: Simulator) -> None:
    await _crash_loop(sim)
    await rig.start(playbook(rig.hooks.url, "collect: [events]"))
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    items = await rig.store.list_evidence(inc.id)
    after = [i for i in items if i.moment == "after step 'restart'"]
    assert after
    assert {i.kind for i in after} == {"events"}
    assert [t.message.split(":")[0] for t in inc.timeline if t.kind == "evidence"] == [
        "after step 'restart'", "escalation"]


def test_collect_is_checked_when_playbooks_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(playbook("http://127.0.0.1:9/h", "collect: [logs, metrics]"))
    assert "collect" in str(info.value)
    assert "'logs' or 'events'" in str(info.value)


def test_the_default_redaction() -> None:
    redact = Redactor(DEFAULT_REDACT)
    text, n = redact("Authorization: Bearer abc.def-ghi\npassword=hunter2 user=bob\n"
                     "key AKIAIOSFODNN7EXAMPLE and PASSWORD: s3cr3t;\n"
                     "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert n == 5
    for secret in ("abc.def-ghi", "hunter2", "IOSFODNN7EXAMPLE", "s3cr3t", "wJalrXUtn"):
        assert secret not in text
    assert "Bearer [REDACTED]" in text
    assert "password=[REDACTED] user=bob" in text
    assert "AKIA[REDACTED]" in text


def test_a_bad_redaction_pattern_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="redact pattern '\\(unclosed' is not a regular"):
        EvidenceSettings(redact=["(unclosed"])
