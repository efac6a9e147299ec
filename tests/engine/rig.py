"""A test rig for the engine: real SQLite, the real HTTP server (aiohttp test
client), the simulator behind the real kubernetes_asyncio adapter, a fake
MetricsApi with canned answers, and a recording HTTP endpoint for escalations.

The engine runs on a ``FakeClock(auto_advance=True)``: ten-minute verification
windows take milliseconds. The simulator has its own manual FakeClock, so its
controller only ticks when a test says so.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from remediator.actions import registry
from remediator.adapters.http import AiohttpPoster
from remediator.adapters.kubernetes import KubernetesCluster
from remediator.clock import FakeClock
from remediator.engine.contract import Catalogue
from remediator.engine.core import Engine
from remediator.engine.ports import Ports
from remediator.loader import load
from remediator.model.alerts import fingerprint
from remediator.model.incident import IncidentView
from remediator.server.http import ServerConfig, build_app
from remediator.settings import EngineSettings
from remediator.simulator import Simulator
from remediator.store.sqlite import SqliteStore

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 8, 1, 9, 59, 0, tzinfo=UTC)
ZERO = "0001-01-01T00:00:00Z"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alert(alertname: str = "HighErrorRate", *, namespace: str = "prod", deployment: str = "api",
          status: str = "firing", starts_at: datetime = T0, ends_at: datetime | None = None,
          **extra: str) -> dict[str, Any]:
    labels = {"alertname": alertname, "namespace": namespace, "deployment": deployment,
              "severity": "critical", **extra}
    return {"status": status, "labels": labels, "annotations": {"summary": "test"},
            "startsAt": iso(starts_at),
            "endsAt": iso(ends_at) if ends_at else (iso(starts_at + timedelta(hours=1))
                                                    if status == "resolved" else ZERO),
            "generatorURL": "http://prom/graph", "fingerprint": fingerprint(labels)}


def resolved(a: dict[str, Any]) -> dict[str, Any]:
    out = dict(a, status="resolved")
    out["endsAt"] = iso(datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00"))
                        + timedelta(minutes=30))
    return out


def webhook(alerts: list[dict[str, Any]], group: str = "g") -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {"version": "4", "groupKey": f"{{}}:{{group=\"{group}\"}}", "truncatedAlerts": 0,
            "status": "firing" if firing else "resolved", "receiver": "remediator",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://am:9093", "alerts": alerts}


def sample(value: float = 1.0) -> list[dict[str, Any]]:
    return [{"metric": {}, "value": [0, str(value)]}]


class FakeMetrics:
    """A MetricsApi: a query holds when its metric name is in ``holding``."""

    def __init__(self) -> None:
        self.holding: set[str] = set()
        self.queries: list[str] = []
        self.on_query: Callable[[str], Any] | None = None

    async def query(self, promql: str, *, max_age: float | None = None
                    ) -> list[dict[str, Any]]:
        self.queries.append(promql)
        if self.on_query is not None:
            result = self.on_query(promql)
            if asyncio.iscoroutine(result):
                await result
        name = promql.split("{", 1)[0].strip()
        return sample() if name in self.holding else []


def ladder_playbook(name: str = "ladder", *, match: str = 'alertname="HighErrorRate"',
                    guards: str = "{}", hook: str = "http://127.0.0.1:9/hook",
                    continue_: bool = False, first_step: str | None = None,
                    timeout: str = "10m", retries: int = 3) -> str:
    """restart → scale ×2 → rollback, each verified by its own metric (step1_ok …);
    escalation POSTs to ``hook``."""
    first = first_step or f"""
    - name: restart
      action: kubernetes.restart
      retries: {retries}
      verify: {{promql: 'step1_ok{{deployment="{{{{ target.name }}}}"}}', timeout: {timeout},
               interval: 30s}}
"""
    return f"""
