"""Crash safety and SIGTERM with real processes: ``python -m remediator.cli serve``
against ``python -m remediator.simulator``, real time, bounded."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .procs import AUTH, DaemonProc, SimProc, daemon_config
from .rig import alert, webhook

pytestmark = pytest.mark.slow

PLAYBOOK = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: crash}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
  steps:
    - name: restart
      action: kubernetes.restart
      verify: {alert_resolved: true, timeout: %(verify)s, interval: 200ms}
    - name: scale out
      action: kubernetes.scale
      with: {to: 4}
      verify: {rollout: complete, timeout: 20s, interval: 300ms}
"""
TARGETS = [("prod", "api"), ("staging", "api")]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProc]:
    s = SimProc(tmp_path)
    yield s
    s.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(http: aiohttp.ClientSession, url: str, alerts: list[dict[str, Any]]
               ) -> tuple[int, Any]:
    async with http.post(f"{url}/api/v1/alerts", data=json.dumps(webhook(alerts)),
                         headers={**AUTH, "Content-Type": "application/json"}) as r:
        return r.status, await r.json()


async def mid_ladder(http: aiohttp.ClientSession, daemon: DaemonProc, limit: float = 10.0
                     ) -> dict[str, dict[str, Any]]:
    """Poll the daemon's API until the staging restart's intent is journaled (its call
    in flight) and the prod restart is applied; the first step of each target then."""
    deadline = time.monotonic() + limit
    while True:
        steps: dict[str, dict[str, Any]] = {}
        for listed in (await daemon.get(http, "/api/v1/incidents"))["incidents"]:
            inc = await daemon.get(http, f"/api/v1/incidents/{listed['id']}")
            if inc["steps"] and inc["target"]:
                steps[f"{inc['target']['namespace']}/{inc['target']['name']}"] = inc["steps"][0]
        staging, prod = steps.get("staging/api"), steps.get("prod/api")
        if staging and prod and staging["status"] == "intent" \
                and prod["status"] in ("applied", "verifying"):
            return steps
        assert time.monotonic() < deadline, steps
        await asyncio.sleep(0.02)


