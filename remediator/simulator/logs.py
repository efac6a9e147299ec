"""Pod logs: ``GET /api/v1/namespaces/{ns}/pods/{name}/log``, as the kubelet serves it.

Query parameters (kubectl's contract): ``container`` (required when the pod has more
than one), ``previous=true`` (the last terminated container; 400 when there is none),
``tailLines``, ``limitBytes`` (the first bytes of what would be sent), ``timestamps``.
The body is plain text.

The content is deterministic (a function of the pod, the container, its restart count
and the simulator's clock): a healthy container logs startup and served requests; a
crash-looping one (bad image) logs its startup, a configuration dump that carries
secrets (for redaction tests) and a Go panic, in its current and previous instance.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from remediator.simulator.store import ApiError, Obj

PANIC = "panic: runtime error: invalid memory address or nil pointer dereference"
#: secrets a crash-looping container prints in its configuration dump
SECRETS = ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.c2ltdWxhdG9y.c2lnbmF0dXJl",
           "password=hunter2-simulated", "AKIAIOSFODNN7SIMULAT")


def _int(name: str, raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name}: Invalid value: {raw!r}: must be an integer") from None
    if value < (0 if name == "tailLines" else 1):
        raise ApiError(400, f"{name}: Invalid value: {value}: must be greater than "
                       f"{'or equal to 0' if name == 'tailLines' else '0'}")
    return value


def _container(pod: Obj, wanted: str | None) -> Obj:
    name = pod["metadata"]["name"]
    containers = pod["spec"].get("containers") or []
    if wanted is None:
        if len(containers) != 1:
            names = " ".join(c["name"] for c in containers)
            raise ApiError(400, f"a container name must be specified for pod {name}, "
                           f"choose one of: [{names}]")
        return dict(containers[0])
    for c in containers:
        if c["name"] == wanted:
            return dict(c)
    raise ApiError(400, f"container {wanted} is not valid for pod {name}")


def _status(pod: Obj, container: str) -> Obj:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            return dict(cs)
    return {}


def _lines(pod: Obj, container: Obj, *, crashing: bool, instance: int,
           start: datetime, end: datetime, last: str | None = None) -> list[tuple[datetime, str]]:
    """The log of one run of a container, from ``start`` to at most ``end``; a crashed
    run ends with ``last`` when given (the line a pod state set, ``conditions.py``)."""
    pod_name = pod["metadata"]["name"]
    out = [(start, f"INFO starting {container['name']} ({container.get('image', '')}) in "
                   f"pod {pod_name}, instance {instance}")]
    if crashing:
        out += [(start, f"INFO loading configuration: db=postgres://app@db:5432/app "
                        f"{SECRETS[1]} aws_access_key_id={SECRETS[2]}"),
                (start, f"DEBUG upstream auth header: {SECRETS[0]}"),
                (start, PANIC),
                (start, ""),
                (start, "goroutine 1 [running]:"),
                (start, "main.main()"),
                (start, "\t/app/main.go:42 +0x1d")]
        return out + ([(start, last)] if last else [])
    seconds = max(0, int((end - start).total_seconds()))
    for i in range(0, min(seconds, 600), 5):       # one line each 5s, the last 10 minutes
        out.append((start + timedelta(seconds=i),
                    f"INFO GET /healthz 200 {1 + (i * 7) % 13}ms request={pod_name}-{i // 5}"))
    return out


def pod_log(pod: Obj, query: dict[str, str], now: datetime,
            last_line: str | None = None) -> str:
    """The text of ``GET .../pods/{name}/log`` with ``query``; ApiError as the kubelet.
    ``last_line``: the line a crashed instance ends with (a simulated pod state's)."""
    container = _container(pod, query.get("container"))
    tail = _int("tailLines", query.get("tailLines"))
    limit = _int("limitBytes", query.get("limitBytes"))
    status = _status(pod, container["name"])
    crashing = "waiting" in (status.get("state") or {})
    restarts = int(status.get("restartCount") or 0)
    created = datetime.fromisoformat(pod["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    if query.get("previous", "").lower() in ("true", "1"):
        last = (status.get("lastState") or {}).get("terminated")
        if not last:
            raise ApiError(400, f'previous terminated container "{container["name"]}" in pod '
                           f'"{pod["metadata"]["name"]}" not found')
        lines = _lines(pod, container, crashing=True, instance=max(0, restarts - 1),
                       start=created, end=now, last=last_line)
    else:
        lines = _lines(pod, container, crashing=crashing, instance=restarts, start=created,
                       end=now, last=last_line)
    if tail is not None:
        lines = lines[len(lines) - tail:] if tail else []
    stamps = query.get("timestamps", "").lower() in ("true", "1")
    text = "".join((f"{at.strftime('%Y-%m-%dT%H:%M:%S.%f000Z')} " if stamps else "")
                   + line + "\n" for at, line in lines)
    data = text.encode()
    return (data[:limit] if limit is not None else data).decode("utf-8", "replace")
