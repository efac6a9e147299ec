"""The engine: wires the stages together and schedules the incident runs.

    intake (webhook → persisted, routed alerts) ─wake(id)─▶ a run per incident
      incident.IncidentRun: guards → ladder (step → action → verification) → escalation

Incidents run in parallel (bounded by ``max_parallel``), each strictly serial.
``wake(id)`` starts a run or nudges a waiting one (a resolved alert, an approval; on
PostgreSQL also when that happened on another replica). On ``start`` every incident
that is not closed is resumed from the journal; on ``stop`` waits end at once,
in-flight API calls may finish within the grace period, and the journal says where
each incident was. A run that crashes is journaled nowhere new: it is woken again
after a backoff, so no incident is stranded in "remediating".

A run waiting for an approval parks: the engine holds it as data (``parking``), looks
at the decisions of many such waits at once on a timer, and turns one back into a run
when anything changed or the incident is woken. On a store that replicas share every
incident this replica works on or holds parked is claimed with a lease, all renewed
together (``leases``).

Every task is owned by one ``Supervisor``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import socket
import uuid
from collections.abc import Mapping, Sequence

from remediator.clock import Clock
from remediator.engine.chain import Chains
from remediator.engine.contract import Catalogue
from remediator.engine.guards import Guards
from remediator.engine.handoff import Handoff, Handoffs
from remediator.engine.incident import IncidentRun
from remediator.engine.intake import Intake, IntakeGate
from remediator.engine.leases import Leases
from remediator.engine.manual import Manual
from remediator.engine.notifications import Notifications
from remediator.engine.parking import ParkedWaits
from remediator.engine.ports import Ports
from remediator.engine.quarantine import Quarantine, undone_on_close
from remediator.engine.routing import Router
from remediator.engine.run import Parked, RunDeps, WakeEvent
from remediator.engine.slots import RESUMED, FairSlots, Slot
from remediator.engine.supervisor import Supervisor
from remediator.engine.verification import Verifier
from remediator.metrics import Metrics
from remediator.model.incident import IncidentState
from remediator.model.playbook import Playbook
from remediator.ports.sinks import Sink
from remediator.ports.store import Store
from remediator.settings import EngineSettings, EscalationPolicy

#: runs of the backlog resumed at start kept waiting for a working slot, per slot
BACKLOG_AHEAD = 2
#: backlog incidents woken between two yields to the event loop
FEED_CHUNK = 32

log = logging.getLogger("remediator.engine")


GAUGE_TTL = 5.0        # seconds a store-derived gauge is reused between scrapes


def default_owner() -> str:
    """This replica's name in leases: host, process, and a random part."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


class _RunEnd(enum.Enum):
    DONE = "done"                       # the run ended normally
    CRASHED = "crashed"                 # it raised: wake it again after a backoff
    HELD_ELSEWHERE = "held elsewhere"   # not ours (another replica, shutdown, lost lease)
    PARKED = "parked"                   # waits for an approval as data (``parking``)


