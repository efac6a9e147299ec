"""The Alertmanager API adapter against the real binary, and the verifier's use of it.

The adapter tests start the real ``prometheus-alertmanager`` (``$E2E_ALERTMANAGER``,
PATH or /usr/bin); without it they skip, or fail when ``CI`` is set. The verifier
tests use a tiny in-process fake of the ``AlertsApi`` port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from remediator.adapters.alertmanager import AlertmanagerApi
from remediator.clock import FakeClock
from remediator.engine.verification import Verifier
from remediator.errors import PermanentError, TemporaryError
from remediator.model.alerts import fingerprint
from remediator.model.playbook import Verify

CONFIG = """\
route:
  receiver: "null"
  group_wait: 1h
receivers:
  - name: "null"
"""

LABELS = {"alertname": "HighErrorRate", "namespace": "shop", "deployment": "api",
          "severity": "critical"}
OTHER = {"alertname": "HighErrorRate", "namespace": "shop", "deployment": "checkout",
         "severity": "critical"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alertmanager_binary() -> str:
    override = os.environ.get("E2E_ALERTMANAGER")
    candidates = [override] if override else [
        shutil.which("prometheus-alertmanager"), shutil.which("alertmanager"),
        "/usr/bin/prometheus-alertmanager"]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    message = ("these tests need the real prometheus-alertmanager binary ($E2E_ALERTMANAGER, "
               "PATH, /usr/bin; Debian: apt-get install prometheus-alertmanager)")
    if os.environ.get("CI"):
        pytest.fail(message + "; CI is set, so this is a failure, not a skip", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def am_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = alertmanager_binary()
    base = tmp_path_factory.mktemp("alertmanager")
    (base / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    with (base / "alertmanager.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={base / 'alertmanager.yml'}", f"--storage.path={base}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        asyncio.run(_wait_ready(f"http://127.0.0.1:{port}", proc))
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/-/ready") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError("alertmanager did not become ready")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _ts(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


async def post(http: aiohttp.ClientSession, url: str, labels: dict[str, str], *,
               resolved: bool = False) -> None:
    now = datetime.now(UTC)
    alert: dict[str, Any] = {"labels": labels, "annotations": {"summary": "5xx"},
                             "startsAt": _ts(now - timedelta(minutes=5))}
    if resolved:
        alert["endsAt"] = _ts(now - timedelta(seconds=1))
    async with http.post(f"{url}/api/v2/alerts", json=[alert]) as resp:
        assert resp.status == 200, await resp.text()


def unique(labels: dict[str, str], name: str) -> dict[str, str]:
    """The module shares one Alertmanager: each test uses its own label sets."""
    return {**labels, "test": name}


# --- the adapter against the real Alertmanager ------------------------------------------

async def test_firing_then_resolved(am_url: str, http: aiohttp.ClientSession) -> None:
    labels, other = unique(LABELS, "resolve"), unique(OTHER, "resolve")
    api = AlertmanagerApi(am_url, http, cache_ttl=0)
    assert not await api.is_firing(fingerprint(labels))
    await post(http, am_url, labels)
    await post(http, am_url, other)
    assert await api.is_firing(fingerprint(labels))
    assert await api.is_firing(fingerprint(other))
    await post(http, am_url, labels, resolved=True)
    assert not await api.is_firing(fingerprint(labels))
    assert await api.is_firing(fingerprint(other))     # only the resolved one went


async def test_silenced_alert_is_still_firing(am_url: str, http: aiohttp.ClientSession) -> None:
    labels = unique(LABELS, "silenced")
    now = datetime.now(UTC)
    silence = {"matchers": [{"name": "test", "value": "silenced", "isRegex": False,
                             "isEqual": True}],
               "startsAt": _ts(now - timedelta(minutes=1)), "endsAt": _ts(now + timedelta(hours=1)),
               "createdBy": "tests", "comment": "a silenced alert still fires"}
    async with http.post(f"{am_url}/api/v2/silences", json=silence) as resp:
        assert resp.status == 200, await resp.text()
    await post(http, am_url, labels)
    async with http.get(f"{am_url}/api/v2/alerts", params={"filter": 'test="silenced"'}) as resp:
        listed = await resp.json()
    assert [a["status"]["state"] for a in listed] == ["suppressed"]
    assert await AlertmanagerApi(am_url, http).is_firing(fingerprint(labels))


async def test_one_listing_serves_many_callers(am_url: str, http: aiohttp.ClientSession) -> None:
    labels = unique(LABELS, "cache")
    await post(http, am_url, labels)
    api = AlertmanagerApi(am_url, http, cache_ttl=30)
    answers = await asyncio.gather(*(api.is_firing(fingerprint(labels)) for _ in range(50)),
                                   *(api.is_firing("0123456789abcdef") for _ in range(50)))
    assert answers == [True] * 50 + [False] * 50
    assert api.requests == 1
    await post(http, am_url, labels, resolved=True)
    assert await api.is_firing(fingerprint(labels))     # cached: a couple of seconds old at most
    api.cache_ttl = 0
    assert not await api.is_firing(fingerprint(labels))
    assert api.requests == 2


async def test_not_found_is_permanent(am_url: str, http: aiohttp.ClientSession) -> None:
    api = AlertmanagerApi(f"{am_url}/no-such-prefix", http)
    with pytest.raises(PermanentError, match="404") as info:
        await api.is_firing("0123456789abcdef")
    assert isinstance(info.value.__cause__, aiohttp.ClientResponseError)


async def test_down_is_temporary(http: aiohttp.ClientSession) -> None:
    api = AlertmanagerApi(f"http://127.0.0.1:{free_port()}", http)
    with pytest.raises(TemporaryError, match="unreachable") as info:
        await api.is_firing("0123456789abcdef")
    assert isinstance(info.value.__cause__, aiohttp.ClientError)
    assert api._cached is None                          # an error is never cached


@pytest.fixture
async def broken() -> AsyncIterator[str]:
    """A server that answers 503, slowly, or with a body that is not a list."""
    done = asyncio.Event()

    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503, text="no")

    async def slow(request: web.Request) -> web.Response:
        with contextlib.suppress(TimeoutError):     # until the test ends, at most 5 s
            await asyncio.wait_for(done.wait(), 5)
        return web.json_response([])

    async def odd(request: web.Request) -> web.Response:
        return web.json_response({"status": "success"})

    app = web.Application()
    app.router.add_get("/503/api/v2/alerts", unavailable)
    app.router.add_get("/slow/api/v2/alerts", slow)
    app.router.add_get("/odd/api/v2/alerts", odd)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    done.set()
    await runner.cleanup()


async def test_server_errors_and_timeouts_are_temporary(
        broken: str, http: aiohttp.ClientSession) -> None:
    with pytest.raises(TemporaryError, match="HTTP 503") as info:
        await AlertmanagerApi(f"{broken}/503", http).is_firing("x")
    assert isinstance(info.value.__cause__, aiohttp.ClientResponseError)
    with pytest.raises(TemporaryError, match="unreachable") as info:
        await AlertmanagerApi(f"{broken}/slow", http, timeout=0.2).is_firing("x")
    assert isinstance(info.value.__cause__, TimeoutError)
    with pytest.raises(TemporaryError, match="expected a list"):
        await AlertmanagerApi(f"{broken}/odd", http).is_firing("x")


async def test_verifier_with_the_real_alertmanager(am_url: str,
                                                   http: aiohttp.ClientSession) -> None:
    labels = unique(LABELS, "verifier")
    await post(http, am_url, labels)
    clock = FakeClock(auto_advance=True)
    verifier = Verifier(clock, None, None, AlertmanagerApi(am_url, http, cache_ttl=0))
    polls = 0

    async def wait(seconds: float) -> None:
        nonlocal polls
        polls += 1
        if polls == 2:
            await post(http, am_url, labels, resolved=True)
        await clock.sleep(seconds)

    verdict = await verifier.run(
        Verify.model_validate({"alert_resolved": True, "timeout": "10m", "interval": "15s"}),
        context={}, target=None, started_at=clock.now(), firing=_count(1), wait=wait,
        incident_alerts=[{"fingerprint": fingerprint(labels), "status": "firing"}])
    assert verdict.held, verdict
    assert not verdict.resolved
    assert "no longer lists" in verdict.summary


# --- the verifier's use of the AlertsApi port, with a fake ---------------------------------

class FakeAlerts:
    """``listed``: the fingerprints Alertmanager lists; ``down``: calls that fail next."""

    def __init__(self, listed: set[str], down: int = 0) -> None:
        self.listed = listed
        self.down = down
        self.asked: list[str] = []

    async def is_firing(self, fingerprint: str) -> bool:
        self.asked.append(fingerprint)
        if self.down:
            self.down -= 1
            raise TemporaryError("Alertmanager at http://am:9093 unreachable: ClientConnectorError")
        return fingerprint in self.listed


def _count(n: int) -> Any:
    async def firing() -> int:
        return n
    return firing


RESOLVED = Verify.model_validate({"alert_resolved": True, "timeout": "2m", "interval": "10s"})
INCIDENT_ALERTS = [{"fingerprint": "aaaa", "status": "firing"},
                   {"fingerprint": "bbbb", "status": "firing"},
                   {"fingerprint": "cccc", "status": "resolved"}]


async def _verify(alerts: FakeAlerts | None, *, on_wait: Any = None,
                  via_run: bool = False) -> tuple[Any, int]:
    clock = FakeClock(auto_advance=True)
    verifier = Verifier(clock, None, None, None if via_run else alerts)
    polls = 0

    async def wait(seconds: float) -> None:
        nonlocal polls
        polls += 1
        if on_wait is not None:
            on_wait(polls)
        await clock.sleep(seconds)

    verdict = await verifier.run(RESOLVED, context={}, target=None, started_at=clock.now(),
                                 firing=_count(2), wait=wait,
                                 alerts=alerts if via_run else None,
                                 incident_alerts=INCIDENT_ALERTS)
    return verdict, polls


@pytest.mark.parametrize("via_run", [False, True])
async def test_holds_once_no_firing_alert_is_listed(via_run: bool) -> None:
    fake = FakeAlerts({"aaaa", "bbbb", "cccc"})

    def clear(polls: int) -> None:
        if polls == 1:
            fake.listed.discard("aaaa")
        if polls == 3:
            fake.listed.discard("bbbb")

    verdict, polls = await _verify(fake, on_wait=clear, via_run=via_run)
    assert verdict.held
    assert not verdict.resolved
    assert verdict.summary == "Alertmanager no longer lists the alert — verified"
    assert polls == 3
    assert "cccc" not in fake.asked                      # already resolved: not asked about


async def test_still_listed_does_not_hold() -> None:
    verdict, _ = await _verify(FakeAlerts({"bbbb"}))
    assert not verdict.held
    assert verdict.summary == ("alert still firing (1 of 2 listed by Alertmanager) — "
                               "not verified after 2m")


async def test_an_api_that_is_down_is_not_a_verdict() -> None:
    fake = FakeAlerts(set(), down=3)
    verdict, polls = await _verify(fake)
    assert verdict.held
    assert polls == 3                                    # kept polling while it was down

    down = FakeAlerts(set(), down=10**6)
    verdict, _ = await _verify(down)
    assert not verdict.held
    assert "Alertmanager API unavailable" in verdict.summary
    assert "unreachable" in verdict.summary


async def test_without_the_api_only_a_resolved_webhook_counts() -> None:
    verdict, _ = await _verify(None)
    assert not verdict.held
    assert verdict.summary == "alert still firing — not verified after 2m"

    clock = FakeClock(auto_advance=True)
    verdict = await Verifier(clock, None, None, FakeAlerts({"aaaa"})).run(
        RESOLVED, context={}, target=None, started_at=clock.now(), firing=_count(0),
        wait=clock.sleep, incident_alerts=INCIDENT_ALERTS)
    assert verdict.held
    assert verdict.resolved
