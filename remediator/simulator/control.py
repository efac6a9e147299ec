"""The simulator's control plane for tests and demos, under ``/sim/v1/``.

* ``GET|POST|DELETE /sim/v1/faults``: API fault injection. POST
  ``{"status": 500, "count": 2, "method": "PATCH", "path": "deployments/api",
  "latency": 0.5, "message": "…"}``: the next ``count`` requests (null: all) whose
  method matches and whose path contains the regex ``path`` wait ``latency``
  wall-clock seconds (client timeouts are wall-clock), then answer ``status``
  (omit it for latency only) as a Kubernetes ``Status``.
* ``GET|DELETE /sim/v1/calls``: the log of every write call (method, path, query,
  content type, body, status) the API received; ``?all=1`` includes reads;
  ``?path=REGEX`` keeps the calls whose path the regex matches (searched).
* ``GET|POST|DELETE /sim/v1/bad-images``: images whose pods never become ready.
  POST/DELETE ``{"image": "example/api:2.0.0"}``.
* ``POST /sim/v1/tick``: run one controller tick now.

Also the authentication middleware: ``/api`` and ``/apis`` need the bearer token
(or no credentials at all when the seed allows anonymous access, as kubectl sends
no token over plain http).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from remediator.clock import Clock
from remediator.simulator.api import error_response, respond
from remediator.simulator.controller import Controller
from remediator.simulator.store import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class Fault:
    status: int | None = None
    count: int | None = 1
    method: str | None = None
    path: str = ""
    latency: float = 0.0
    message: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method.upper() == method)
                and re.search(self.path, path) is not None and self.count != 0)


class Control:
    def __init__(self, controller: Controller, clock: Clock, token: str, *,
                 anonymous: bool = True) -> None:
        self.controller, self.clock, self.token = controller, clock, token
        self.anonymous = anonymous
        self.faults: list[Fault] = []
        self.calls: list[dict[str, Any]] = []

    def add_fault(self, **kwargs: Any) -> Fault:
        fault = Fault(**kwargs)
        re.compile(fault.path)
        self.faults.append(fault)
        return fault

    def writes(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["method"] in WRITES]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not (path.startswith("/api/") or path.startswith("/apis") or path == "/api"):
            return await handler(request)
        call: dict[str, Any] = {"method": request.method, "path": path,
                                "query": request.query_string,
                                "content_type": request.content_type if request.can_read_body
                                else None, "body": None, "status": 0,
                                "at": self.clock.now().isoformat()}
        if request.can_read_body:
            raw = await request.read()
            try:
                call["body"] = json.loads(raw) if raw else None
            except ValueError:
                call["body"] = raw.decode(errors="replace")
        self.calls.append(call)
        response = await self._guarded(request, handler)
        call["status"] = response.status
        return response

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        if auth != f"Bearer {self.token}" and not (auth is None and self.anonymous):
            return error_response(ApiError(401, "Unauthorized"))
        for fault in self.faults:
            if not fault.matches(request.method, request.path):
                continue
            if fault.count is not None:
                fault.count -= 1
            if fault.latency:
                await asyncio.sleep(fault.latency)
            if fault.status is not None:
                message = fault.message or {
                    409: "Operation cannot be fulfilled: the object has been modified; please "
                         "apply your changes to the latest version and try again",
                    429: "Too many requests, please try again later.",
                }.get(fault.status, f"injected fault: HTTP {fault.status}")
                return error_response(ApiError(fault.status, message))
        self.faults = [f for f in self.faults if f.count != 0]
        return await handler(request)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/sim/v1/faults", self.get_faults),
                web.post("/sim/v1/faults", self.post_fault),
                web.delete("/sim/v1/faults", self.clear_faults),
                web.get("/sim/v1/calls", self.get_calls),
                web.delete("/sim/v1/calls", self.clear_calls),
                web.get("/sim/v1/bad-images", self.get_bad),
                web.post("/sim/v1/bad-images", self.add_bad),
                web.delete("/sim/v1/bad-images", self.remove_bad),
                web.post("/sim/v1/tick", self.tick)]

    async def get_faults(self, request: web.Request) -> web.Response:
        return respond({"faults": [asdict(f) for f in self.faults]})

    async def post_fault(self, request: web.Request) -> web.Response:
        try:
            fault = self.add_fault(**await request.json())
        except (TypeError, ValueError, re.error) as err:
            return respond({"error": f"invalid fault: {err}"}, 400)
        return respond(asdict(fault), 201)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return respond({"faults": []})

    async def get_calls(self, request: web.Request) -> web.Response:
        calls = self.calls if request.query.get("all") else self.writes()
        if "path" in request.query:
            try:
                pattern = re.compile(request.query["path"])
            except re.error as err:
                return respond({"error": f"invalid path regex: {err}"}, 400)
            calls = [c for c in calls if pattern.search(c["path"])]
        return respond({"calls": calls})

    async def clear_calls(self, request: web.Request) -> web.Response:
        self.calls.clear()
        return respond({"calls": []})

    async def get_bad(self, request: web.Request) -> web.Response:
        return respond({"images": sorted(self.controller.bad_images)})

    async def _image(self, request: web.Request) -> str:
        body = await request.json()
        image = body.get("image") if isinstance(body, dict) else None
        if not isinstance(image, str) or not image:
            raise web.HTTPBadRequest(text='{"error": "give {\\"image\\": \\"…\\"}"}',
                                     content_type="application/json")
        return image

    async def add_bad(self, request: web.Request) -> web.Response:
        self.controller.bad_images.add(await self._image(request))
        self.controller.reconcile()
        return await self.get_bad(request)

    async def remove_bad(self, request: web.Request) -> web.Response:
        self.controller.bad_images.discard(await self._image(request))
        self.controller.reconcile()
        return await self.get_bad(request)

    async def tick(self, request: web.Request) -> web.Response:
        self.controller.tick()
        return respond({"now": self.clock.now().isoformat()})
