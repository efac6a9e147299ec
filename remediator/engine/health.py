"""Dependency health: whether each outside system answers, as the daemon's own calls and
a light probe see it.

``DependencyHealth`` keeps, per dependency (cluster, prometheus, alertmanager, slack,
jira, store), its state (up, down, or not yet seen), its last success and its last
error, and exports ``remediator_dependency_up{dependency}``. It learns from:

* the real calls: ``observe(port, name)`` wraps a port so that every coroutine method
  reports its outcome. A call that returns, or fails with an answer (a 404, a 5xx),
  means up; a call that fails with a connection kind of error (refused, reset, DNS,
  timeout: ``is_connection_error``) means down. The error still reaches the caller.
* a light probe (Kubernetes ``/version``, ``/-/ready``, ``auth.test``, a store ping,
  given by the composition root) of each dependency no call used for
  ``probe_interval``: ``probe_loop``, a task for the engine's ``Supervisor``. A probe
  that fails in any way means down.

An incident run that calls through an observed port (``note_dependencies_in(journal)``
at its start) gets a timeline note when a dependency it needed could not be reached,
and one when its own call finds it up again. Nothing here decides readiness (the
server does: only the store is fatal) or imports a client library.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from remediator.clock import Clock
from remediator.metrics import Metrics

if TYPE_CHECKING:
    from remediator.engine.journal import RunJournal

log = logging.getLogger("remediator.health")
T = TypeVar("T")

DEPENDENCIES = ("cluster", "prometheus", "alertmanager", "slack", "jira", "store")
# Error classes that mean "could not talk to it" wherever they come from (aiohttp's
# ClientConnectionError covers refused, reset and DNS; requests' ConnectionError and
# Timeout; the builtins ConnectionError and TimeoutError), found by name so that the
# engine imports no client library.
_CONNECTION_NAMES = frozenset({"ConnectionError", "ClientConnectionError", "Timeout",
                               "TimeoutError", "gaierror"})
Probe = Callable[[], Awaitable[object]]


def is_connection_error(exc: BaseException) -> bool:
    """True when ``exc`` or one of its causes says the other side could not be reached
    or did not answer in time (not: it answered with an error)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(c.__name__ in _CONNECTION_NAMES for c in type(current).__mro__):
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass
class Dependency:
    name: str
    detail: str = ""                         # what is configured (a URL, a mode)
    configured: bool = True
    up: bool | None = None                   # None: not seen yet
    since: datetime | None = None            # when the current state began
    last_seen: datetime | None = None        # the last call or probe, whatever its outcome
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    probe: Probe | None = None

    @property
    def state(self) -> str:
        if not self.configured:
            return "not configured"
        return {None: "unknown", True: "up", False: "down"}[self.up]

    def report(self) -> dict[str, Any]:
        """What ``/readyz`` shows of it."""
        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at is not None else None
        return {"state": self.state, "detail": self.detail, "since": iso(self.since),
                "last_success": iso(self.last_success), "last_error": self.last_error,
                "last_error_at": iso(self.last_error_at)}


@dataclass
class _RunNotes:
    """The run whose calls are being observed (its task: tasks it starts inherit the
    context, not the notes), and the dependencies it noted as down."""

    journal: RunJournal
    task: asyncio.Task[Any] | None
    down: set[str] = field(default_factory=set)


def _current_run() -> _RunNotes | None:
    run = _RUN.get()
    return run if run is not None and run.task is asyncio.current_task() else None


_RUN: contextvars.ContextVar[_RunNotes | None] = contextvars.ContextVar(
    "remediator_run_notes", default=None)


def note_dependencies_in(journal: RunJournal) -> None:
    """From now on in this task (an incident run), observed calls that cannot reach their
    dependency, and the first one that reaches it again, are noted in ``journal``."""
    _RUN.set(_RunNotes(journal, asyncio.current_task()))


def stop_noting_dependencies() -> None:
    """The run is over: its task's context lets go of the notes. They hold the task
    (whose context holds them): a cycle that keeps the run's journal and view until
    a full collection, never if the task was made before ``gc.freeze`` (the daemon
    freezes its heap once started, with the incidents resumed at start in it)."""
    _RUN.set(None)


