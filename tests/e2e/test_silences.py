"""``silence: {while: remediating}`` against the real Alertmanager binary: while the
incident remediates, a silence whose matchers equal the alert's labels (no regex)
suppresses Alertmanager's repeat notifications to another receiver; it survives a
restart of remediator and is expired when the incident is acknowledged, after which
the notifications come again.

Its own Alertmanager (not the session stack): one receiver, ``pager``, a recording
HTTP endpoint, repeating every couple of seconds. remediator is an in-process engine
on SQLite with the real Alertmanager adapter; its clock is fake (starting at the real
now: silences are in Alertmanager's time) and never moves, so the incident stays in
its 30-minute ``wait`` step (remediating) until acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from engine.rig import webhook

from remediator.actions import registry
from remediator.adapters.alertmanager import AlertmanagerApi
from remediator.clock import FakeClock
from remediator.engine.core import Engine
from remediator.engine.ports import Ports
from remediator.loader import load
from remediator.model.alerts import fingerprint, parse_webhook
from remediator.model.incident import IncidentState
from remediator.store.sqlite import SqliteStore

from .harness import Proc, _write, free_port, http, require_binaries, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

LABELS = {"alertname": "HighErrorRate", "namespace": "prod", "deployment": "api",
          "severity": "critical"}
PLAYBOOK = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: quiet}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}",
           name: "{{ labels.deployment }}"}
  silence: {while: remediating, for: 1h}
  steps:
    - name: let it settle
      action: wait
      with: {duration: 30m}
"""


class Pager:
    """The other receiver: counts Alertmanager's notifications."""

    def __init__(self) -> None:
        self.notes: list[dict[str, Any]] = []
        app = web.Application()
        app.router.add_post("/", self._note)
        self.runner = web.AppRunner(app, access_log=None)
        self.url = ""

    async def _note(self, request: web.Request) -> web.Response:
        self.notes.append(await request.json())
        return web.json_response({})

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/"


