"""The engine: owns the incident runs and everything they share.

Incidents run in parallel (bounded by ``max_parallel``), each strictly serial.
``wake(id)`` starts a run or nudges a waiting one (a resolved alert, an
approval). On ``start`` every incident that is not closed is resumed from the
journal; on ``stop`` waits end at once, in-flight API calls are allowed to
finish within the grace period, and the journal says where each incident was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from remediator.actions import registry
from remediator.clock import Clock
from remediator.engine.approvals import Approvals
from remediator.engine.guards import Guards
from remediator.engine.intake import Intake
from remediator.engine.notifications import Notifications
from remediator.engine.routing import Router
from remediator.engine.runner import IncidentRun
from remediator.engine.verify import Verifier
from remediator.metrics import Metrics
from remediator.model.incident import IncidentView
from remediator.model.playbook import Playbook
from remediator.notify.base import Sink
from remediator.store.base import Store

log = logging.getLogger("remediator.engine")


@dataclass(frozen=True)
class EngineConfig:
    dry_run: bool = False
    max_parallel: int = 32                 # incidents working at once (waiting ones don't count)
    allow_namespaces: tuple[str, ...] = ()  # empty: every namespace not denied
    deny_namespaces: tuple[str, ...] = ()
    action_budget: int = 20                # mutating actions per window, all incidents
    action_budget_window: float = 600.0    # seconds
    default_approvers: tuple[str, ...] = ()
    retry_base: float = 2.0                # seconds; doubles per retry
    retry_max: float = 60.0
    call_timeout: float = 60.0             # real seconds one API call may take
    escalation_retries: int = 3            # quick tries of each escalation action, then…
    escalation_retry_for: float = 3600.0   # …seconds the ones that met only temporary
                                           # errors keep trying (a Jira outage)
    lock_retry_interval: float = 10.0      # seconds between per-target lock attempts
    intake_priority: float = 1.0           # real seconds a run step gives way to the intake
    # Several replicas on one (PostgreSQL) store: each incident is worked on by the replica
    # holding its lease; a replica that dies loses its leases and another one resumes.
    owner: str = field(default_factory=lambda: default_owner())
    lease: float = 30.0                    # seconds a claim holds without renewal
    scan_interval: float = 5.0             # seconds between looks for unclaimed incidents


def default_owner() -> str:
    """This replica's name in leases: host, process, and a random part."""
    import os
    import socket
    import uuid
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


class Slot:
    """One of the engine's ``max_parallel`` working slots. A run gives it back while it
    waits (verification intervals, approvals, backoff), so waiting incidents never keep
    new ones from starting."""

    def __init__(self, sem: asyncio.Semaphore) -> None:
        self._sem = sem
        self.held = False

    async def take(self) -> None:
        await self._sem.acquire()
        self.held = True

    def give(self) -> None:
        if self.held:
            self.held = False
            self._sem.release()


@dataclass
class Ports:
    """The outside world. Any of these may be None when not configured."""

    cluster: Any = None     # remediator.adapters.kubernetes.KubernetesCluster
    metrics: Any = None     # MetricsApi (Prometheus)
    alerts: Any = None      # AlertsApi (Alertmanager's API, for alert_resolved)
    tickets: Any = None     # remediator.adapters.jira.JiraTickets
    chat: Any = None        # remediator.adapters.slack.SlackChat
    http: Any = None        # aiohttp.ClientSession for http.post
    extra: dict[str, Any] = field(default_factory=dict)