class Engine:
    def __init__(self, *, store: Store, playbooks: Sequence[Playbook], clock: Clock,
                 catalogue: Catalogue, ports: Ports | None = None,
                 settings: EngineSettings | None = None, metrics: Metrics | None = None,
                 sinks: Sequence[Sink] = (), approvers: Sequence[str] = (),
                 policies: Mapping[str, EscalationPolicy] | None = None,
                 chain_tick: float = 5.0, default_channel: str | None = None) -> None:
        self.store = store
        self.clock = clock
        self.ports = ports or Ports()
        self.settings = settings or EngineSettings()
        self.owner = self.settings.owner or default_owner()
        self.metrics = metrics or Metrics()
        self.playbook_list = list(playbooks)
        self.playbooks = {pb.name: pb for pb in playbooks}
        self.router = Router(self.playbook_list)
        self.catalogue = catalogue
        for pb in self.playbook_list:       # imported now, not by the first incident's run
            for name in [s.action for s in pb.spec.steps] + [e.action for e in pb.spec.escalate
                                                             if e.policy is None]:
                catalogue.implementation(name)
        self.tasks = Supervisor()
        self.notifications = Notifications(
            store, sinks, clock, self.metrics, owner=self.owner, shared=self.shared_store,
            lease=self.settings.lease)
        cfg = self.settings
        self.handoffs = Handoffs(store, clock, self.metrics, self.notifications, self.wake,
                                 silences=lambda: self.ports.silences)
        self.guards = Guards(store, clock, self.metrics, holder=self.handoffs.holder,
                             allow_namespaces=tuple(cfg.allow_namespaces),
                             deny_namespaces=tuple(cfg.deny_namespaces),
                             action_budget=cfg.action_budget,
                             action_budget_window=cfg.action_budget_window,
                             clusters=tuple(self.ports.clusters))
        self.gate = IntakeGate(cfg.intake_priority)
        self.intake = Intake(store, self.router, clock, self.metrics, gate=self.gate,
                             wake=self.wake, dry_run=cfg.dry_run)
        self.stopping = False
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, WakeEvent] = {}
        self.slots = FairSlots(cfg.max_parallel)
        self.parking = ParkedWaits(store, clock, self.slots, self.metrics, self.tasks,
                                   self.wake)
        self.leases = (Leases(store, clock, self.owner, cfg.lease, self._lost_lease)
                       if self.shared_store else None)
        self._lanes: dict[str, str] = {}     # incident → the lane its next run waits in
        self._waiting = 0
        # incidents resumed at start whose runs are not started yet (see _feed_backlog)
        self._backlog: dict[str, None] = {}
        self._backlog_ahead = BACKLOG_AHEAD * cfg.max_parallel   # … kept waiting for slots
        self._feeder: asyncio.Task[None] | None = None
        # who waits for the queue of runs waiting for a slot to shrink (_queue_below):
        # the most runs it lets wait, and its future
        self._rooms: list[tuple[int, asyncio.Future[None]]] = []
        self._lost: set[str] = set()
        self._crashes: dict[str, int] = {}
        self._gauges_at = float("-inf")
        self.chains = Chains(store, clock, dict(policies or {}), chat=lambda: self.ports.chat,
                             default_channel=default_channel, owner=self.owner,
                             lease=cfg.lease, tick=chain_tick, pager=lambda: self.ports.pager)
        self.manual = Manual(store, clock, self.notifications, self.wake,
                             lambda i: i in self._runs and not self._runs[i].done())
        self.deps = RunDeps(
            store=store, clock=clock, metrics=self.metrics, settings=cfg,
            playbooks=self.playbooks, catalogue=catalogue, ports=self.ports,
            guards=self.guards, approvers=tuple(approvers),
            verifier=Verifier(clock, self.ports.metrics, self.ports.cluster,
                              clusters=self.ports.clusters),
            notifications=self.notifications,
            quarantine=Quarantine(self.ports.every_cluster(), store, clock, self.tasks),
            give_way=self.gate.give_way,
            stopping=lambda: self.stopping, lost=self.lost, chains=self.chains,
            tasks=self.tasks)

    @property
    def shared_store(self) -> bool:
        """True when other replicas may use the same store (leases are renewed and
        unclaimed incidents are looked for)."""
        return not getattr(self.store, "single_process", True)

    def _isolates(self) -> bool:
        """Whether a loaded playbook uses an action whose marks are undone on close."""
        return any(undone_on_close(self.deps.catalogue, step.action)
                   for pb in self.playbooks.values() for step in pb.spec.steps)

    def lost(self, incident_id: str) -> bool:
        """True when this replica lost the incident's lease (another one may run it)."""
        return incident_id in self._lost

    async def start(self) -> None:
        """Resume every incident that is not closed, and start delivering notifications."""
        self.notifications.start(self.tasks)
        self.chains.start_loop(self.tasks)
        self.store.watch(self.wake_if_running)    # wakes from other replicas (PostgreSQL)
        if not self.shared_store:
            await self.store.release_all()     # leases of this process's previous run
        else:
            self.tasks.start(self._scan(), name="incident-scan")
            assert self.leases is not None
            self.tasks.start(self.leases.keep(), name="leases")
        if self._isolates():
            self.tasks.start(self.deps.quarantine.sweep(), name="quarantine-sweep")
        self.metrics.automation_paused.set(1 if await self.guards.any_paused() else 0)
        resumed = await self.store.active_incident_ids()
        if resumed:
            self._backlog = dict.fromkeys(resumed)
            self._depth()
            self._feeder = self.tasks.start(self._feed_backlog(), name="resume-backlog")
            log.info("resuming %d open incidents from the journal", len(resumed))

    async def _feed_backlog(self) -> None:
        """Start the runs of the incidents resumed at start a few at a time, keeping at
        most BACKLOG_AHEAD runs per working slot waiting for one. Waking 10,000 at once
        stepped 10,000 new tasks in one go right after ready, holding the event loop
        ~45 ms: a new incident's webhook waited that long for its commit."""
        ahead = self._backlog_ahead
        backlog = self._backlog
        while backlog and not self.stopping:
            if self._waiting >= ahead:
                await self._queue_below(ahead - 1)
                continue
            for _ in range(min(FEED_CHUNK, ahead - self._waiting)):
                if not backlog:
                    break
                incident_id = next(iter(backlog))
                del backlog[incident_id]
                self.wake(incident_id)
            self._depth()
            await asyncio.sleep(0)          # the woken runs take their place in the queue

    def _depth(self) -> None:
        """``remediator_queue_depth``: runs waiting for a slot and the resumed backlog."""
        self.metrics.queue_depth.set(self._waiting + len(self._backlog))
        if self._rooms:
            waiting = self._waiting
            for most, room in self._rooms:
                if waiting <= most and not room.done():
                    room.set_result(None)
            self._rooms = [(most, room) for most, room in self._rooms if not room.done()]

    def wake(self, incident_id: str, lane: str = RESUMED) -> None:
        """Start the incident's run (waiting for a slot in ``lane``: its playbook, for
        what the intake opens), or end its current wait."""
        if self.stopping:
            return
        self._backlog.pop(incident_id, None)        # woken before its turn: no second run
        if incident_id in self.parking:
            self._lanes[incident_id] = self.parking.take(incident_id)
        self._lanes.setdefault(incident_id, lane)
        event = self._wakes.get(incident_id)
        if event is None:
            event = self._wakes[incident_id] = WakeEvent()
        event.set()
        task = self._runs.get(incident_id)
        if task is None or task.done():
            self._runs[incident_id] = self.tasks.start(self._run(incident_id),
                                                       name=f"incident-{incident_id}")

    def wake_if_running(self, incident_id: str) -> None:
        """A wake from another replica: only a run held here needs it (the scan picks
        up incidents nobody holds)."""
        if incident_id in self._runs or incident_id in self.parking:
            self.wake(incident_id)

    async def _scan(self) -> None:
        """Claim incidents nobody works on (new on another replica, or whose replica
        died), as many as the queue for working slots has room for (BACKLOG_AHEAD runs
        per slot, as for the resumed backlog). A run that waits (an approval, a
        verification) holds no slot, so waits do not stop the scan: ``max_parallel -
        running`` did, and a replica restarted after a SIGKILL took up 32 of the 10,000
        waiting incidents its predecessor's leases had held. A full batch looks again
        once half of that queue has taken its slots, not a scan interval later."""
        cfg = self.settings
        while not self.stopping:
            full = False
            try:
                free = self._backlog_ahead - self._waiting - len(self._backlog)
                if free > 0:
                    claimed = await self.store.claim_batch(self.owner, self.clock.now(),
                                                           cfg.lease, free)
                    for incident_id in claimed:
                        self.wake(incident_id)
                    full = len(claimed) == free
            except Exception:
                log.exception("looking for unclaimed incidents failed; trying again")
            if full:
                await asyncio.sleep(0)      # the woken runs take their place in the queue
                await self._queue_below(self._backlog_ahead // 2)
            else:
                await self.clock.sleep(cfg.scan_interval)

    async def _queue_below(self, n: int) -> None:
        """Until at most ``n`` runs wait for a working slot (``_depth`` tells)."""
        loop = asyncio.get_running_loop()
        while self._waiting > n and not self.stopping:
            room: asyncio.Future[None] = loop.create_future()
            self._rooms.append((n, room))
            await room

    def _lost_lease(self, incident_id: str) -> None:
        """Another replica took an incident held here: its run stops at its next wait,
        its parked wait is forgotten."""
        self._lost.add(incident_id)
        self.parking.drop(incident_id)
        event = self._wakes.get(incident_id)
        if event is not None:
            event.set()

    async def _run(self, incident_id: str) -> None:
        slot = Slot(self.slots, self._lanes.pop(incident_id, RESUMED))
        self._waiting += 1
        self._depth()
        ended = _RunEnd.HELD_ELSEWHERE
        try:
            try:
                await slot.take()
            finally:
                self._waiting -= 1
                self._depth()
            ended = await self._run_claimed(incident_id, slot)
        finally:
            slot.give()
            if self._runs.get(incident_id) is asyncio.current_task():
                del self._runs[incident_id]
                event = self._wakes.pop(incident_id, None)
                if ended == _RunEnd.PARKED:
                    if self.parking.run_ended(incident_id):
                        self.wake(incident_id, slot.lane)   # woken while it parked
                elif ended == _RunEnd.CRASHED:
                    self._rewake_later(incident_id)
                elif ended == _RunEnd.DONE and event is not None and event.is_set():
                    self.wake(incident_id, slot.lane)   # woken while the run was ending

    async def _run_claimed(self, incident_id: str, slot: Slot) -> _RunEnd:
        resume = self.parking.resume(incident_id)
        # A lease only where replicas share the store. With one process on the file
        # (SQLite) ``_runs`` already keeps one run per incident, and a lease, a write as
        # the run starts and one as it ends, protected against nobody (``release_all``
        # clears them all at start anyway).
        if self.leases is not None and not await self.leases.claim(incident_id):
            log.debug("incident held by another replica", extra={"incident": incident_id})
            return _RunEnd.HELD_ELSEWHERE
        self._lost.discard(incident_id)
        event = self._wakes[incident_id]
        self.metrics.incidents_running.inc()
        ended = _RunEnd.DONE
        try:
            while not self.stopping:
                event.clear()
                try:
                    await IncidentRun(self.deps, incident_id, event, slot, resume).run()
                    self._crashes.pop(incident_id, None)
                except Parked as parked:
                    if not self.stopping:       # else the journal has it: resumed on start
                        self.parking.hold(parked.parked, slot.lane)
                    ended = _RunEnd.PARKED
                    break
                except Exception:
                    log.exception("incident run crashed", extra={"incident": incident_id})
                    ended = _RunEnd.CRASHED
                    break
                resume = None
                if not event.is_set() or self.lost(incident_id):
                    break
        finally:
            self.metrics.incidents_running.dec()
            # a parked wait keeps its lease; a lost one is not ours to release
            if self.leases is not None and incident_id not in self.parking:
                try:
                    await self.leases.release([incident_id])
                except Exception:
                    log.exception("releasing the lease failed", extra={"incident": incident_id})
        if ended == _RunEnd.PARKED:
            return ended
        return ended if not (self.stopping or self.lost(incident_id)) else _RunEnd.HELD_ELSEWHERE

    def _rewake_later(self, incident_id: str) -> None:
        """A run crashed (a store error, a bug): log it and try again after a backoff,
        so the incident is never left "remediating" until some later alert."""
        n = self._crashes[incident_id] = self._crashes.get(incident_id, 0) + 1
        delay = min(self.settings.retry_max, self.settings.retry_base * 2 ** (n - 1))
        log.warning("incident run crashed; trying again in %gs", delay,
                    extra={"incident": incident_id})

        async def later() -> None:
            await self.clock.sleep(delay)
            self.wake(incident_id)
        self.tasks.start(later(), name=f"rewake-{incident_id}")

    async def acknowledge(self, incident_id: str, who: str, *, via: str = "api") -> Handoff:
        """A human takes the incident: the escalation chain stops, and no automated action
        runs on its target until it is resolved or ``release``d. Journaled with ``who``
        and when (MTTA). Idempotent (``Handoff.already``); raises ``HandoffError``
        (``not_found``, ``closed``)."""
        return await self.handoffs.acknowledge(incident_id, who, via=via)

    async def release(self, incident_id: str, who: str, *, via: str = "api") -> Handoff:
        """Undo an acknowledgement: automation may act on the target again, and an
        escalated incident's on-call chain pages again from its first level. Raises
        ``HandoffError`` (``not_found``, ``closed``, ``not_acknowledged``)."""
        done = await self.handoffs.release(incident_id, who, via=via)
        view = await self.store.get_incident(incident_id, alert_limit=1)
        pb = self.playbooks.get(view.playbook) if view is not None else None
        if view is not None and pb is not None and view.state == IncidentState.ESCALATED:
            for esc in pb.spec.escalate:
                if esc.policy is not None and esc.policy in self.chains.policies:
                    await self.chains.restart(incident_id, esc.policy)
        return done

    async def refresh_gauges(self) -> None:
        """Gauges the store knows best (several replicas share it), read when scraped,
        at most every ``GAUGE_TTL`` seconds."""
        now = self.clock.now().timestamp()
        if now - self._gauges_at < GAUGE_TTL:
            return
        self._gauges_at = now
        self.metrics.incidents_open.set(await self.store.count_open_incidents())

    @property
    def running(self) -> int:
        """Incidents the engine works on: runs in progress and parked waits."""
        return len({i for i, t in self._runs.items() if not t.done()} | self.parking.ids())

    @property
    def parked(self) -> int:
        """Incidents waiting as data (no task): approvals awaited."""
        return len(self.parking)

    async def idle(self) -> None:
        """Wait until no incident run is in progress nor parked (tests and the demo)."""
        while True:
            tasks = [t for t in self._runs.values() if not t.done()]
            if self._feeder is not None and not self._feeder.done():
                tasks.append(self._feeder)           # resumed incidents still to start
            if tasks:
                await asyncio.wait(tasks)
            elif len(self.parking) and not self.stopping:
                await self.parking.any_woken()
            else:
                return

    async def stop(self, grace: float = 20.0) -> None:
        """Stop taking work; let in-flight calls finish within ``grace`` seconds."""
        self.stopping = True
        self.chains.stopping = True
        for event in self._wakes.values():
            event.set()
        parked = self.parking.stop()            # the journal has them: resumed on start
        runs = [t for t in self._runs.values() if not t.done()]
        if runs:
            _, pending = await asyncio.wait(runs, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                log.warning("%d incident runs were cut at shutdown; they resume from the "
                            "journal on the next start", len(pending))
        if self.leases is not None and parked:   # another replica may take them up now
            try:
                await self.leases.release(parked)
            except Exception:
                log.exception("releasing the leases of %d parked waits failed; they run "
                              "out in %gs", len(parked), self.settings.lease)
        await self.notifications.stop()
        await self.tasks.close()