apiVersion: remediator/v1
kind: Playbook
metadata: {{name: {name}}}
spec:
  match: ['{match}']
  continue: {str(continue_).lower()}
  target: {{kind: Deployment, namespace: "{{{{ labels.namespace }}}}",
           name: "{{{{ labels.deployment }}}}"}}
  guards: {guards}
  steps:{first}
    - name: scale out
      action: kubernetes.scale
      with: {{factor: 2, max_replicas: 20}}
      verify: {{promql: 'step2_ok{{deployment="{{{{ target.name }}}}"}}', timeout: {timeout},
               interval: 30s}}
    - name: roll back
      action: kubernetes.rollback
      with: {{revision: previous}}
      verify: {{promql: 'step3_ok{{deployment="{{{{ target.name }}}}"}}', timeout: {timeout},
               interval: 30s}}
  escalate:
    - action: http.post
      with: {{url: "{hook}", json: {{incident: "{{{{ incident.id }}}}", pb: {name}}}}}
"""


class Hooks:
    """A real HTTP endpoint that records every escalation POST."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.block = False                       # True: requests hang (a page never answers)
        self.hung = asyncio.Event()
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self.server = TestServer(app)

    async def _hook(self, request: web.Request) -> web.Response:
        if self.block:
            self.hung.set()
            await asyncio.Event().wait()
        self.calls.append(await request.json())
        return web.json_response({"ok": True})

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))


class Rig:
    def __init__(self, tmp_path: Path, sim: Simulator | None, cluster: KubernetesCluster | Any,
                 hooks: Hooks, http: aiohttp.ClientSession) -> None:
        self.tmp_path = tmp_path
        self.sim = sim
        self.cluster = cluster
        self.hooks = hooks
        self.http = http
        self.metrics = FakeMetrics()
        self.clock = FakeClock(datetime(2026, 8, 1, 10, 0, tzinfo=UTC), auto_advance=True)
        self.db = tmp_path / "remediator.db"
        self.engine: Engine
        self.store: SqliteStore
        self.client: TestClient[Any, Any] | None = None

    async def start(self, playbooks: str, config: EngineSettings | None = None,
                    server_config: ServerConfig | None = None,
                    catalogue: Catalogue = registry,
                    clusters: dict[str, Any] | None = None, console: bool = False) -> Rig:
        self.store = SqliteStore(self.db)
        await self.store.open()
        self.engine = Engine(store=self.store, playbooks=load(playbooks), clock=self.clock,
                             ports=Ports(cluster=self.cluster, metrics=self.metrics,
                                         http=AiohttpPoster(self.http),
                                         clusters=clusters or {}),
                             catalogue=catalogue,
                             settings=config or EngineSettings(retry_base=5.0))
        app, self.api = build_app(self.engine, server_config or ServerConfig(bearer_token=TOKEN))
        if console:                     # the web console's pages too, as the daemon serves them
            from remediator import console as pages
            pages.setup(app, self.api)
        self.client = TestClient(TestServer(app))
        await self.client.start_server()
        await self.engine.start()
        return self

    async def stop(self, grace: float = 5.0) -> None:
        await self.engine.stop(grace)
        if self.client is not None:
            await self.client.close()
            self.client = None
        await self.store.close()

    async def restart(self, playbooks: str, config: EngineSettings | None = None) -> None:
        await self.stop()
        await self.start(playbooks, config)

    async def post(self, alerts: list[dict[str, Any]], *, status: int = 200,
                   group: str = "g") -> dict[str, Any]:
        assert self.client is not None
        resp = await self.client.post("/api/v1/alerts", data=json.dumps(webhook(alerts, group)),
                                      headers={**AUTH, "Content-Type": "application/json"})
        body: dict[str, Any] = await resp.json()
        assert resp.status == status, body
        return body

    async def settle(self, limit: float = 15.0) -> None:
        """Wait (real time, bounded) until no incident run is in progress."""
        await asyncio.wait_for(self.engine.idle(), limit)

    async def incidents(self) -> list[IncidentView]:
        views = await self.store.list_incidents(limit=10000)
        return [v for v in [await self.store.get_incident(x.id) for x in views] if v]

    async def only_incident(self) -> IncidentView:
        views = await self.incidents()
        assert len(views) == 1, [v.key for v in views]
        return views[0]

    def writes(self, contains: str = "") -> list[dict[str, Any]]:
        assert self.sim is not None
        return [c for c in self.sim.control.writes() if contains in c["path"]]