class DependencyHealth:
    def __init__(self, clock: Clock, metrics: Metrics) -> None:
        self.clock = clock
        self.metrics = metrics
        self.dependencies: dict[str, Dependency] = {}

    def track(self, name: str, detail: str = "", *, probe: Probe | None = None,
              configured: bool = True) -> Dependency:
        dep = self.dependencies.get(name)
        if dep is None:
            dep = self.dependencies[name] = Dependency(name)
        dep.detail, dep.probe, dep.configured = detail, probe, configured
        return dep

    def report(self) -> dict[str, dict[str, Any]]:
        return {name: dep.report() for name, dep in sorted(self.dependencies.items())}

    def is_up(self, name: str) -> bool | None:
        dep = self.dependencies.get(name)
        return dep.up if dep is not None else None

    # --- what calls and probes tell -------------------------------------------------

    def succeeded(self, name: str, *, error: str | None = None) -> bool:
        """``name`` answered (with ``error``, when it answered with one); True when it
        was down before."""
        dep = self.track(name) if name not in self.dependencies else self.dependencies[name]
        now = self.clock.now()
        came_back = dep.up is False
        dep.last_seen = now
        if error is None:
            dep.last_success = now
        else:
            dep.last_error, dep.last_error_at = error, now
        if dep.up is not True:
            dep.up, dep.since = True, now
            self.metrics.dependency_up.labels(name).set(1)
            if came_back:
                log.warning("%s is reachable again", name, extra={"dependency": name})
        return came_back

    def failed(self, name: str, error: str) -> bool:
        """``name`` could not be reached; True when it was not down before."""
        dep = self.track(name) if name not in self.dependencies else self.dependencies[name]
        now = self.clock.now()
        went_down = dep.up is not False
        dep.last_seen = now
        dep.last_error, dep.last_error_at = error, now
        if went_down:
            dep.up, dep.since = False, now
            self.metrics.dependency_up.labels(name).set(0)
            log.warning("%s is unreachable: %s", name, error, extra={"dependency": name})
        return went_down

    async def call_failed(self, name: str, exc: BaseException) -> None:
        """An observed call raised ``exc``: down if it is a connection kind of error (and
        a note in the calling run's timeline, once), else it answered."""
        if not is_connection_error(exc):
            await self.call_succeeded(name, error=str(exc))
            return
        self.failed(name, str(exc))
        run = _current_run()
        if run is not None and name not in run.down:
            run.down.add(name)
            await _note(run, f"{name} is unreachable: {exc}", name, "down")

    async def call_succeeded(self, name: str, *, error: str | None = None) -> None:
        self.succeeded(name, error=error)
        run = _current_run()
        if run is not None and name in run.down:
            run.down.discard(name)
            since = self.dependencies[name].since
            when = f" (up since {since:%H:%M:%S})" if since is not None else ""
            await _note(run, f"{name} is reachable again{when}", name, "up")

    # --- probes ---------------------------------------------------------------------

    async def probe(self, dep: Dependency, limit: float) -> None:
        """Run ``dep``'s probe, for at most ``limit`` seconds."""
        if dep.probe is None:
            return
        try:
            async with asyncio.timeout(limit):
                await dep.probe()
        except Exception as exc:
            self.failed(dep.name, f"probe: {exc or type(exc).__name__}")
        else:
            self.succeeded(dep.name)

    async def probe_idle(self, interval: float, limit: float) -> None:
        """Probe, all at once, every dependency no call or probe has seen for
        ``interval`` seconds (or ever), each for at most ``limit`` seconds."""
        now = self.clock.now()
        idle = [dep for dep in self.dependencies.values()
                if dep.probe is not None and dep.configured
                and (dep.last_seen is None
                     or (now - dep.last_seen).total_seconds() >= interval)]
        await asyncio.gather(*(self.probe(dep, limit) for dep in idle))

    async def probe_loop(self, interval: float, limit: float) -> None:
        """Every ``interval`` seconds, probe the idle dependencies, until cancelled (not at
        once: the calls made while starting tell the first states)."""
        while True:
            await self.clock.sleep(interval)
            await self.probe_idle(interval, limit)

    # --- ports ----------------------------------------------------------------------

    def observe(self, port: T, name: str) -> T:
        """``port`` with every coroutine method reporting its outcome as ``name``'s."""
        if port is None:
            return port
        observed: Any = _Observed(port, name, self)
        result: T = observed
        return result


async def _note(run: _RunNotes, message: str, name: str, state: str) -> None:
    try:
        await run.journal.note("dependency", message, dependency=name, state=state)
    except Exception as exc:          # the store may be what is down: the call's own
        log.warning("could not journal that %s is %s: %s", name, state, exc)   # error wins


class _Observed:
    """A port whose coroutine methods report to ``DependencyHealth``; everything else
    (plain methods, attributes) is the port's own."""

    def __init__(self, port: Any, name: str, health: DependencyHealth) -> None:
        self._port = port
        self._name = name
        self._health = health
        self._wrapped: dict[str, Any] = {}

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._port, attr)
        if attr.startswith("_") or attr == "close" or not inspect.iscoroutinefunction(value):
            return value
        wrapped = self._wrapped.get(attr)
        if wrapped is None:
            wrapped = self._wrapped[attr] = self._wrap(attr)
        return wrapped

    def _wrap(self, attr: str) -> Callable[..., Awaitable[Any]]:
        health, name, port = self._health, self._name, self._port

        @functools.wraps(getattr(port, attr))
        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await getattr(port, attr)(*args, **kwargs)
            except Exception as exc:
                await health.call_failed(name, exc)
                raise
            await health.call_succeeded(name)
            return result
        return call
