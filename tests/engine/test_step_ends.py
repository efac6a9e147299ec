"""How a step ends where automation meets the unexpected: the alert resolves during a
``wait`` or between verification polls, an action raises something that is not an
``ActionError``, the store fails mid-step, a step outlives its ``timeout``. Each ends
the step promptly, journaled, and the ladder goes on (or the incident closes); none
strands the incident in "remediating"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from remediator.actions import registry
from remediator.engine.contract import Action, ActionResult, ActionSpec, Intent, RunContext
from remediator.model.incident import IncidentState, StepStatus
from remediator.model.records import AlertRecord, IngestItem
from remediator.settings import EngineSettings

from .rig import T0, Rig, alert, ladder_playbook, resolved

RESTART = "/apis/apps/v1/namespaces/prod/deployments/api"
SCALE = "/apis/apps/v1/namespaces/prod/deployments/api/scale"


class Upstream:
    """A real HTTP server for ``http.post`` steps: ``/bad-utf8`` answers 200 with
    ``charset=utf-8`` and bytes that are not UTF-8; ``/busy`` answers 503."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"bad-utf8": 0, "busy": 0}
        app = web.Application()
        app.router.add_post("/bad-utf8", self._bad)
        app.router.add_post("/busy", self._busy)
        self.server = TestServer(app)

    async def _bad(self, request: web.Request) -> web.Response:
        self.calls["bad-utf8"] += 1
        return web.Response(body=b"\xff\xfe\xfa not utf-8", status=200,
                            headers={"Content-Type": "text/plain; charset=utf-8"})

    async def _busy(self, request: web.Request) -> web.Response:
        self.calls["busy"] += 1
        return web.Response(status=503, text="busy")

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    u = Upstream()
    await u.server.start_server()
    yield u
    await u.server.close()


async def until(predicate: Any, limit: float = 5.0) -> None:
    """Poll (real time, bounded) until ``predicate()`` holds."""
    for _ in range(int(limit / 0.01)):     # the state is in the store: no event to await
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {limit}s")


async def until_the_first_step_waits(rig: Rig) -> None:
    """Until the only incident's first step is journaled and its run sleeps on the clock."""
    async def waiting() -> bool:
        inc = await rig.only_incident()
        return bool(inc.steps) and inc.steps[0].status == StepStatus.INTENT \
            and rig.clock.pending() > 0
    await until(waiting)


def wait_first(guards: str, hook: str) -> str:
    return ladder_playbook(guards=guards, hook=hook, first_step="""
    - name: let it settle
      action: wait
      with: {duration: 10m}
""")


async def test_a_resolve_during_a_wait_ends_it_and_is_not_remediation(rig: Rig) -> None:
    """wait → scale → roll back, with a cooldown: the alert resolves during the wait.
    The wait ends within a second of the resolve being persisted, the incident closes
    as *resolved* (a wait changes nothing), and the next real failure of the target is
    remediated, not sent to humans by a cooldown that a wait started."""
    await rig.start(wait_first("{cooldown: 30m, max_runs_per_hour: 1}", rig.hooks.url))
    rig.clock.auto_advance = False              # the wait really waits
    a = alert()
    await rig.post([a])

    await until_the_first_step_waits(rig)
    await rig.post([resolved(a)])
    await asyncio.wait_for(rig.engine.idle(), 1.0)
    first = await rig.only_incident()
    assert first.state == IncidentState.RESOLVED, first.summary
    assert rig.writes() == []

    rig.clock.auto_advance = True
    rig.metrics.holding = {"step2_ok"}
    await rig.post([alert(starts_at=T0 + timedelta(hours=1))])
    await rig.settle()
    second = next(i for i in await rig.incidents() if i.id != first.id)
    assert second.state == IncidentState.RECOVERED, second.summary
    assert [c["path"] for c in rig.writes()] == [SCALE]


async def test_a_resolve_ends_the_sleep_between_verification_polls(rig: Rig) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    rig.clock.auto_advance = False
    a = alert()
    await rig.post([a])

    async def polling() -> bool:
        return bool(rig.metrics.queries) and rig.clock.pending() > 0
    await until(polling)
    await rig.post([resolved(a)])
    await asyncio.wait_for(rig.engine.idle(), 1.0)
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RECOVERED, inc.summary   # the restart was applied
    assert [c["path"] for c in rig.writes()] == [RESTART]
    assert rig.hooks.calls == []


def post_first(url: str, hook: str, *, retries: int = 3, timeout: str = "") -> str:
    return ladder_playbook(hook=hook, first_step=f"""
    - name: tell the other system
      action: http.post
      retries: {retries}
      {timeout}
      with: {{url: "{url}", json: {{x: 1}}}}
""")


async def test_a_200_with_bytes_that_are_not_utf8_does_not_strand_the_incident(
        rig: Rig, upstream: Upstream) -> None:
    """A server answers 200 with charset=utf-8 and bytes that are not UTF-8 (aiohttp's
    ``text()`` raised UnicodeDecodeError, and the incident sat in "remediating"). The
    HTTP port decodes with replacement: a 200 is a 200, the step applies once, and the
    ladder goes on."""
    await rig.start(post_first(upstream.url("/bad-utf8"), rig.hooks.url))
    rig.metrics.holding = {"step2_ok"}
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RECOVERED, inc.summary
    assert inc.steps[0].status == StepStatus.SUCCEEDED
    assert "200" in (inc.steps[0].result or "")
    assert upstream.calls["bad-utf8"] == 1
    assert [c["path"] for c in rig.writes()] == [SCALE]


