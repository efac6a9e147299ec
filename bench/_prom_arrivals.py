"""The fake Prometheus of ``bench/verifying.py``, in its own process: it answers every
instant query with an empty vector (a check that never holds, so verification polls
until its timeout) and notes when each query arrived.

Writes ``{"prometheus": url}`` to the file named by its argument once it listens
(127.0.0.1, a free port); ``GET /bench/seen`` answers how many distinct queries it has
been sent so far; on SIGTERM it writes ``{"arrivals": {query: [unix seconds, ...]}}``
to ``<file>.done`` and exits.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiohttp import web

from remediator.testing.fake_prometheus import FakePrometheus


class ArrivalsPrometheus(FakePrometheus):
    def __init__(self) -> None:
        super().__init__()
        self.arrivals: dict[str, list[float]] = defaultdict(list)

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.router.add_get("/bench/seen", self._seen)
        return app

    async def _query(self, request: web.Request) -> web.Response:
        arrived = time.time()
        params: Any = request.query
        if request.method == "POST":
            params = {**request.query, **(await request.post())}
        self.arrivals[str(params.get("query", ""))].append(arrived)
        return await super()._query(request)

    async def _seen(self, request: web.Request) -> web.Response:
        return web.json_response({"queries": len(self.arrivals),
                                  "polls": sum(map(len, self.arrivals.values()))})


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))


async def main(out: Path) -> None:
    prom = ArrivalsPrometheus()
    await prom.start()
    write(out, {"prometheus": prom.root_url})
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    write(Path(f"{out}.done"), {"arrivals": prom.arrivals})
    await prom.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
