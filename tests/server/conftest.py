"""The HTTP server over a real SQLite store; the engine's runs sit on a manual
FakeClock (they never act), so these tests see the server and intake only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from remediator.actions import registry
from remediator.clock import FakeClock
from remediator.engine.core import Engine
from remediator.loader import load
from remediator.server.http import Api, ServerConfig, build_app
from remediator.store.sqlite import SqliteStore

TOKEN = "s3cret-token"
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


class Served:
    def __init__(self, client: TestClient[Any, Any], api: Api, engine: Engine,
                 store: SqliteStore) -> None:
        self.client, self.api, self.engine, self.store = client, api, engine, store


Make = Callable[..., Awaitable[Served]]


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[Make]:
    made: list[Served] = []

    async def make(config: ServerConfig | None = None, store: SqliteStore | None = None,
                   db: str = "server.db") -> Served:
        st = store or SqliteStore(tmp_path / db)
        await st.open()
        engine = Engine(store=st, playbooks=load(PLAYBOOK), clock=FakeClock(),
                        catalogue=registry)
        app, api = build_app(engine, config or ServerConfig(bearer_token=TOKEN))
        api.ready = True
        client = TestClient(TestServer(app))
        await client.start_server()
        await engine.start()
        served = Served(client, api, engine, st)
        made.append(served)
        return served

    yield make
    for s in made:
        await s.engine.stop(grace=0.1)
        await s.client.close()
        await s.store.close()


@pytest.fixture
async def server(make_server: Make) -> Served:
    return await make_server()
