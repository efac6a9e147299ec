"""Deduplication: repeats and HA duplicates fold into one incident acted on once; a
new episode attaches to the open incident; unmatched alerts are recorded and listed."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from remediator.model.incident import IncidentState
from remediator.settings import EngineSettings

from .rig import AUTH, T0, Rig, alert, ladder_playbook


async def test_repeated_webhooks_one_incident_acted_once(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    rig.metrics.holding = {"step1_ok"}
    assert (await rig.post([alert()]))["alerts"] == {"new": 1}
    for _ in range(3):
        assert (await rig.post([alert()]))["alerts"] == {"duplicate": 1}
    await rig.settle()
    for _ in range(3):                       # repeat_interval resends after recovery
        assert (await rig.post([alert()]))["alerts"] == {"duplicate": 1}
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RECOVERED
    assert len(inc.alerts) == 1
    assert len(rig.writes()) == 1


async def test_ha_duplicates_posted_concurrently_make_one_incident(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    rig.metrics.holding = {"step1_ok"}
    group = [alert(), alert(deployment="web"), alert(namespace="staging")]
    replies = await asyncio.gather(*(rig.post(group) for _ in range(4)))
    total: dict[str, int] = {}
    for r in replies:
        for k, v in r["alerts"].items():
            total[k] = total.get(k, 0) + v
    assert total == {"new": 3, "duplicate": 9}
    await rig.settle()
    incs = await rig.incidents()
    assert len(incs) == 3
    assert sorted(c["path"] for c in rig.writes()) == sorted({c["path"] for c in rig.writes()})
    assert len(rig.writes()) == 3


async def test_new_episode_attaches_to_the_open_incident(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url), EngineSettings(max_parallel=1))
    rig.metrics.holding = {"step1_ok"}
    await rig.engine.slots.acquire("test")            # keep the incident open (queued)
    try:
        first = await rig.post([alert()])
        later = await rig.post([alert(starts_at=T0 + timedelta(minutes=5))])
    finally:
        rig.engine.slots.release("test")
    assert first["alerts"] == {"new": 1}
    assert later["alerts"] == {"new": 1}        # a new episode, same incident
    await rig.settle()
    inc = await rig.only_incident()
    assert len(inc.alerts) == 2
    assert {a["startsAt"] for a in inc.alerts} == {
        (T0).isoformat(), (T0 + timedelta(minutes=5)).isoformat()}
    assert len(rig.writes()) == 1


async def test_new_episode_attaches_to_an_escalated_incident(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    await rig.post([alert(starts_at=T0 + timedelta(hours=2))])
    await rig.settle()
    again = await rig.only_incident()
    assert again.id == inc.id
    assert len(again.alerts) == 2
    assert len(rig.writes()) == 3
    assert len(rig.hooks.calls) == 1


async def test_unmatched_alerts_are_recorded_and_listed(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    body = await rig.post([alert("DiskFull"), alert()])
    assert body["alerts"] == {"unmatched": 1, "new": 1}
    await rig.settle()
    assert rig.client is not None
    resp = await rig.client.get("/api/v1/alerts?outcome=unmatched")
    assert resp.status == 401
    resp = await rig.client.get("/api/v1/alerts?outcome=unmatched", headers=AUTH)
    assert resp.status == 200
    rows = (await resp.json())["alerts"]
    assert [r["labels"]["alertname"] for r in rows] == ["DiskFull"]
    assert rows[0]["outcome"] == "unmatched"
    assert len(await rig.incidents()) == 1


async def test_a_redelivery_is_answered_before_routing(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook that only repeats committed episodes is neither routed nor written; its
    outcomes still count in the metrics. A changed one is routed as usual."""
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    rig.metrics.holding = {"step1_ok"}
    group = [alert(), alert(deployment="web")]
    assert (await rig.post(group))["alerts"] == {"new": 2}
    engine = rig.engine
    assert engine is not None
    routed: list[str] = []
    real_routes = engine.router.routes

    def counted(a: Any, **kwargs: Any) -> Any:
        routed.append(a.fingerprint)
        return real_routes(a, **kwargs)
    monkeypatch.setattr(engine.router, "routes", counted)
    def received() -> float:
        value = engine.metrics.registry.get_sample_value(
            "remediator_alerts_received_total", {"outcome": "duplicate"})
        return value or 0.0
    before = received()
    assert (await rig.post(group))["alerts"] == {"duplicate": 2}
    assert routed == []
    assert received() == before + 2
    assert (await rig.post([*group, alert(deployment="db")]))["alerts"] == {
        "duplicate": 2, "new": 1}
    assert len(routed) == 3
