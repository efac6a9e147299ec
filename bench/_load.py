"""The load generator, run in its own process so that the server under test keeps a core.

    python bench/_load.py PLAN.json RESULT.json

PLAN: ``{"url": ..., "concurrency": 32, "mode": "duration"|"bursts", ...}``.

* ``duration``: ``seconds`` (and ``warmup``) of back-to-back POSTs over ``concurrency``
  keep-alive connections; each body is ``intake_body(i)`` (fresh alerts for every
  request, so the server does real inserts, not only duplicate look-ups). With
  ``repeat: M`` the bodies cycle through ``intake_body(0 … M-1)``: after the first M,
  every webhook re-delivers alerts the server already has (Alertmanager's re-sends).
  With ``rate``, an open loop at that many webhooks/s instead (fresh alerts).
* ``bursts``: ``bodies_file`` (JSON lines) sent burst by burst (``bursts``: list of
  line counts). ``schedule: open`` (default) releases burst n at n × ``pause`` seconds
  whether or not the earlier ones were answered; ``closed`` sends each burst after the
  last reply of the one before, then pauses. Every response is recorded with its
  wall-clock send time, so that a SIGKILL mid-storm can be matched against acks.

RESULT: latencies (s), statuses, timings. Stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import alert, webhook

TARGETS = 200  # intake: alerts spread over this many deployments


def intake_body(i: int) -> bytes:
    dep = i % TARGETS
    alerts = [alert(i * 3 + k, dep=dep, instance=(i * 3 + k) % 65536) for k in range(3)]
    return json.dumps(webhook(alerts)).encode()


async def _post(session: aiohttp.ClientSession, url: str, body: bytes,
                keep: bool = False) -> tuple[int, float, Any]:
    t0 = time.perf_counter()
    answer: Any = None
    try:
        async with session.post(url, data=body,
                                headers={"Content-Type": "application/json"}) as resp:
            raw = await resp.read()
            status = resp.status
        if keep:
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = raw.decode(errors="replace")[:200]
    except (TimeoutError, aiohttp.ClientError, OSError):
        status = 0
    return status, time.perf_counter() - t0, answer


async def run_duration(plan: dict[str, Any]) -> dict[str, Any]:
    url, conc = plan["url"], plan["concurrency"]
    seconds, warmup = plan["seconds"], plan.get("warmup", 1.0)
    repeat = plan.get("repeat")
    counter = (i % repeat for i in range(10**9)) if repeat else iter(range(10**9))
    lat: list[float] = []
    statuses: dict[int, int] = {}
    t_start = time.perf_counter()
    t_measure = t_start + warmup
    t_end = t_measure + seconds
    timeout = aiohttp.ClientTimeout(total=30)
    rate = plan.get("rate")
    if rate:
        return await run_paced(url, conc, seconds, rate, timeout)
    conn = aiohttp.TCPConnector(limit=conc, force_close=False)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        async def worker() -> None:
            while True:
                now = time.perf_counter()
                if now >= t_end:
                    return
                status, dt, _ = await _post(session, url, intake_body(next(counter)))
                if now >= t_measure:
                    lat.append(dt)
                    statuses[status] = statuses.get(status, 0) + 1
        await asyncio.gather(*(worker() for _ in range(conc)))
    elapsed = time.perf_counter() - t_measure
    ok = statuses.get(200, 0)
    return {"requests": len(lat), "ok": ok, "statuses": statuses, "elapsed_s": elapsed,
            "rps": ok / elapsed, "latencies": lat}


async def run_paced(url: str, conc: int, seconds: float, rate: float,
                    client_timeout: aiohttp.ClientTimeout) -> dict[str, Any]:
    """Open loop: request k is due at t0 + k/rate; latency counts from when it was due,
    so a stalled server cannot hide its queue (no coordinated omission)."""
    lat: list[float] = []
    statuses: dict[int, int] = {}
    total = int(rate * seconds)
    due = iter(range(total))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc),
                                     timeout=client_timeout) as session:
        t0 = time.perf_counter() + 0.2

        async def paced() -> None:
            for k in due:
                at = t0 + k / rate
                delay = at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                status, _dt, _ = await _post(session, url, intake_body(10**6 + k))
                lat.append(time.perf_counter() - at)
                statuses[status] = statuses.get(status, 0) + 1
        await asyncio.gather(*(paced() for _ in range(conc)))
    return {"requests": len(lat), "ok": statuses.get(200, 0), "statuses": statuses,
            "elapsed_s": seconds, "rps": statuses.get(200, 0) / seconds, "latencies": lat,
            "rate": rate}


async def run_bursts(plan: dict[str, Any], bodies: list[bytes]) -> dict[str, Any]:
    url, conc = plan["url"], plan["concurrency"]
    records: list[dict[str, Any]] = [{} for _ in bodies]
    kill_pid, kill_after = plan.get("kill_pid"), plan.get("kill_after_acks")
    acks = [0]
    killed_at: list[float] = []
    conn = aiohttp.TCPConnector(limit=conc)
    timeout = aiohttp.ClientTimeout(total=plan.get("timeout", 60))
    t0 = time.perf_counter()
    pos = 0
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        sem = asyncio.Semaphore(conc)

        async def one(i: int) -> None:
            async with sem:
                sent = time.time()
                status, dt, body = await _post(session, url, bodies[i], keep=True)
                records[i] = {"i": i, "sent": sent, "status": status, "latency": dt,
                              "done": time.time(), "body": body}
                if status == 200:
                    acks[0] += 1
                    if kill_pid and acks[0] == kill_after:
                        os.kill(kill_pid, signal.SIGKILL)
                        killed_at.append(time.time())

        pause = plan.get("pause") or 0.0
        if plan.get("schedule", "open") == "open":
            # burst n is released at n * pause, answered or not (its webhooks still wait
            # for one of the connections): Alertmanager flushes each group on its own
            # timer, it does not wait for the receiver to answer the others
            sent: list[asyncio.Future[None]] = []
            for n, size in enumerate(plan["bursts"]):
                delay = t0 + n * pause - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent += [asyncio.ensure_future(one(i))
                         for i in range(pos, min(pos + size, len(bodies)))]
                pos += size
            await asyncio.gather(*sent)
        else:
            # closed: each burst after every reply of the last one, and a pause
            for n, size in enumerate(plan["bursts"]):
                await asyncio.gather(*(one(i)
                                       for i in range(pos, min(pos + size, len(bodies)))))
                pos += size
                if n + 1 < len(plan["bursts"]) and pause:
                    await asyncio.sleep(pause)
    return {"elapsed_s": time.perf_counter() - t0, "records": records,
            "killed_at": killed_at[0] if killed_at else None}


def main() -> int:
    plan = json.loads(Path(sys.argv[1]).read_text())
    if plan["mode"] == "duration":
        result = asyncio.run(run_duration(plan))
    else:
        bodies = Path(plan["bodies_file"]).read_bytes().splitlines()
        result = asyncio.run(run_bursts(plan, bodies))
    Path(sys.argv[2]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