@pytest.fixture
async def am(tmp_path: Path) -> AsyncIterator[tuple[str, Pager]]:
    binary = require_binaries("alertmanager")["alertmanager"]
    pager = Pager()
    await pager.start()
    port = free_port()
    config = _write(tmp_path / "am.yml", {
        "route": {"receiver": "pager", "group_by": ["alertname"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "2s"},
        "receivers": [{"name": "pager", "webhook_configs": [
            {"url": pager.url, "send_resolved": True}]}]})
    (tmp_path / "data").mkdir()
    proc = Proc("alertmanager", [binary, f"--config.file={config}",
                                 f"--storage.path={tmp_path / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}",
                                 "--cluster.listen-address="],
                tmp_path / "am.log").start(cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_for, lambda: http("GET", f"{url}/-/ready")[0] == 200,
                                30, "alertmanager ready")
        yield url, pager
    finally:
        proc.stop()
        await pager.runner.cleanup()


async def start_engine(db: Path, session: aiohttp.ClientSession, url: str) -> Engine:
    store = SqliteStore(db)
    await store.open()
    engine = Engine(store=store, playbooks=load(PLAYBOOK), catalogue=registry,
                    clock=FakeClock(datetime.now(UTC)),   # Alertmanager's times are real
                    ports=Ports(silences=AlertmanagerApi(url, session),
                                alerts=AlertmanagerApi(url, session)))
    await engine.start()
    return engine


async def until(what: str, check: Any, limit: float = 20.0) -> Any:
    deadline = time.monotonic() + limit
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def check_silence(url: str, silence_id: str, incident_id: str) -> None:
    """Active, by remediator, naming the incident, matchers equal to the labels."""
    status, silence = http("GET", f"{url}/api/v2/silence/{silence_id}")
    assert status == 200
    assert silence["status"]["state"] == "active"
    assert silence["createdBy"] == "remediator"
    assert incident_id in silence["comment"]
    assert sorted((m["name"], m["value"], m["isRegex"], m.get("isEqual", True))
                  for m in silence["matchers"]) == sorted(
        (k, v, False, True) for k, v in LABELS.items())
    _, alerts = http("GET", f"{url}/api/v2/alerts")
    assert alerts[0]["status"]["state"] == "suppressed"


async def test_silenced_while_remediating_expired_on_ack(am: tuple[str, Pager],
                                                         tmp_path: Path) -> None:
    url, pager = am
    now = datetime.now(UTC)
    posted = [{"labels": LABELS, "annotations": {"summary": "5xx"},
               "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat()}]
    assert http("POST", f"{url}/api/v2/alerts", posted)[0] == 200

    async def notified() -> int:
        return len(pager.notes)
    await until("the first notification", notified)

    async with aiohttp.ClientSession() as session:
        engine = await start_engine(tmp_path / "r.db", session, url)
        alert = {"status": "firing", "labels": LABELS, "annotations": {"summary": "5xx"},
                 "startsAt": now.isoformat().replace("+00:00", "Z"),
                 "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
                 "fingerprint": fingerprint(LABELS)}
        await engine.intake.receive(parse_webhook(webhook([alert])))
        [incident_id] = await engine.store.active_incident_ids()

        async def silenced() -> list[dict[str, Any]]:
            view = await engine.store.get_incident(incident_id)
            return list(view.context.get("silences") or []) if view else []
        [silence_id] = await until("the silence", silenced)
        check_silence(url, silence_id, incident_id)
        quiet_from = len(pager.notes)
        await asyncio.sleep(5)                 # > two repeat intervals: nothing repeats
        assert len(pager.notes) == quiet_from

        await engine.stop(grace=1.0)           # a restart: the id is in the store
        await engine.store.close()
        engine = await start_engine(tmp_path / "r.db", session, url)
        view = await engine.store.get_incident(incident_id)
        assert view is not None
        assert view.state == IncidentState.REMEDIATING
        await engine.acknowledge(incident_id, "alice")
        _, silence = http("GET", f"{url}/api/v2/silence/{silence_id}")
        assert silence["status"]["state"] == "expired"
        view = await engine.store.get_incident(incident_id)
        assert view is not None
        assert view.context["silences"] == []
        assert any("silences expired (acknowledged by alice)" in e.message
                   for e in view.timeline)

        async def repeated() -> bool:
            return len(pager.notes) > quiet_from
        await until("Alertmanager's notifications again", repeated)
        await engine.stop(grace=1.0)
        await engine.store.close()


async def test_the_silence_is_expired_before_escalating(am: tuple[str, Pager],
                                                        tmp_path: Path) -> None:
    url, _ = am
    failing = PLAYBOOK.replace("""    - name: let it settle
      action: wait
      with: {duration: 30m}""", """    - name: scale out
      action: kubernetes.scale
      with: {factor: 2, max_replicas: 10}""")
    now = datetime.now(UTC)
    async with aiohttp.ClientSession() as session:
        store = SqliteStore(tmp_path / "r.db")
        await store.open()
        engine = Engine(store=store, playbooks=load(failing), catalogue=registry,
                        clock=FakeClock(now, auto_advance=True),
                        ports=Ports(silences=AlertmanagerApi(url, session)))
        await engine.start()
        alert = {"status": "firing", "labels": LABELS, "annotations": {},
                 "startsAt": now.isoformat().replace("+00:00", "Z"),
                 "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
                 "fingerprint": fingerprint(LABELS)}
        await engine.intake.receive(parse_webhook(webhook([alert])))
        await asyncio.wait_for(engine.idle(), 20)
        [view] = [v for v in await store.list_incidents()]
        view = await store.get_incident(view.id)
        assert view is not None
        assert view.state == IncidentState.ESCALATED        # no cluster: the step failed
        kinds = [(e.kind, e.message.split(":")[0]) for e in view.timeline]
        silenced = kinds.index(("silence", "Alertmanager silenced while remediating"))
        expired = kinds.index(("silence", "Alertmanager silences expired (escalating)"))
        escalated = next(i for i, (k, m) in enumerate(kinds)
                         if k == "state" and m == "incident escalated")
        assert silenced < expired < escalated
        _, silences = http("GET", f"{url}/api/v2/silences")
        assert [s["status"]["state"] for s in silences] == ["expired"]
        await engine.stop(grace=1.0)
        await store.close()