class Engine:
    def __init__(self, *, store: Store, playbooks: Sequence[Playbook], clock: Clock,
                 ports: Ports | None = None, config: EngineConfig | None = None,
                 metrics: Metrics | None = None, sinks: Sequence[Sink] = ()) -> None:
        self.store = store
        self.clock = clock
        self.ports = ports or Ports()
        self.config = config or EngineConfig()
        self.metrics = metrics or Metrics()
        self.playbook_list = list(playbooks)
        self.playbooks = {pb.name: pb for pb in playbooks}
        self.router = Router(self.playbook_list)
        for pb in self.playbook_list:       # imported now, not by the first incident's run
            for action in [s.action for s in pb.spec.steps] + [e.action for e in pb.spec.escalate]:
                registry.implementation(action)
        self.notifications = Notifications(
            store, sinks, clock, self.metrics, owner=self.config.owner,
            shared=not getattr(store, "single_process", True), lease=self.config.lease)
        self.verifier = Verifier(clock, self.ports.metrics, self.ports.cluster)
        self.guards = Guards(store, clock, self.metrics,
                             allow_namespaces=self.config.allow_namespaces,
                             deny_namespaces=self.config.deny_namespaces,
                             action_budget=self.config.action_budget,
                             action_budget_window=self.config.action_budget_window)
        self.approvals = Approvals(store, self.config.default_approvers)
        self.intake = Intake(self)
        self.stopping = False
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._sem = asyncio.Semaphore(self.config.max_parallel)
        self._waiting = 0
        self._lost: set[str] = set()
        self._background: list[asyncio.Task[None]] = []
        self._receiving = _Receiving()      # webhooks being received (see give_way)

    @property
    def shared_store(self) -> bool:
        """True when other replicas may use the same store (leases are renewed and
        unclaimed incidents are looked for)."""
        return not getattr(self.store, "single_process", True)

    def lost(self, incident_id: str) -> bool:
        """True when this replica lost the incident's lease (another one may run it)."""
        return incident_id in self._lost

    async def start(self) -> None:
        """Resume every incident that is not closed, and start delivering notifications."""
        self.notifications.start()
        if not self.shared_store:
            await self.store.release_all()     # leases of this process's previous run
        else:
            self._background.append(asyncio.create_task(self._scan(), name="incident-scan"))
        paused = await self.guards.paused()
        self.metrics.automation_paused.set(1 if paused else 0)
        resumed = await self.store.active_incident_ids()
        for incident_id in resumed:
            self.wake(incident_id)
        if resumed:
            log.info("resuming %d open incidents from the journal", len(resumed))

    def receiving(self) -> _Receiving:
        """Around the intake of one webhook (``with engine.receiving():``): incident runs
        give way meanwhile."""
        return self._receiving

    async def give_way(self) -> None:
        """Called by incident runs before each journal write and action call:
        while webhooks are being received, wait for the intake to be idle, at most
        ``intake_priority`` real seconds. In an alert storm the alerts are persisted,
        deduplicated and acknowledged first (nothing is lost, Alertmanager does not time
        out and retry) and the engine's CPU goes to the incidents in the gaps; at most that
        long later a run goes on regardless."""
        limit = self.config.intake_priority
        if self._receiving.count and limit > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(limit):
                    await self._receiving.idle.wait()

    def wake(self, incident_id: str) -> None:
        if self.stopping:
            return
        event = self._wakes.setdefault(incident_id, asyncio.Event())
        event.set()
        task = self._runs.get(incident_id)
        if task is None or task.done():
            self._runs[incident_id] = asyncio.create_task(self._run(incident_id),
                                                          name=f"incident-{incident_id}")

    async def _scan(self) -> None:
        """Claim incidents nobody works on (new on another replica, or whose replica died)."""
        cfg = self.config
        while not self.stopping:
            try:
                free = cfg.max_parallel - self.running
                if free > 0:
                    for incident_id in await self.store.claim_batch(
                            cfg.owner, self.clock.now(), cfg.lease, free):
                        self.wake(incident_id)
            except Exception:
                log.exception("looking for unclaimed incidents failed; trying again")
            await self.clock.sleep(cfg.scan_interval)

    async def _renew(self, incident_id: str, event: asyncio.Event) -> None:
        cfg = self.config
        while True:
            await self.clock.sleep(cfg.lease / 3)
            try:
                held = await self.store.claim(incident_id, cfg.owner, self.clock.now(),
                                              cfg.lease)
            except Exception:
                log.exception("renewing the lease failed", extra={"incident": incident_id})
                continue
            if not held:
                log.error("lost the lease: another replica took this incident over",
                          extra={"incident": incident_id})
                self._lost.add(incident_id)
                event.set()
                return

    async def _run(self, incident_id: str) -> None:
        cfg = self.config
        renewer: asyncio.Task[None] | None = None
        slot = Slot(self._sem)
        self._waiting += 1
        self.metrics.queue_depth.set(self._waiting)
        try:
            try:
                await slot.take()
            finally:
                self._waiting -= 1
                self.metrics.queue_depth.set(self._waiting)
            lease = cfg.lease if self.shared_store else 86400.0 * 365
            if not await self.store.claim(incident_id, cfg.owner, self.clock.now(), lease):
                log.debug("incident held by another replica", extra={"incident": incident_id})
                return
            self._lost.discard(incident_id)
            event = self._wakes[incident_id]
            if self.shared_store:
                renewer = asyncio.create_task(self._renew(incident_id, event))
            self.metrics.incidents_open.inc()
            try:
                while not self.stopping:
                    event.clear()
                    try:
                        await IncidentRun(self, incident_id, event, slot).run()
                    except Exception:
                        log.exception("incident run crashed; it resumes on the next wake",
                                      extra={"incident": incident_id})
                        break
                    if not event.is_set() or self.lost(incident_id):
                        break
            finally:
                self.metrics.incidents_open.dec()
                if renewer is not None:
                    renewer.cancel()
                if not self.lost(incident_id):
                    try:
                        await self.store.release(incident_id, cfg.owner)
                    except Exception:
                        log.exception("releasing the lease failed",
                                      extra={"incident": incident_id})
        finally:
            slot.give()
            if self._runs.get(incident_id) is asyncio.current_task():
                del self._runs[incident_id]
                self._wakes.pop(incident_id, None)

    def record_recovery(self, view: IncidentView) -> None:
        if view.first_alert_at is not None:
            took = (self.clock.now() - view.first_alert_at).total_seconds()
            self.metrics.time_to_recover.labels(view.playbook).observe(max(0.0, took))

    @property
    def running(self) -> int:
        return sum(1 for t in self._runs.values() if not t.done())

    async def idle(self) -> None:
        """Wait until no incident run is in progress (tests and the demo)."""
        while True:
            tasks = [t for t in self._runs.values() if not t.done()]
            if not tasks:
                return
            await asyncio.wait(tasks)

    async def stop(self, grace: float = 20.0) -> None:
        """Stop taking work; let in-flight calls finish within ``grace`` seconds."""
        self.stopping = True
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for event in self._wakes.values():
            event.set()
        tasks = [t for t in self._runs.values() if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                log.warning("%d incident runs were cut at shutdown; they resume from the "
                            "journal on the next start", len(pending))
        await self.notifications.stop()


class _Receiving:
    """``Engine.receiving()``: how many webhooks are being received, and an event set
    while none is. A plain context manager, entered on every webhook (a generator-based
    one costs a generator and a wrapper object each time)."""

    __slots__ = ("count", "idle")

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def __enter__(self) -> None:
        self.count += 1
        self.idle.clear()

    def __exit__(self, *exc: object) -> None:
        self.count -= 1
        if not self.count:
            self.idle.set()
