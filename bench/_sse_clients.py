"""N Server-Sent-Events clients on one URL, in their own process (for bench/storm.py).

    python bench/_sse_clients.py URL N OUT.json

Opens N streams (one connection each), writes ``OUT.json.ready`` once every stream
has its 200, counts the events each receives (``event:`` lines, counted in the raw
chunks: the clients share the cores with the daemon), and on SIGTERM writes
``{"clients", "connected", "events": [per client], "errors"}`` to OUT.json and exits.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp

MARK = b"\r\nevent: "          # one per event (after its id line)


async def follow(session: aiohttp.ClientSession, url: str, counts: list[int], i: int,
                 connected: list[int], errors: list[str], answered: asyncio.Queue[int]) -> None:
    try:
        async with session.get(url, headers={"Accept": "text/event-stream"}) as resp:
            if resp.status != 200:
                errors.append(f"HTTP {resp.status}")
                answered.put_nowait(i)
                return
            connected[0] += 1
            answered.put_nowait(i)
            tail = b""
            async for chunk in resp.content.iter_any():      # cheap: this process shares
                data = tail + chunk                            # the cores with the daemon
                counts[i] += data.count(MARK)
                tail = data[-len(MARK) + 1:]
    except (TimeoutError, aiohttp.ClientError) as exc:
        errors.append(repr(exc))
        answered.put_nowait(i)


async def main(url: str, n: int, out: Path) -> None:
    counts, connected, errors = [0] * n, [0], list[str]()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=timeout) as session:
        answered: asyncio.Queue[int] = asyncio.Queue()
        tasks = [asyncio.create_task(follow(session, url, counts, i, connected, errors,
                                            answered)) for i in range(n)]
        for _ in range(n):
            await answered.get()
        await asyncio.to_thread(Path(f"{out}.ready").write_text, str(connected[0]))
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.to_thread(out.write_text, json.dumps({
        "clients": n, "connected": connected[0], "events": counts, "errors": errors[:10]}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])))
