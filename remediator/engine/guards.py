"""Guards: the rules that keep remediation from making an outage worse.

At the start of an incident: the target's namespace must be allowed, the
playbook's cooldown must have passed since the last incident on the same
target that acted, and ``max_runs_per_hour`` must not be spent. Before every
step that changes the cluster: automation must not be paused (the kill switch,
global or for the target's cluster), and the target's cluster's action budget must
have room — when it is spent, automation in that cluster pauses itself (a
"remediation storm") and only the incident that tripped it escalates, once. Each
cluster (the default one is ``''``) has its own budget; a storm in one never
pauses another.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from remediator.clock import Clock
from remediator.engine.contract import ActionSpec, Intent
from remediator.engine.outcomes import Refused
from remediator.metrics import Metrics
from remediator.model.durations import human_duration
from remediator.model.incident import IncidentView, TargetRef
from remediator.model.playbook import Playbook
from remediator.model.records import GLOBAL_PAUSE, pause_flag
from remediator.ports.store import Store


@dataclass(frozen=True)
class PauseState:
    kind: str          # "manual" (the kill switch) or "budget" (a remediation storm)
    reason: str
    by: str
    at: str
    cluster: str | None = None     # None: every cluster; "": the default one; or a name


class Guards:
    def __init__(self, store: Store, clock: Clock, metrics: Metrics, *,
                 allow_namespaces: tuple[str, ...] = (), deny_namespaces: tuple[str, ...] = (),
                 action_budget: int = 20, action_budget_window: float = 600.0,
                 holder: Callable[[TargetRef | None], Awaitable[dict[str, Any] | None]]
                 | None = None, clusters: tuple[str, ...] = ()) -> None:
        self.store = store
        self.holder = holder
        self.clock = clock
        self.metrics = metrics
        self.allow_namespaces = allow_namespaces
        self.deny_namespaces = deny_namespaces
        self.action_budget = action_budget
        self.action_budget_window = action_budget_window
        self.clusters = clusters          # the named clusters (besides the default one)

    async def at_start(self, view: IncidentView, pb: Playbook) -> Refused | None:
        """Whether the incident may be remediated at all; a refusal escalates."""
        held = await self.hold_refusal(view)
        if held is not None:
            return held
        why = await self._start_refusal(view, pb)
        return None if why is None else Refused(*why, escalate=True)

    async def hold_refusal(self, view: IncidentView) -> Refused | None:
        """Humans acknowledged an incident on this target (this one or another): no
        automated action on it until that incident is resolved or released. The
        acknowledged incident itself is handed over without paging again."""
        if self.holder is None:
            return None
        hold: dict[str, Any] | None
        if view.target is None:           # no target to hold: this incident's own ack
            fresh = await self.store.get_incident(view.id, alert_limit=1)
            ack = fresh.context.get("ack") if fresh is not None else None
            hold = ({"incident": view.id, "by": ack["by"]}
                    if isinstance(ack, dict) and ack.get("by") else None)
        else:
            hold = await self.holder(view.target)
        if hold is None:
            return None
        mine = hold.get("incident") == view.id
        what = "this incident" if mine else f"incident {hold.get('incident')}"
        return Refused("acknowledged", f"{view.target or 'the target'} is in human hands: "
                                       f"{what} was acknowledged by {hold.get('by')}; no "
                                       "automated action until it is resolved or released",
                       escalate=True, run_escalation=not mine)

    async def _start_refusal(self, view: IncidentView, pb: Playbook) -> tuple[str, str] | None:
        now = self.clock.now()
        if view.target is not None and view.target.cluster \
                and view.target.cluster not in self.clusters:
            known = ", ".join(self.clusters) or "none"
            return "cluster", (f"unknown cluster {view.target.cluster!r} for {view.target} "
                               f"(kubernetes.clusters names: {known})")
        if view.target is not None and not view.target.namespace:
            if self.allow_namespaces:     # a Node: cordon and drain reach every namespace
                return "namespace", (f"{view.target} is cluster-scoped: acting on it reaches "
                                     "pods of every namespace, beyond the namespace allow list")
        elif view.target is not None:
            why = self.namespace_words(view.target.namespace)
            if why is not None:
                return "namespace", why
        cooldown = pb.spec.guards.cooldown
        if cooldown:
            last = await self.store.last_closed_at(view.key, acted_only=True)
            if last is not None and (now - last).total_seconds() < cooldown:
                ago = (now - last).total_seconds()
                return "cooldown", (f"remediation on {view.target or view.key} ended "
                                    f"{human_duration(ago)} ago, within the cooldown of "
                                    f"{human_duration(cooldown)}: the problem came back, a "
                                    "human should look")
        limit = pb.spec.guards.max_runs_per_hour
        if limit is not None:
            runs = await self.store.runs_since(view.key, now - timedelta(hours=1))
            if runs >= limit:
                return "max_runs_per_hour", (f"{runs} remediation runs on "
                                             f"{view.target or view.key} in the last hour "
                                             f"(limit {limit})")
        return None

    def namespace_words(self, ns: str) -> str | None:
        """Why the namespace policy forbids acting in ``ns``; None when it allows it."""
        if ns in self.deny_namespaces:
            return f"namespace {ns!r} is on the deny list"
        if self.allow_namespaces and ns not in self.allow_namespaces:
            return f"namespace {ns!r} is not on the allow list"
        return None

    def intent_refusal(self, intent: Intent) -> tuple[Refused, dict[str, Any]] | None:
        """A planned intent that would change objects (besides its target) in namespaces
        the policy forbids — a drain evicting a ``kube-system`` pod — is refused whole,
        before anything is journaled as intended or done; with the journal's data (the
        first such object's ``namespace`` and its kind, e.g. ``pod``, and every one)."""
        bad = [(t, why) for t in intent.touches
               if (why := self.namespace_words(t.namespace)) is not None]
        if not bad:
            return None
        first = bad[0][0]
        listed = "; ".join(f"{t.kind} {t.namespace}/{t.name} ({why})" for t, why in bad)
        reason = (f"{intent.action} would change {listed}: the namespace policy forbids it, "
                  "nothing was done")
        data: dict[str, Any] = {"namespace": first.namespace, first.kind.lower(): first.name,
                                "objects": [f"{t.kind} {t.namespace}/{t.name}" for t, _ in bad]}
        return Refused("namespace", reason, escalate=True), data

    async def before_step(self, view: IncidentView, spec: ActionSpec,
                          dry_run: bool) -> Refused | None:
        """Whether a step may act. A refusal here escalates at once (the kill switch or a
        spent budget); the escalation actions run for a storm once (the incident that
        tripped it), and for every incident a manual pause refuses (humans turned the
        robot off: they handle it). A target humans acknowledged refuses every step."""
        held = await self.hold_refusal(view)
        if held is not None:
            return held
        if not spec.mutates_cluster or dry_run:
            return None
        cluster = view.target.cluster if view.target is not None else ""
        now = self.clock.now()
        since = now - timedelta(seconds=self.action_budget_window)
        where = f" in cluster {cluster}" if cluster else ""
        pause = json.dumps({"kind": "budget", "by": "remediator", "at": now.isoformat(),
                            "reason": f"action budget{where} spent: {self.action_budget} "
                                      f"actions in {self.action_budget_window:g}s"})
        verdict = await self.store.reserve_action(view.id, spec.name, now, since,
                                                  self.action_budget, pause, cluster)
        if verdict == "ok":
            return None
        if verdict == "tripped":
            self.metrics.automation_paused.set(1)
            scope = f"in cluster {cluster}" if cluster else "in the default cluster"
            return Refused("budget", f"remediation storm: the action budget {scope} "
                                     f"({self.action_budget} actions per "
                                     f"{human_duration(self.action_budget_window)}) is "
                                     f"spent; automation {scope} is paused until resumed",
                           escalate=True)
        state = await self.paused(cluster)
        reason = state.reason if state else "paused"
        return Refused("paused", f"automation is paused ({reason})", escalate=True,
                       run_escalation=state is None or state.kind != "budget")

    def cluster_names(self) -> tuple[str, ...]:
        """Every cluster a target may name: ``''`` (the default one), then the named ones."""
        return ("", *self.clusters)

    async def paused(self, cluster: str | None = "") -> PauseState | None:
        """The pause in effect for ``cluster``: the global kill switch first, else the
        cluster's own (a manual pause of that cluster, or its spent budget). ``None``:
        the global kill switch only."""
        for flag in (GLOBAL_PAUSE,) if cluster is None else (GLOBAL_PAUSE, pause_flag(cluster)):
            raw = await self.store.get_flag(flag)
            if raw is not None:
                data = json.loads(raw)
                return PauseState(kind=data.get("kind", "manual"),
                                  reason=data.get("reason", ""), by=data.get("by", ""),
                                  at=data.get("at", ""),
                                  cluster=None if flag == GLOBAL_PAUSE else cluster)
        return None

    async def pause(self, reason: str, by: str, now: datetime,
                    cluster: str | None = None) -> None:
        """The kill switch: every cluster (``cluster=None``) or one."""
        flag = GLOBAL_PAUSE if cluster is None else pause_flag(cluster)
        await self.store.set_flag(flag, json.dumps(
            {"kind": "manual", "reason": reason, "by": by, "at": now.isoformat()}))
        self.metrics.automation_paused.set(1)

    async def resume(self, cluster: str | None = None) -> None:
        """Lift the pause of one cluster, or (``None``) every pause: the global kill
        switch and each cluster's (manual or a spent budget)."""
        flags = [pause_flag(cluster)] if cluster is not None else \
            [GLOBAL_PAUSE, *(pause_flag(c) for c in self.cluster_names())]
        for flag in flags:
            await self.store.set_flag(flag, None)
        self.metrics.automation_paused.set(1 if await self.any_paused() else 0)

    async def any_paused(self) -> bool:
        for cluster in self.cluster_names():
            if await self.paused(cluster) is not None:
                return True
        return False
