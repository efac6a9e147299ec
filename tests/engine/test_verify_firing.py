"""A verification polling every few seconds asks the store whether the incident's alerts
still fire only after a wake, or when its last look is ``RECHECK`` seconds old: a resolve
(which wakes) ends it at once, a resolve whose wake was lost within ``RECHECK``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from remediator.engine.run import RECHECK
from remediator.engine.verification import poll_phase
from remediator.model.incident import IncidentState
from remediator.ports.store import AlertRecord, IngestItem
from remediator.settings import DiagnosisSettings, EngineSettings

from .rig import T0, Rig, alert, resolved
from .test_step_ends import until_the_first_step_waits

WATCH = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: watch}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}",
           name: "{{ labels.deployment }}"}
  steps:
    - name: settle
      action: wait
      with: {duration: 1s}
      verify: {promql: "never_ok > 0", interval: 5s, timeout: 10m}
"""
INTERVAL = 5


async def verifying(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], list[int]]:
    """The incident's alert, once its step verifies; the store's firing-count reads
    from then on (each a 1)."""
    await rig.start(WATCH, EngineSettings(diagnosis=DiagnosisSettings(enabled=False)))
    rig.clock.auto_advance = False
    a = alert()
    await rig.post([a])
    await until_the_first_step_waits(rig)              # the wait action's 1 s
    await rig.clock.advance(1)
    for _ in range(200):
        if rig.metrics.queries:                       # the first poll asked Prometheus
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the verification never polled")
    reads: list[int] = []
    real = rig.store.firing_alert_count

    async def counted(incident_id: str) -> int:
        reads.append(1)
        return await real(incident_id)
    monkeypatch.setattr(rig.store, "firing_alert_count", counted)
    return a, reads


async def polls_for(rig: Rig, seconds: int) -> None:
    for _ in range(seconds // INTERVAL):
        await rig.clock.advance(INTERVAL)
        await asyncio.sleep(0.02)


async def test_polls_read_the_firing_count_once_per_recheck(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    _, reads = await verifying(rig, monkeypatch)
    def polls() -> int:
        return rig.metrics.queries.count("never_ok > 0")
    asked = polls()
    await polls_for(rig, 60)
    # every poll asked: every INTERVAL on the incident's phase after the first
    phase = poll_phase(f"{(await rig.only_incident()).id}/0")
    assert polls() - asked == sum(1 for k in range(1, 14) if (k + phase) * INTERVAL <= 60)
    # the store: when the last read is RECHECK/2 to RECHECK seconds old (the incident's
    # own age), at the first poll after that: 1 to 4 of the 12 polls in 60 s (1 when
    # the age is near RECHECK and the incident's phase puts the polls just after it)
    assert 1 <= len(reads) <= 60 // int(RECHECK / 2), reads
    inc = await rig.only_incident()
    assert inc.state == IncidentState.REMEDIATING


async def test_a_resolve_ends_the_verification_at_once(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = await verifying(rig, monkeypatch)
    await polls_for(rig, 10)
    await rig.post([resolved(a)])                     # wakes the incident
    await asyncio.wait_for(rig.engine.idle(), 1.0)
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RESOLVED, inc.summary
    assert "the alert resolved" in (inc.steps[0].verify or ""), inc.steps[0]


async def test_a_resolve_without_a_wake_is_seen_within_recheck(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wake can be lost (another replica's NOTIFY while this one's LISTEN connection
    was down): the polls still look at the alerts every RECHECK seconds."""
    a, _ = await verifying(rig, monkeypatch)
    gone = resolved(a)
    record = AlertRecord(gone["fingerprint"], T0, T0 + timedelta(minutes=30), "resolved",
                         gone["labels"], gone["annotations"])
    await rig.store.ingest([IngestItem(record, ())], rig.clock.now())   # no wake: lost
    await polls_for(rig, int(RECHECK) + INTERVAL)
    await asyncio.wait_for(rig.engine.idle(), 1.0)
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RESOLVED, inc.summary
