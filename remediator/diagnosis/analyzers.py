"""The analyzers: each a small pure function ``Snapshot → list[Finding]``.

No I/O and no clock: "recent" is measured against the first alert's ``startsAt``
(or, with no alert, the snapshot's ``taken_at``). ``analyze`` runs them all, in
the order of ``ANALYZERS``, and drops duplicate ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from remediator.diagnosis.snapshot import Container, Finding, Pod, Revision, Snapshot
from remediator.model.durations import human_duration

Analyzer = Callable[[Snapshot], list[Finding]]
PULL_ERRORS = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")
#: at most this many findings of one kind (a 300-pod Deployment crash-looping is one story)
PER_KIND = 5


def first_alert_at(snap: Snapshot) -> datetime:
    starts = [a.starts_at for a in snap.alerts if a.starts_at is not None]
    return min(starts) if starts else snap.taken_at


def _alert_name(snap: Snapshot) -> str:
    dated = sorted((a for a in snap.alerts if a.starts_at), key=lambda a: a.starts_at or 0)
    return dated[0].name if dated else ""


def _restart(new: Revision, old: Revision) -> bool:
    """Only the restartedAt annotation changed: a restart (``kubectl rollout restart``,
    or remediator's own), not a change of what runs."""
    return (new.images == old.images and new.config_hashes == old.config_hashes
            and new.restarted_at != old.restarted_at)


def _recent(snap: Snapshot) -> tuple[Revision, Revision | None, float] | None:
    """The newest revision that changed what runs (restarts skipped), if it was created
    within the window before the first alert; the one before it; and how long before
    the alert it was created."""
    revs = sorted((r for r in snap.revisions if r.number > 0), key=lambda r: r.number)
    while len(revs) > 1 and _restart(revs[-1], revs[-2]):
        revs.pop()
    if not revs or revs[-1].created is None:
        return None
    newest = revs[-1]
    assert newest.created is not None
    before = (first_alert_at(snap) - newest.created).total_seconds()
    if before < 0 or before > snap.window_seconds:
        return None
    return newest, (revs[-2] if len(revs) > 1 else None), before


def _when(seconds: float, snap: Snapshot) -> str:
    name = _alert_name(snap)
    return (f"{human_duration(seconds)} before the first alert"
            + (f" ({name})" if name else ""))


def recent_rollout(snap: Snapshot) -> list[Finding]:
    found = _recent(snap)
    if found is None:
        return []
    new, old, before = found
    changes = []
    if old is not None and old.images != new.images:
        changes.append(f"image {', '.join(old.images)} → {', '.join(new.images)}")
    if old is not None and old.config_hashes != new.config_hashes:
        changes.append("config hash changed")
    what = "; ".join(changes) or "pod template changed"
    rev = f"revision {old.number} → {new.number}" if old else f"revision {new.number}"
    summary = f"rollout of {snap.target.name}: {what} ({rev}), {_when(before, snap)}"
    evidence = tuple(r.ref for r in (old, new) if r is not None)
    return [Finding(f"recent_rollout:{new.name}", "recent_rollout", summary, evidence,
                    {"before": list(old.images) if old else None, "after": list(new.images),
                     "from_revision": old.number if old else None, "to_revision": new.number,
                     "seconds_before_alert": before})]


def config_changed(snap: Snapshot) -> list[Finding]:
    found = _recent(snap)
    if found is None or found[1] is None or found[0].config_hashes == found[1].config_hashes:
        return []
    new, old, before = found
    assert old is not None
    keys = sorted(set(new.config_hashes) | set(old.config_hashes))
    diffs = [f"{k} {old.config_hashes.get(k, '(none)')} → {new.config_hashes.get(k, '(none)')}"
             for k in keys if old.config_hashes.get(k) != new.config_hashes.get(k)]
    return [Finding(f"config_changed:{new.name}", "config_changed",
                    f"config of {snap.target.name} changed: {'; '.join(diffs)} "
                    f"(revision {old.number} → {new.number}), {_when(before, snap)}",
                    (old.ref, new.ref), {"changes": diffs})]


def _containers(snap: Snapshot) -> Iterable[tuple[Pod, Container]]:
    for pod in snap.pods:
        for c in pod.containers:
            yield pod, c


def _capped(findings: list[Finding]) -> list[Finding]:
    return findings[:PER_KIND]


def oom_killed(snap: Snapshot) -> list[Finding]:
    out = []
    for pod, c in _containers(snap):
        if c.last_reason == "OOMKilled":
            limit = f"memory limit {c.memory_limit}" if c.memory_limit else "no memory limit set"
            out.append(Finding(f"oom_killed:{pod.name}/{c.name}", "oom_killed",
                               f"container {c.name} of pod {pod.name} was OOMKilled "
                               f"({limit}; {c.restarts} restarts)", (pod.ref,),
                               {"pod": pod.name, "container": c.name, "limit": c.memory_limit,
                                "restarts": c.restarts}))
    return _capped(out)


def crash_loop(snap: Snapshot) -> list[Finding]:
    out = []
    for pod, c in _containers(snap):
        if c.waiting_reason != "CrashLoopBackOff":
            continue
        code = f"exit code {c.last_exit_code}" if c.last_exit_code is not None else "exit code ?"
        reason = f" ({c.last_reason})" if c.last_reason else ""
        log = f"; last log line: {c.previous_log_line!r}" if c.previous_log_line else ""
        out.append(Finding(f"crash_loop:{pod.name}/{c.name}", "crash_loop",
                           f"container {c.name} of pod {pod.name} is in CrashLoopBackOff: "
                           f"{code}{reason}, {c.restarts} restarts{log}", (pod.ref,),
                           {"pod": pod.name, "container": c.name, "exit_code": c.last_exit_code,
                            "log_line": c.previous_log_line, "restarts": c.restarts}))
    return _capped(out)


def image_pull_failed(snap: Snapshot) -> list[Finding]:
    out = []
    for pod, c in _containers(snap):
        if c.waiting_reason in PULL_ERRORS:
            detail = f": {c.waiting_message}" if c.waiting_message else ""
            out.append(Finding(f"image_pull_failed:{pod.name}/{c.name}", "image_pull_failed",
                               f"pod {pod.name} cannot pull image {c.image} "
                               f"({c.waiting_reason}){detail}", (pod.ref,),
                               {"pod": pod.name, "container": c.name, "image": c.image}))
    return _capped(out)


def readiness_failing(snap: Snapshot) -> list[Finding]:
    """Running pods whose containers run (not waiting) but are not ready."""
    out = []
    for pod in snap.pods:
        if pod.phase != "Running" or pod.ready:
            continue
        if any(c.waiting_reason for c in pod.containers):
            continue                   # crash loop or pull failure: said by those analyzers
        names = [c.name for c in pod.containers if not c.ready]
        warnings = [e.message for e in snap.events
                    if e.ref == pod.ref and e.reason == "Unhealthy"][-1:]
        probe = f"; {warnings[0]}" if warnings else ""
        out.append(Finding(f"readiness_failing:{pod.name}", "readiness_failing",
                           f"pod {pod.name} is running but not ready "
                           f"(containers {', '.join(names) or '?'}){probe}", (pod.ref,),
                           {"pod": pod.name, "containers": names}))
    return _capped(out)


def pod_pending(snap: Snapshot) -> list[Finding]:
    out = []
    for pod in snap.pods:
        if pod.phase != "Pending" or (pod.containers and any(c.waiting_reason in PULL_ERRORS
                                                            for c in pod.containers)):
            continue
        if not pod.scheduled:
            why = f"{pod.scheduled_reason or 'Unschedulable'}: {pod.scheduled_message or ''}"
        else:
            why = "scheduled, containers not started"
        out.append(Finding(f"pod_pending:{pod.name}", "pod_pending",
                           f"pod {pod.name} is Pending: {why.rstrip(': ')}", (pod.ref,),
                           {"pod": pod.name, "reason": pod.scheduled_reason,
                            "message": pod.scheduled_message}))
    return _capped(out)


def _pods_on(snap: Snapshot, node: str) -> list[str]:
    return sorted(p.name for p in snap.pods if p.node == node)


def node_not_ready(snap: Snapshot) -> list[Finding]:
    out = []
    for node in snap.nodes:
        pods = _pods_on(snap, node.name)
        if node.ready or not pods:
            continue
        detail = f" ({node.ready_message})" if node.ready_message else ""
        out.append(Finding(f"node_not_ready:{node.name}", "node_not_ready",
                           f"node {node.name} is NotReady{detail}; target pods on it: "
                           f"{', '.join(pods)}", (node.ref,), {"node": node.name, "pods": pods}))
    return out


def node_pressure(snap: Snapshot) -> list[Finding]:
    out = []
    for node in snap.nodes:
        pods = _pods_on(snap, node.name)
        if not node.pressures or not pods:
            continue
        out.append(Finding(f"node_pressure:{node.name}", "node_pressure",
                           f"node {node.name} has {', '.join(node.pressures)}; target pods on "
                           f"it: {', '.join(pods)}", (node.ref,),
                           {"node": node.name, "pressures": list(node.pressures), "pods": pods}))
    return out


def hpa_at_max(snap: Snapshot) -> list[Finding]:
    h = snap.hpa
    if h is None or h.max_replicas <= 0 or max(h.current, h.desired) < h.max_replicas:
        return []
    return [Finding(f"hpa_at_max:{h.name}", "hpa_at_max",
                    f"HPA {h.name} is at its maximum: {h.current} of maxReplicas "
                    f"{h.max_replicas} (wants {h.desired})", (h.ref,),
                    {"hpa": h.name, "current": h.current, "max": h.max_replicas})]


def pdb_blocking(snap: Snapshot) -> list[Finding]:
    return [Finding(f"pdb_blocking:{p.name}", "pdb_blocking",
                    f"PodDisruptionBudget {p.name} allows no disruption "
                    f"({p.current_healthy} healthy, {p.desired_healthy} required): evictions "
                    "and drains of the target's pods are blocked", (p.ref,),
                    {"pdb": p.name, "healthy": p.current_healthy, "required": p.desired_healthy})
            for p in snap.pdbs if p.disruptions_allowed <= 0 and p.expected_pods > 0]


def replicas_below_desired(snap: Snapshot) -> list[Finding]:
    want = snap.desired_replicas
    if want is None or snap.ready_replicas >= want:
        return []
    t = snap.target
    return [Finding(f"replicas_below_desired:{t.name}", "replicas_below_desired",
                    f"{t.kind} {t.name} has {snap.ready_replicas} of {want} replicas ready",
                    (f"{t.kind} {t.namespace}/{t.name}",),
                    {"ready": snap.ready_replicas, "desired": want})]


ANALYZERS: tuple[Analyzer, ...] = (
    recent_rollout, config_changed, oom_killed, crash_loop, image_pull_failed,
    readiness_failing, pod_pending, node_not_ready, node_pressure, hpa_at_max, pdb_blocking,
    replicas_below_desired)


def analyze(snap: Snapshot) -> list[Finding]:
    """Every analyzer's findings, in order, each id once."""
    seen: set[str] = set()
    out: list[Finding] = []
    for analyzer in ANALYZERS:
        for f in analyzer(snap):
            if f.id not in seen:
                seen.add(f.id)
                out.append(f)
    return out
