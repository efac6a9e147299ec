"""High availability with real processes: two or three ``remediator serve`` replicas
on one PostgreSQL database (a real server, ``pgserver.py``), sharing one simulator
process (``tests/engine/procs.py``). Leases of 3 s, scans every 0.5 s, every wait
bounded.

What the simulator's call log shows is what happened to the cluster: the same
restart PATCH sent twice (a resumed in-flight step) has the same body, so "acted
once" means one distinct body per action and one new template revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import pytest
from engine.procs import AUTH, DaemonProc, SimProc, daemon_config
from engine.rig import T0, alert, resolved, webhook

pytestmark = pytest.mark.slow

LADDER = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: ha}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
  guards: {cooldown: 10m}
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
CLOSED = ("recovered", "escalated", "resolved")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProc]:
    s = SimProc(tmp_path)
    yield s
    s.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Cluster:
    """N replicas on one database; every one is killed at the end whatever happens."""

    def __init__(self, tmp: Path, sim: SimProc, url: str, playbook: str,
                 engine: dict[str, Any] | None = None) -> None:
        self.tmp, self.url = tmp, url
        config = daemon_config(tmp, sim.kubeconfig, playbook)
        config["store"] = {"path": url}
        config["engine"] = {**config["engine"], "lease": 3.0, "scan_interval": 0.5,
                            **(engine or {})}
        self.config = config
        self.replicas: list[DaemonProc] = []

    async def start(self, http: aiohttp.ClientSession, n: int) -> list[DaemonProc]:
        new = [DaemonProc(self.tmp, self.config, f"replica{len(self.replicas) + i}")
               for i in range(n)]
        self.replicas += new
        await asyncio.gather(*(r.ready(http) for r in new))
        return new

    def alive(self) -> list[DaemonProc]:
        return [r for r in self.replicas if r.proc.poll() is None]

    def stop(self) -> None:
        for r in self.replicas:
            if r.proc.poll() is None:
                r.terminate()
        for r in self.replicas:
            with contextlib.suppress(Exception):
                r.wait(10)
            r.ensure_dead()

    async def db(self, sql: str, *args: Any) -> list[Any]:
        conn = await asyncpg.connect(self.url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()


@pytest.fixture
def clusters() -> Iterator[list[Cluster]]:
    made: list[Cluster] = []
    yield made
    for c in made:
        c.stop()


async def post(http: aiohttp.ClientSession, url: str, alerts: list[dict[str, Any]]) -> int:
    async with http.post(f"{url}/api/v1/alerts", data=json.dumps(webhook(alerts)),
                         headers={**AUTH, "Content-Type": "application/json"}) as r:
        return r.status


async def wait_closed(replica: DaemonProc, http: aiohttp.ClientSession, count: int,
                      limit: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + limit
    while True:
        incidents = (await replica.get(http, "/api/v1/incidents"))["incidents"]
        if len(incidents) >= count and all(i["state"] in CLOSED for i in incidents):
            return list(incidents)
        assert time.monotonic() < deadline, incidents
        await asyncio.sleep(0.2)


def acted(calls: list[dict[str, Any]], ns: str, name: str) -> tuple[int, int]:
    """(distinct restart bodies, distinct scale bodies) sent for one Deployment."""
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
    patches = [c for c in calls if c["method"] == "PATCH"]
    restarts = {json.dumps(c["body"], sort_keys=True) for c in patches if c["path"] == path}
    scales = {json.dumps(c["body"], sort_keys=True) for c in patches
              if c["path"] == path + "/scale"}
    return len(restarts), len(scales)


async def test_every_replica_gets_the_webhooks_one_incident_acts_once(
        tmp_path: Path, sim: SimProc, http: aiohttp.ClientSession, pg_url: str,
        clusters: list[Cluster]) -> None:
    await sim.ready(http)
    cluster = Cluster(tmp_path, sim, pg_url, LADDER % {"verify": "1s"})
    clusters.append(cluster)
    replicas = await cluster.start(http, 3)
    # HA Alertmanagers: the same notifications reach every replica, at the same time,
    # twice (a repeat), plus alerts no playbook matches
    batch = [alert(namespace=ns, deployment=name) for ns, name in TARGETS]
    batch += [alert("NoPlaybook", deployment=f"svc-{i}") for i in range(10)]
    statuses = await asyncio.gather(*(post(http, r.url, batch)
                                      for _ in range(2) for r in replicas))
    assert statuses == [200] * 6
    incidents = await wait_closed(replicas[0], http, 2)
    assert len(incidents) == 2, incidents
    assert {i["state"] for i in incidents} == {"recovered"}, incidents
    # one episode per alert, stored once, whichever replica saw it first
    rows = await cluster.db("SELECT outcome, count(*) FROM alerts GROUP BY outcome")
    assert dict((r[0], r[1]) for r in rows) == {"new": 2, "unmatched": 10}
    calls = await sim.calls(http)
    for ns, name in TARGETS:
        assert acted(calls, ns, name) == (1, 1), (ns, name)
    # every replica serves the same state
    for r in replicas[1:]:
        same = (await r.get(http, "/api/v1/incidents"))["incidents"]
        assert {i["id"] for i in same} == {i["id"] for i in incidents}


async def test_sigkill_of_the_replica_running_an_incident_another_finishes_it(
        tmp_path: Path, sim: SimProc, http: aiohttp.ClientSession, pg_url: str,
        clusters: list[Cluster]) -> None:
    await sim.ready(http)
    cluster = Cluster(tmp_path, sim, pg_url, LADDER % {"verify": "2s"})
    clusters.append(cluster)
    replicas = await cluster.start(http, 3)
    before = {t: await sim.deployment(http, *t) for t in TARGETS}
    batch = [alert(namespace=ns, deployment=name) for ns, name in TARGETS]
    assert await post(http, replicas[0].url, batch) == 200
    # wait until the restarts are journaled (the ladder is at its first verification)
    deadline = time.monotonic() + 10
    while True:
        rows = await cluster.db(
            "SELECT i.owner FROM incidents i JOIN steps s ON s.incident_id = i.id "
            "WHERE s.idx = 0 AND s.intent_at IS NOT NULL AND i.owner IS NOT NULL")
        if len(rows) == 2:
            break
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)
    owners = {r[0] for r in rows}
    pids = {int(o.split("/")[1]) for o in owners}
    victims = [r for r in replicas if r.proc.pid in pids]
    assert victims
    killed_at = time.monotonic()
    for v in victims:
        v.kill()
    survivor = cluster.alive()[0]
    incidents = await wait_closed(survivor, http, 2, limit=40)
    took = time.monotonic() - killed_at
    assert {i["state"] for i in incidents} == {"recovered"}, incidents
    # the ladder went on where it was: restart once, then the scale-out, once each
    calls = await sim.calls(http)
    rev = "deployment.kubernetes.io/revision"
    for ns, name in TARGETS:
        assert acted(calls, ns, name) == (1, 1), (ns, name)
        now = await sim.deployment(http, ns, name)
        old = int(before[(ns, name)]["metadata"]["annotations"][rev])
        assert int(now["metadata"]["annotations"][rev]) == old + 1
        assert now["spec"]["replicas"] == 4
    # nothing lost: both alerts stored, both incidents finished by a live replica
    rows = await cluster.db("SELECT count(*) FROM alerts")
    assert rows[0][0] == 2
    assert took < 30
    print(f"killed {len(victims)} replica(s); the incidents finished {took:.1f}s later")


async def test_budget_and_cooldown_hold_across_replicas(
        tmp_path: Path, sim: SimProc, http: aiohttp.ClientSession, pg_url: str,
        clusters: list[Cluster]) -> None:
    await sim.ready(http)
    cluster = Cluster(tmp_path, sim, pg_url, LADDER % {"verify": "4s"},
                      engine={"action_budget": 2})
    clusters.append(cluster)
    a, b = await cluster.start(http, 2)
    # cooldown: prod/web recovers through replica a (its alert resolves after the restart)
    web = alert(deployment="web")
    assert await post(http, a.url, [web]) == 200
    deadline = time.monotonic() + 10
    while not any(c["method"] == "PATCH" for c in await sim.calls(http)):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert await post(http, a.url, [resolved(web)]) == 200
    [first] = await wait_closed(a, http, 1)
    assert first["state"] == "recovered", first
    # the problem comes back (a new episode), reported to replica b: refused by the cooldown
    again = alert(deployment="web", starts_at=T0 + timedelta(minutes=1))
    assert again["startsAt"] != web["startsAt"]
    assert await post(http, b.url, [again]) == 200
    incidents = await wait_closed(b, http, 2)
    second = next(i for i in incidents if i["id"] != first["id"])
    assert second["state"] == "escalated", second
    view = await b.get(http, f"/api/v1/incidents/{second['id']}")
    assert "cooldown" in json.dumps(view["timeline"])
    assert acted(await sim.calls(http), "prod", "web") == (1, 0)
    # budget 2, one spent: three more targets, one per replica and one to both →
    # exactly one more mutation in the whole cluster, then automation pauses
    others = [("prod", "api"), ("staging", "api"), ("prod", "worker")]
    posts = [post(http, a.url, [alert(namespace=others[0][0], deployment=others[0][1])]),
             post(http, b.url, [alert(namespace=others[1][0], deployment=others[1][1])]),
             post(http, a.url, [alert(namespace=others[2][0], deployment=others[2][1])]),
             post(http, b.url, [alert(namespace=others[2][0], deployment=others[2][1])])]
    assert await asyncio.gather(*posts) == [200] * 4
    incidents = await wait_closed(a, http, 5)
    calls = await sim.calls(http)
    # Exactly one of the three got through the budget guard. (prod/worker is paused in
    # the seed: when it is the one, its restart is refused by the cluster rule, no write.)
    views = [await a.get(http, f"/api/v1/incidents/{i['id']}") for i in incidents
             if i["id"] not in (first["id"], second["id"])]
    through = [v["target"]["name"] for v in views
               if v["steps"] and v["steps"][0]["status"] != "skipped"]
    assert len(through) == 1, [(v["target"], v["steps"]) for v in views]
    mutated = [t for t in others if acted(calls, *t) != (0, 0)]
    assert len(mutated) <= 1, mutated
    assert sum(sum(acted(calls, *t)) for t in others) <= 1
    rows = await cluster.db("SELECT count(*) FROM budget")
    assert rows[0][0] == 2
    # the storm pauses the default cluster (flag paused:<cluster>, '' the default one)
    paused = await cluster.db("SELECT value FROM flags WHERE name='paused:'")
    assert paused
    assert json.loads(paused[0][0])["kind"] == "budget"
