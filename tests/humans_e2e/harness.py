"""The whole daemon (``remediator.app.Daemon``: settings → adapters → engine → HTTP
server → sinks) against fakes that speak the real wire protocols:

* the simulated Kubernetes API (its own manual FakeClock), driven by the real
  kubernetes_asyncio client (kubeconfig mode);
* a tiny Prometheus (``/api/v1/query``) driven by the real prometheus-api-client;
* ``FakeSlack`` driven by the real slack_sdk ``AsyncWebClient``;
* ``FakeJira`` driven by the real ``jira`` client.

The daemon runs on a *manual* ``FakeClock``: an approval's 15-minute TTL or a
verification window passes only when a test advances it (``Stack.until(...,
advance=…)``), never on its own while real HTTP is in flight. Webhooks and
Slack interactions go over real HTTP to the daemon's listening socket.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from remediator.app import Daemon
from remediator.clock import FakeClock
from remediator.model.alerts import fingerprint
from remediator.model.incident import IncidentView
from remediator.notify.interactions import slack_signature
from remediator.settings import load_settings
from remediator.simulator import Simulator
from remediator.testing.fake_jira import FakeJira
from remediator.testing.fake_slack import FakeSlack

TOKEN = "webhook-token"
SIGNING_SECRET = "e2e-signing-secret-0123456789abcdef"
ALICE = "U0ALICE"               # on the allow-list
EVE = "U0EVE"                   # not on it
T0 = datetime(2026, 8, 1, 9, 59, 0, tzinfo=UTC)
ZERO = "0001-01-01T00:00:00Z"
SCALE = "/apis/apps/v1/namespaces/prod/deployments/api/scale"
DEPLOYMENT = "/apis/apps/v1/namespaces/prod/deployments/api"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alert(status: str = "firing") -> dict[str, Any]:
    labels = {"alertname": "HighErrorRate", "namespace": "prod", "deployment": "api",
              "severity": "critical"}
    return {"status": status, "labels": labels, "annotations": {"summary": "5xx above 5%"},
            "startsAt": iso(T0),
            "endsAt": iso(T0 + timedelta(minutes=30)) if status == "resolved" else ZERO,
            "generatorURL": "http://prom/graph", "fingerprint": fingerprint(labels)}


def webhook(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {"version": "4", "groupKey": '{}:{alertname="HighErrorRate"}', "truncatedAlerts": 0,
            "status": "firing" if firing else "resolved", "receiver": "remediator",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://am:9093", "alerts": alerts}


def playbook(*, steps: str, escalate: str, name: str = "api-errors") -> str:
    return f"""
apiVersion: remediator/v1
kind: Playbook
metadata: {{name: {name}}}
spec:
  match: ['alertname="HighErrorRate"']
  target: {{kind: Deployment, namespace: "{{{{ labels.namespace }}}}",
           name: "{{{{ labels.deployment }}}}"}}
  steps:
{steps}
  escalate:
{escalate}
  notify: {{slack: {{channel: "#ops-alerts"}}}}