class Raising:
    """An action implementation whose apply raises a RuntimeError (a bug)."""

    name = "http.post"

    def __init__(self, real: Action[Any]) -> None:
        self.real = real
        self.params = real.params

    async def plan(self, ctx: RunContext, params: Any) -> Intent:
        return await self.real.plan(ctx, params)

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        raise RuntimeError("a bug in an action")


class WithRaising:
    """The real catalogue, with ``http.post`` replaced by ``Raising``."""

    def __init__(self) -> None:
        self.raising = Raising(registry.implementation("http.post"))

    def get(self, name: str) -> ActionSpec:
        return registry.get(name)

    def implementation(self, name: str) -> Action[Any]:
        return self.raising if name == "http.post" else registry.implementation(name)


async def test_an_action_raising_runtime_error_fails_its_step_only(rig: Rig) -> None:
    """An action raises something that is not an ActionError (a bug): its step fails at
    once, not retried, with the traceback journaled; the ladder goes on and escalates."""
    pb = ladder_playbook(hook=rig.hooks.url, first_step="""
    - name: tell the other system
      action: http.post
      with: {url: "http://127.0.0.1:9/never", json: {x: 1}}
""")
    await rig.start(pb, catalogue=WithRaising())
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    # every step failed or was not verified: escalated at once, not stranded
    assert inc.state == IncidentState.ESCALATED, inc.summary
    assert inc.steps[0].status == StepStatus.FAILED
    assert "RuntimeError: a bug in an action" in (inc.steps[0].error or "")
    [failure] = [e for e in inc.timeline if e.kind == "step" and "failed" in e.message
                 and e.data.get("step") == "tell the other system"]
    assert "Traceback" in failure.data["traceback"]
    assert "a bug in an action" in failure.data["traceback"]
    assert [s.status for s in inc.steps[1:3]] == [StepStatus.FAILED, StepStatus.FAILED]


async def test_a_store_error_mid_step_does_not_strand_the_incident(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal write after the restart was applied fails once: the run crashes, is
    woken again after a backoff, re-applies the journaled intent (idempotent: no second
    rollout) and recovers."""
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    rig.metrics.holding = {"step1_ok"}
    real = rig.store.journal
    failed: list[str] = []

    async def flaky(incident_id: str, now: Any, **parts: Any) -> None:
        step = parts.get("step")
        if step is not None and step[1].status == StepStatus.APPLIED and not failed:
            failed.append(incident_id)
            raise OSError("disk I/O error (injected)")
        await real(incident_id, now, **parts)
    monkeypatch.setattr(rig.store, "journal", flaky)
    await rig.post([alert()])

    async def closed() -> bool:
        inc = await rig.only_incident()
        return not inc.state.active
    await until(closed, 15)
    await rig.settle()
    inc = await rig.only_incident()
    assert failed
    assert inc.state == IncidentState.RECOVERED, inc.summary
    restarts = [c for c in rig.writes() if c["path"] == RESTART]
    assert len(restarts) >= 1
    # the replayed intent carries the same restartedAt: one rollout, however many PATCHes
    assert len({str(c["body"]) for c in restarts}) == 1


async def test_a_step_ends_at_its_timeout_and_the_ladder_moves_on(
        rig: Rig, upstream: Upstream) -> None:
    """503 on every try, 10 retries with backoff 5s, 10s, 20s, 40s, 60s…: the step's
    timeout (60s) ends it after the tries that fit, and the next step runs."""
    await rig.start(post_first(upstream.url("/busy"), rig.hooks.url, retries=10,
                               timeout="timeout: 60s"),
                    EngineSettings(retry_base=5.0, retry_max=60.0))
    rig.metrics.holding = {"step2_ok"}
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    first = inc.steps[0]
    assert first.status == StepStatus.FAILED
    assert "timeout of 1m passed" in (first.error or "")
    assert first.started_at is not None
    assert first.finished_at is not None
    assert (first.finished_at - first.started_at).total_seconds() == pytest.approx(60, abs=1)
    assert upstream.calls["busy"] == 4               # at 0, 5, 15 and 35 s; 75 s is too late
    assert inc.state == IncidentState.RECOVERED      # the scale step ran and held


async def test_a_wait_looks_at_the_alerts_even_when_no_wake_comes(rig: Rig) -> None:
    """A wake can be lost (another replica's NOTIFY while this one's LISTEN connection was
    down): a running wait still looks at the alerts every 30 s."""
    await rig.start(wait_first("{}", rig.hooks.url))
    rig.clock.auto_advance = False
    a = alert()
    await rig.post([a])

    await until_the_first_step_waits(rig)
    gone = resolved(a)
    record = AlertRecord(gone["fingerprint"], T0, T0 + timedelta(minutes=30), "resolved",
                         gone["labels"], gone["annotations"])
    await rig.store.ingest([IngestItem(record, ())], rig.clock.now())   # no wake: lost
    await rig.clock.advance(31)
    await asyncio.wait_for(rig.engine.idle(), 1.0)
    inc = await rig.only_incident()
    assert inc.state == IncidentState.RESOLVED, inc.summary
    assert rig.writes() == []
