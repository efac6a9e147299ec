"""The console over a real SQLite store and the real HTTP server (aiohttp's test
client); the engine sits on a manual FakeClock, so incidents are made in the store."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from remediator import console
from remediator.actions import registry
from remediator.clock import FakeClock
from remediator.console.checks import PlaybookCheck
from remediator.console.links import LinkConfig
from remediator.engine.core import Engine
from remediator.loader import load
from remediator.model.incident import TargetRef
from remediator.ports.store import AlertRecord, IngestItem, Routing
from remediator.server.auth import Credential
from remediator.server.http import Api, ServerConfig, build_app
from remediator.store.sqlite import SqliteStore

VIEWER, OPERATOR, HOOK = "viewer-token-1", "operator-token-1", "webhook-token-1"
USERS = (Credential("vera", "viewer", VIEWER), Credential("otto", "operator", OPERATOR),
         Credential("am", "webhook", HOOK))
T0 = datetime(2026, 8, 1, 9, 0, tzinfo=UTC)
PLAYBOOK = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: waits}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
  steps:
    - {name: wait, action: wait, with: {duration: 1h}}
"""
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Console:
    def __init__(self, client: TestClient[Any, Any], api: Api, engine: Engine,
                 store: SqliteStore) -> None:
        self.client, self.api, self.engine, self.store = client, api, engine, store

    async def login(self, token: str) -> None:
        page = await self.client.get("/login")
        csrf = CSRF.search(await page.text())
        assert csrf is not None
        resp = await self.client.post("/login", data={"token": token, "csrf": csrf[1],
                                                      "next": "/"}, allow_redirects=False)
        assert resp.status == 303, await resp.text()

    async def csrf(self, path: str = "/status") -> str:
        page = await self.client.get(path)
        found = CSRF.search(await page.text())
        assert found is not None
        return found[1]

    async def incident(self, labels: dict[str, str], n: int = 0, key: str | None = None) -> str:
        item = IngestItem(AlertRecord(f"{n:016x}", T0, None, "firing", labels,
                                      {"summary": "errors", "runbook_url": "https://rb/x"},
                                      "https://prom/graph?g0.expr=up"),
                          (Routing("waits", key or f"waits/{n}",
                                   TargetRef(kind="Deployment", namespace="prod", name="api")),))
        [out] = await self.store.ingest([item], T0)
        return out.incident_ids[0]


Make = Callable[..., Awaitable[Console]]


@pytest.fixture
async def make_console(tmp_path: Path) -> AsyncIterator[Make]:
    made: list[Console] = []

    async def make(config: ServerConfig | None = None, links: LinkConfig | None = None,
                   check: PlaybookCheck | None = None) -> Console:
        st = SqliteStore(tmp_path / f"c{len(made)}.db")
        await st.open()
        engine = Engine(store=st, playbooks=load(PLAYBOOK), clock=FakeClock(T0),
                        catalogue=registry)
        app, api = build_app(engine, config or ServerConfig(users=USERS))
        console.setup(app, api, links, check)
        api.ready = True
        client = TestClient(TestServer(app))
        await client.start_server()
        c = Console(client, api, engine, st)
        made.append(c)
        return c

    yield make
    for c in made:
        await c.engine.stop(grace=0.1)
        await c.client.close()
        await c.store.close()