"""


def verified(metric: str) -> str:
    return (f"{{promql: '{metric}{{deployment=\"{{{{ target.name }}}}\"}}', timeout: 2m, "
            f"interval: 30s}}")


class FakePrometheus:
    """``GET|POST /api/v1/query``: one truthy sample when the metric's name is in
    ``holding``, an empty vector otherwise."""

    def __init__(self) -> None:
        self.holding: set[str] = set()
        self.queries: list[str] = []
        app = web.Application()
        app.router.add_route("*", "/api/v1/query", self._query)
        self._runner = web.AppRunner(app, access_log=None)
        self.url = ""

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _query(self, request: web.Request) -> web.Response:
        form = await request.post() if request.method == "POST" else {}
        query = str(request.query.get("query") or form.get("query") or "")
        self.queries.append(query)
        name = query.split("{", 1)[0].strip()
        result = [{"metric": {}, "value": [time.time(), "1"]}] if name in self.holding else []
        return web.json_response({"status": "success",
                                  "data": {"resultType": "vector", "result": result}})


class Stack:
    """One daemon at a time on a tmp dir; restartable on the same SQLite file."""

    def __init__(self, tmp_path: Path, sim: Simulator, slack: FakeSlack, jira: FakeJira,
                 prom: FakePrometheus, http: aiohttp.ClientSession) -> None:
        self.tmp_path = tmp_path
        self.sim, self.slack, self.jira, self.prom, self.http = sim, slack, jira, prom, http
        self.clock = FakeClock(datetime(2026, 8, 1, 10, 0, tzinfo=UTC))
        self.kubeconfig = sim.write_kubeconfig(str(tmp_path / "kubeconfig"))
        self.daemon: Daemon | None = None
        self.url = ""
        self.start_time = self.clock.now()

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, playbook_yaml: str, *, jira: bool = True,
                    approvers: tuple[str, ...] = (ALICE,),
                    settings: dict[str, Any] | None = None) -> Stack:
        """``settings``: more settings groups, merged over the stack's own."""
        books = self.tmp_path / "playbooks"
        books.mkdir(exist_ok=True)
        (books / "pb.yaml").write_text(playbook_yaml, encoding="utf-8")
        overrides: dict[str, Any] = {
            "server": {"listen": "127.0.0.1:0", "auth": {"token": TOKEN},
                       "shutdown_grace": 5.0},
            "store": {"path": str(self.tmp_path / "remediator.db"), "synchronous": "NORMAL"},
            "playbooks": [str(books)],
            "kubernetes": {"mode": "kubeconfig", "kubeconfig": self.kubeconfig},
            "prometheus": {"url": self.prom.url, "timeout": 5.0},
            "engine": {"retry_base": 2.0, "retry_max": 60.0, "call_timeout": 10.0},
            "slack": {"token": self.slack.token, "base_url": self.slack.base_url,
                      "signing_secret": SIGNING_SECRET, "approvers": list(approvers)},
            "notify": {"console": False},
        }
        if jira:
            overrides["jira"] = {"url": self.jira.base_url, "email": self.jira.email,
                                 "api_token": self.jira.api_token}
        for group, values in (settings or {}).items():
            overrides[group] = {**overrides.get(group, {}), **values}
        self.daemon = Daemon(load_settings(None, overrides), clock=self.clock)
        self.url = await self.daemon.start()
        return self

    async def stop(self) -> None:
        if self.daemon is not None:
            await self.daemon.stop()
            self.daemon = None

    async def restart(self, playbook_yaml: str, **kw: Any) -> None:
        await self.stop()
        await self.start(playbook_yaml, **kw)

    @property
    def engine(self) -> Any:
        assert self.daemon is not None
        assert self.daemon.engine is not None
        return self.daemon.engine

    # -- driving ---------------------------------------------------------------------
    async def post(self, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        async with self.http.post(f"{self.url}/api/v1/alerts", json=webhook(alerts),
                                  headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            body: dict[str, Any] = await resp.json()
            assert resp.status == 200, body
            return body

    async def interact(self, body: bytes, *, timestamp: int | None = None,
                       signature: str | None = None) -> tuple[int, dict[str, Any]]:
        """POST a Slack interaction, signed as Slack signs it unless told otherwise."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sig = signature if signature is not None else slack_signature(SIGNING_SECRET, ts, body)
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}
        async with self.http.post(f"{self.url}/api/v1/slack/interactions", data=body,
                                  headers=headers) as resp:
            data: dict[str, Any] = await resp.json()
            return resp.status, data

    async def until(self, cond: Callable[[], Awaitable[bool]], what: str, *,
                    advance: float = 0.0, limit: float = 15.0) -> None:
        """Poll ``cond`` (bounded real time), advancing the fake clock by ``advance``
        seconds between looks."""
        deadline = time.monotonic() + limit
        while not await cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {what}")
            if advance:
                await self.clock.advance(advance)
            await asyncio.sleep(0.02)

    async def drained(self, limit: float = 15.0) -> None:
        """Every event delivered to every sink."""
        await asyncio.wait_for(self.engine.notifications.drain(), limit)

    async def settle(self, limit: float = 15.0) -> None:
        await asyncio.wait_for(self.engine.idle(), limit)
        await self.drained(limit)

    # -- inspection ------------------------------------------------------------------
    async def incidents(self) -> list[IncidentView]:
        store = self.engine.store
        views = await store.list_incidents(limit=1000)
        return [v for v in [await store.get_incident(x.id) for x in views] if v]

    async def incident(self) -> IncidentView:
        views = await self.incidents()
        assert len(views) == 1, [v.key for v in views]
        return views[0]

    def writes(self, path: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.sim.control.writes() if path is None or c["path"] == path]


def click(approval_id: str, *, user: str = ALICE, action: str = "remediator_approve",
          channel: str = "C0002ONCALL", message_ts: str = "1700000002.000002") -> bytes:
    """A block_actions interaction body exactly as Slack posts it: ``payload=<json>``."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0FAKE"},
        "api_app_id": "A0REMEDIATOR",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "channel": {"id": channel, "name": "oncall"},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                      "is_ephemeral": False},
        "message": {"ts": message_ts, "type": "message", "text": "Approval needed"},
        "response_url": "https://hooks.slack.com/actions/T0FAKE/1/abc",
        "trigger_id": "1.2.3",
        "actions": [{"type": "button", "action_id": action, "value": approval_id,
                     "block_id": f"approval:{approval_id}",
                     "action_ts": f"{time.time():.6f}"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()
