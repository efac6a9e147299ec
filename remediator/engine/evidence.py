"""Evidence from the cluster: the logs and events of the target's failing pods.

Collected when an incident escalates, and after a step whose playbook entry says
``collect: [logs, events]``: for up to ``max_pods`` failing pods of the target
(crash-looping first, then the most restarted; a pod is failing when a container is
not ready, is waiting or has restarted), the last ``log_lines`` lines of each
container's current and previous instance (``kubectl logs [--previous] --tail``),
capped at ``log_bytes`` per pod (the end of the log is kept: that is where a crash
is), with the ``redact`` patterns' matches replaced by ``[REDACTED]``; and the
events of those pods and of the target. Stored with the incident (its latest
``max_items``), never in the incident's context (which every notification carries).

Reading the cluster is best effort: what cannot be read is reported in the timeline,
and the escalation goes on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from remediator.errors import ActionError
from remediator.model.incident import EvidenceItem, TargetRef
from remediator.ports.cluster import ClusterApi, KubeObject, selector_string
from remediator.settings import EvidenceSettings

if TYPE_CHECKING:
    from remediator.engine.run import Run

log = logging.getLogger("remediator.engine")

REDACTED = "[REDACTED]"
#: event lines kept per object
EVENTS_KEPT = 20


@dataclass
class Collected:
    items: list[EvidenceItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        logs = [i for i in self.items if i.kind == "logs"]
        pods = len({i.pod for i in logs})
        redacted = sum(i.redacted for i in self.items)
        text = (f"collected {len(logs)} log{'s' if len(logs) != 1 else ''} of {pods} failing "
                f"pod{'s' if pods != 1 else ''} and "
                f"{sum(i.kind == 'events' for i in self.items)} event lists")
        if redacted:
            text += f" ({redacted} secret{'s' if redacted != 1 else ''} redacted)"
        if self.problems:
            text += "; could not read: " + "; ".join(self.problems[:3])
        return text


class Redactor:
    """Replaces every match of the patterns; a pattern's first group is kept."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = [re.compile(p) for p in patterns]

    def __call__(self, text: str) -> tuple[str, int]:
        count = 0

        def blank(m: re.Match[str]) -> str:
            nonlocal count
            count += 1
            return (m.group(1) or "") + REDACTED if m.re.groups else REDACTED

        for pattern in self.patterns:
            text = pattern.sub(blank, text)
        return text, count


def _statuses(pod: KubeObject) -> list[dict[str, Any]]:
    return list((pod.get("status") or {}).get("containerStatuses") or [])


def failing(pod: KubeObject) -> bool:
    statuses = _statuses(pod)
    return not statuses or any(not cs.get("ready") or "waiting" in (cs.get("state") or {})
                               or int(cs.get("restartCount") or 0) > 0 for cs in statuses)


def _rank(pod: KubeObject) -> tuple[int, int, str]:
    statuses = _statuses(pod)
    waiting = any("waiting" in (cs.get("state") or {}) for cs in statuses)
    restarts = sum(int(cs.get("restartCount") or 0) for cs in statuses)
    return (0 if waiting else 1, -restarts, pod["metadata"]["name"])


async def _pods(cluster: ClusterApi, target: TargetRef) -> list[KubeObject]:
    if target.kind == "Pod":
        pod = await cluster.read_pod(target.namespace, target.name)
        return [pod] if pod else []
    obj = await cluster.read_workload(target)
    return await cluster.list_pods(target.namespace,
                                   selector_string((obj.get("spec") or {}).get("selector")))


class Collector:
    def __init__(self, cluster: ClusterApi, cfg: EvidenceSettings) -> None:
        self.cluster = cluster
        self.cfg = cfg
        self.redact = Redactor(cfg.redact)

    async def collect(self, target: TargetRef, *, what: Sequence[str], moment: str,
                      now: datetime) -> Collected:
        out = Collected()
        try:
            pods = sorted((p for p in await _pods(self.cluster, target) if failing(p)),
                          key=_rank)[:self.cfg.max_pods]
        except ActionError as exc:
            out.problems.append(f"the pods of {target}: {exc}")
            return out
        for pod in pods:
            if "logs" in what:
                await self._logs(pod, moment, now, out)
            if "events" in what:
                await self._events(target.namespace, "Pod", pod["metadata"]["name"], moment,
                                   now, out)
        if "events" in what and target.kind != "Pod":
            await self._events(target.namespace, target.kind, target.name, moment, now, out)
        return out

    async def _logs(self, pod: KubeObject, moment: str, now: datetime,
                    out: Collected) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        budget = self.cfg.log_bytes
        terminated = {cs.get("name") for cs in _statuses(pod)
                      if (cs.get("lastState") or {}).get("terminated")}
        for container in (pod.get("spec") or {}).get("containers") or []:
            cname = container["name"]
            for previous in (False, True):
                if budget <= 0 or (previous and cname not in terminated):
                    continue
                try:
                    text = await self.cluster.read_pod_log(
                        ns, name, container=cname, previous=previous,
                        tail_lines=self.cfg.log_lines, limit_bytes=self.cfg.log_bytes)
                except ActionError as exc:
                    out.problems.append(f"logs of {ns}/{name} {cname}: {exc}")
                    continue
                if text is None:
                    continue
                data = text.encode()
                cut = len(data) > budget or len(data) >= self.cfg.log_bytes
                data = data[-budget:]
                budget -= len(data)
                clean, count = self.redact(data.decode("utf-8", "replace"))
                out.items.append(EvidenceItem(
                    at=now, kind="logs", moment=moment, namespace=ns, pod=name,
                    container=cname, previous=previous, text=clean, truncated=cut,
                    redacted=count))

    async def _events(self, ns: str, kind: str, name: str, moment: str, now: datetime,
                      out: Collected) -> None:
        try:
            lines = await self.cluster.object_events(ns, kind, name)
        except ActionError as exc:
            out.problems.append(f"events of {kind} {ns}/{name}: {exc}")
            return
        clean, count = self.redact("\n".join(lines[-EVENTS_KEPT:]))
        out.items.append(EvidenceItem(at=now, kind="events", moment=moment, namespace=ns,
                                      pod=name, object_kind=kind, text=clean, redacted=count))


async def gather(run: Run, what: Sequence[str], moment: str) -> None:
    """Collect for the run's incident, store it, and say what was collected in the
    timeline. Nothing without a cluster or a target."""
    target = run.view.target
    cluster = run.deps.ports.cluster_for(target)        # the target's own cluster
    if cluster is None or target is None or not what:
        return
    cfg = run.deps.settings.evidence
    try:
        got = await Collector(cluster, cfg).collect(target, what=what, moment=moment,
                                                    now=run.clock.now())
    except Exception as exc:    # a bug here must not hold up the escalation
        log.exception("collecting evidence for %s failed", target, extra={"incident": run.id})
        await run.journal.note("evidence", f"{moment}: could not collect: "
                                           f"{type(exc).__name__}: {exc}")
        return
    if got.items:
        await run.deps.store.add_evidence(run.id, got.items, keep=cfg.max_items)
    await run.journal.note("evidence", f"{moment}: {got.summary()}",
                           items=len(got.items), problems=got.problems[:10])