async def test_sigkill_mid_ladder_loses_nothing_and_acts_once(tmp_path: Path, sim: SimProc,
                                                              http: aiohttp.ClientSession
                                                              ) -> None:
    await sim.ready(http)
    config = daemon_config(tmp_path, sim.kubeconfig, PLAYBOOK % {"verify": "3s"})
    # the staging restart is slow: it is in flight (intent journaled) when the daemon dies
    async with http.post(f"{sim.url}/sim/v1/faults", json={
            "method": "PATCH", "path": "namespaces/staging/deployments/api$", "latency": 1.5,
            "count": 1}) as r:
        assert r.status == 201
    before = {t: await sim.deployment(http, *t) for t in TARGETS}
    first = DaemonProc(tmp_path, config, "first")
    try:
        await first.ready(http)
        acked: list[dict[str, Any]] = []
        batches = [[alert(namespace=ns, deployment=name) for ns, name in TARGETS]]
        batches += [[alert("NoPlaybook", deployment=f"svc-{b}-{i}") for i in range(5)]
                    for b in range(8)]
        replies = await asyncio.gather(*(post(http, first.url, b) for b in batches))
        for batch, (status, _) in zip(batches, replies, strict=True):
            assert status == 200
            acked += batch
        # Kill only once the journal shows the ladder mid-way: the staging restart's intent
        # journaled with its call in flight (the simulator delays it 1.5 s), the prod
        # restart applied and verifying.
        at_kill = await mid_ladder(http, first)
        first.kill()
    finally:
        first.ensure_dead()
    staging_intent = at_kill["staging/api"]["intent"]
    assert at_kill["staging/api"]["status"] == "intent"
    assert at_kill["prod/api"]["status"] in ("applied", "verifying")
    staging_path = "/apis/apps/v1/namespaces/staging/deployments/api"
    made = [c for c in await sim.calls(http)
            if c["method"] == "PATCH" and c["path"] == staging_path]
    assert len(made) <= 1           # the call made once or not yet: the kill landed before
    #                                 its outcome was journaled
    second = DaemonProc(tmp_path, config, "second")
    try:
        await second.ready(http)
        deadline = time.monotonic() + 30
        while True:
            incidents = (await second.get(http, "/api/v1/incidents"))["incidents"]
            if len(incidents) == 2 and all(i["state"] in ("recovered", "escalated", "resolved")
                                           for i in incidents):
                break
            assert time.monotonic() < deadline, incidents
            await asyncio.sleep(0.2)
        assert {i["state"] for i in incidents} == {"recovered"}, incidents
        # zero acknowledged alerts lost
        stored = (await second.get(http, "/api/v1/alerts"))["alerts"]
        seen = {(a["fingerprint"], a["startsAt"]) for a in stored}
        for a in acked:
            starts = a["startsAt"].replace(".000000Z", "+00:00")
            assert (a["fingerprint"], starts) in seen, a["labels"]
        assert len(stored) == len(acked)
        # no action performed twice: one restartedAt and one scale per Deployment, and
        # exactly one new template revision each
        calls = [c for c in await sim.calls(http) if c["method"] == "PATCH"]
        for ns, name in TARGETS:
            path = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
            restarts = {json.dumps(c["body"], sort_keys=True) for c in calls
                        if c["path"] == path}
            scales = {json.dumps(c["body"], sort_keys=True) for c in calls
                      if c["path"] == path + "/scale"}
            assert len(restarts) == 1, restarts
            assert len(scales) == 1, scales
            rev = "deployment.kubernetes.io/revision"
            old = int(before[(ns, name)]["metadata"]["annotations"][rev])
            now = await sim.deployment(http, ns, name)
            assert int(now["metadata"]["annotations"][rev]) == old + 1
            assert now["spec"]["replicas"] == 4
        # the staging restart was re-applied from the journaled intent (its restartedAt),
        # not planned again
        staging = [c["body"] for c in calls if c["path"] == staging_path]
        assert staging_intent["args"]["restarted_at"] in json.dumps(staging[-1])
        # the journal says a run was resumed
        log = second.log_path.read_text()
        assert "resuming" in log
    finally:
        second.terminate()
        assert second.wait(15) == 0
        second.ensure_dead()


async def test_sigterm_refuses_new_alerts_checkpoints_and_exits_0(tmp_path: Path,
                                                                  sim: SimProc,
                                                                  http: aiohttp.ClientSession
                                                                  ) -> None:
    await sim.ready(http)
    config = daemon_config(tmp_path, sim.kubeconfig, PLAYBOOK % {"verify": "60s"}, grace=8)
    async with http.post(f"{sim.url}/sim/v1/faults", json={
            "method": "PATCH", "path": "namespaces/prod/deployments/api$", "latency": 2.0,
            "count": 1}) as r:
        assert r.status == 201
    d = DaemonProc(tmp_path, config)
    try:
        await d.ready(http)
        status, _ = await post(http, d.url, [alert()])
        assert status == 200
        await asyncio.sleep(0.5)                    # the restart PATCH is in flight
        started = time.monotonic()
        d.terminate()
        await asyncio.sleep(0.3)
        status, body = await post(http, d.url, [alert(deployment="web")])
        assert status == 503, body
        code = await asyncio.to_thread(d.wait, 15)
        took = time.monotonic() - started
        assert code == 0
        assert took < 8 + 5
    finally:
        d.ensure_dead()
    # the in-flight step finished and was checkpointed: applied, verifying, not a bare intent
    from remediator.store.sqlite import SqliteStore
    store = SqliteStore(tmp_path / "remediator.db")
    await store.open()
    try:
        incidents = await store.list_incidents()
        assert len(incidents) == 1
        view = await store.get_incident(incidents[0].id)
        assert view is not None
        assert view.steps[0].status.value in ("applied", "verifying"), view.steps
        assert view.state.value == "remediating"      # resumes on the next start
        assert await store.list_alerts(outcome="new") != []
        web = [a for a in await store.list_alerts() if a["labels"]["deployment"] == "web"]
        assert web == []                               # the 503 was honest: not persisted
    finally:
        await store.close()
    calls = [c for c in await sim.calls(http) if c["method"] == "PATCH"]
    assert len(calls) == 1
