"""A fake Prometheus HTTP API: ``GET|POST /api/v1/query`` as prometheus-api-client calls it.

Answers the real envelope (``{"status": "success", "data": {"resultType": "vector",
"result": [...]}}``) with the samples set for an expression by ``set(expr, value)``
(an expression never set answers an empty vector); ``400 bad_data`` for an empty
``query``; ``503 timeout`` for the next n queries after ``fail(n)``. It counts every
query it was sent per expression (``calls``); ``delay`` holds each answer that long
(seconds), to let concurrent callers overlap; ``peak`` is the most answered at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from aiohttp import web

from remediator.testing.server import FakeServer


class FakePrometheus(FakeServer):
    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.values: dict[str, float] = {}
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self._failures = 0
        self.peak = 0           # most queries answered at once
        self.clients: set[Any] = set()      # the (host, port) of each connection queried on

    def set(self, expr: str, value: float) -> None:
        self.values[expr] = value

    def fail(self, times: int) -> None:
        """The next ``times`` queries answer 503 ``timeout``, as a loaded server does."""
        self._failures = times

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/api/v1/query", self._query)
        app.router.add_route("POST", "/api/v1/query", self._query)
        app.router.add_route("GET", "/api/v1/query_range", self._query_range)
        app.router.add_route("POST", "/api/v1/query_range", self._query_range)
        app.router.add_get("/-/ready", self._ready)
        return app

    async def _query_range(self, request: web.Request) -> web.Response:
        """A matrix holding the expression's set value at every step of [start, end]."""
        params: Any = request.query
        if request.method == "POST":
            params = {**request.query, **(await request.post())}
        expr = str(params.get("query", ""))
        try:       # step: seconds, or a duration as Prometheus takes it ("15s", "1m")
            start, end = float(params["start"]), float(params["end"])
            raw = str(params["step"])
            unit = {"s": 1, "m": 60, "h": 3600}.get(raw[-1:], 0)
            step = float(raw[:-1]) * unit if unit else float(raw)
        except (KeyError, ValueError):
            return web.json_response({"status": "error", "errorType": "bad_data",
                                      "error": "invalid parameter: start, end and step "
                                               "must be numbers"}, status=400)
        if step <= 0 or end < start:
            return web.json_response({"status": "error", "errorType": "bad_data",
                                      "error": "end timestamp must not be before start time"
                                      if end < start else "zero or negative query "
                                      "resolution step widths are not accepted"}, status=400)
        self.calls[f"range:{expr}"] += 1
        result = []
        if expr in self.values:
            n = int((end - start) // step) + 1
            result = [{"metric": {}, "values": [[start + i * step, repr(self.values[expr])]
                                                for i in range(n)]}]
        return web.json_response({"status": "success",
                                  "data": {"resultType": "matrix", "result": result}})

    async def _ready(self, request: web.Request) -> web.Response:
        return web.Response(text="Prometheus Server is Ready.\n")

    async def _query(self, request: web.Request) -> web.Response:
        params: Any = request.query
        if request.method == "POST":
            params = {**request.query, **(await request.post())}
        expr = str(params.get("query", ""))
        if not expr:
            return web.json_response({"status": "error", "errorType": "bad_data",
                                      "error": "invalid parameter \"query\": empty"},
                                     status=400)
        self.calls[expr] += 1
        self.clients.add(request.transport.get_extra_info("peername")
                         if request.transport is not None else None)
        if self._failures:
            self._failures -= 1
            return web.json_response({"status": "error", "errorType": "timeout",
                                      "error": "query timed out in expression evaluation"},
                                     status=503)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        result = []
        if expr in self.values:
            result = [{"metric": {}, "value": [time.time(), repr(self.values[expr])]}]
        return web.json_response({"status": "success",
                                  "data": {"resultType": "vector", "result": result}})
