"""Dependency health (``engine/health.py``): what counts as down, the gauge kept by real
calls and probes, and the incident timeline noting a dependency it needed going down
and coming back."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest
import requests

from remediator.clock import FakeClock
from remediator.engine.health import DependencyHealth, is_connection_error
from remediator.errors import PermanentError, TemporaryError
from remediator.metrics import Metrics

from .rig import FakeMetrics, Rig, alert, ladder_playbook


def _caused(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(("error", "down"), [
    (_caused(TemporaryError("x"), ConnectionRefusedError(111, "refused")), True),
    (_caused(TemporaryError("x"), TimeoutError()), True),
    (_caused(TemporaryError("x"), aiohttp.ServerDisconnectedError()), True),
    (_caused(TemporaryError("x"), aiohttp.ClientConnectorError(
        None, OSError(111, "refused"))), True),  # type: ignore[arg-type]
    (_caused(TemporaryError("x"), requests.ConnectionError("refused")), True),
    (_caused(TemporaryError("x"), requests.ReadTimeout("slow")), True),
    (_caused(TemporaryError("x"), socket.gaierror(-2, "Name or service not known")), True),
    (TemporaryError("HTTP 503"), False),
    (_caused(TemporaryError("x"), requests.HTTPError("500")), False),
    (_caused(PermanentError("404"), aiohttp.ClientResponseError(
        None, (), status=404)), False),  # type: ignore[arg-type]
])
def test_what_counts_as_a_connection_error(error: Exception, down: bool) -> None:
    assert is_connection_error(error) is down


class Port:
    """A port whose calls fail with a refused connection while ``down``."""

    def __init__(self) -> None:
        self.down = False

    async def read(self) -> str:
        if self.down:
            raise TemporaryError("cannot reach it") from ConnectionRefusedError(111, "refused")
        return "ok"

    async def missing(self) -> str:
        raise PermanentError("404 not found")

    def plain(self) -> str:
        return "plain"


async def test_real_calls_keep_the_gauge_current() -> None:
    clock = FakeClock()
    metrics = Metrics()
    health = DependencyHealth(clock, metrics)
    port = Port()
    observed = health.observe(port, "cluster")
    gauge = metrics.registry.get_sample_value
    assert gauge("remediator_dependency_up", {"dependency": "cluster"}) is None
    assert await observed.read() == "ok"
    assert gauge("remediator_dependency_up", {"dependency": "cluster"}) == 1
    port.down = True
    await clock.advance(10)
    with pytest.raises(TemporaryError):
        await observed.read()
    assert gauge("remediator_dependency_up", {"dependency": "cluster"}) == 0
    report = health.report()["cluster"]
    assert report["state"] == "down"
    assert report["last_error"] == "cannot reach it"
    assert report["last_success"] == "2026-08-01T10:00:00+00:00"
    assert report["since"] == "2026-08-01T10:00:10+00:00"
    with pytest.raises(PermanentError):           # an answer, even an error, is up
        await observed.missing()
    assert gauge("remediator_dependency_up", {"dependency": "cluster"}) == 1
    assert observed.plain() == "plain"             # plain methods are the port's own


async def test_idle_dependencies_are_probed() -> None:
    clock = FakeClock()
    metrics = Metrics()
    health = DependencyHealth(clock, metrics)
    up = {"ok": False}

    async def probe() -> None:
        if not up["ok"]:
            raise ConnectionRefusedError(111, "refused")
    health.track("prometheus", "http://prom", probe=probe)
    health.track("jira", "not configured", configured=False)
    await health.probe_idle(30, 5)
    assert health.report()["prometheus"]["state"] == "down"
    assert health.report()["jira"]["state"] == "not configured"
    up["ok"] = True
    await health.probe_idle(30, 5)                 # seen 0 s ago: not idle yet
    assert health.report()["prometheus"]["state"] == "down"
    await clock.advance(30)
    await health.probe_idle(30, 5)
    assert health.report()["prometheus"]["state"] == "up"
    assert metrics.registry.get_sample_value(
        "remediator_dependency_up", {"dependency": "prometheus"}) == 1


class FlakyMetrics(FakeMetrics):
    """Prometheus refusing connections for the first ``failures`` queries."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def query(self, promql: str, *, max_age: float | None = None
                    ) -> list[dict[str, Any]]:
        if self.failures > 0:
            self.failures -= 1
            raise TemporaryError("Prometheus at http://prom:9090 unreachable: "
                                 "ConnectionError") from requests.ConnectionError("refused")
        return await super().query(promql)


async def test_the_timeline_says_when_a_dependency_went_down_and_came_back(
        rig: Rig) -> None:
    health = DependencyHealth(rig.clock, Metrics())
    flaky = FlakyMetrics(failures=2)
    flaky.holding.add("step1_ok")
    rig.metrics = health.observe(flaky, "prometheus")
    await rig.start(ladder_playbook())
    await rig.post([alert()])
    await rig.settle()
    view = await rig.only_incident()
    assert view.state.value == "recovered", view.timeline
    notes = [e for e in view.timeline if e.kind == "dependency"]
    assert [e.data["state"] for e in notes] == ["down", "up"]
    assert notes[0].message.startswith("prometheus is unreachable: Prometheus at ")
    assert notes[1].message.startswith("prometheus is reachable again (up since ")
    assert health.report()["prometheus"]["state"] == "up"
