"""The Kubernetes REST API of the simulator (aiohttp handlers).

Serves discovery, get/list/watch/create/update/patch/delete on every resource in
``store.RESOURCES``, the ``scale`` and ``status`` subresources, ``pods/eviction``
(``disruption``) and pods' ``log`` (``logs.py``). Answers
errors as ``Status`` objects with the real reasons and messages. Every write
runs the controller's ``reconcile()`` before the response is sent.

Authentication, fault injection and the call log are middleware (``control``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from remediator.clock import Clock
from remediator.simulator import discovery, disruption
from remediator.simulator.controller import Controller
from remediator.simulator.logs import pod_log
from remediator.simulator.patching import PatchError, json_patch, merge_patch, strategic_merge_patch
from remediator.simulator.store import (
    ApiError,
    Obj,
    ResourceType,
    Store,
    Watcher,
    parse_field_selector,
    parse_label_selector,
    resource,
    selector_string,
)

PATCHERS = {"application/json-patch+json": json_patch,
            "application/merge-patch+json": merge_patch,
            "application/strategic-merge-patch+json": strategic_merge_patch}


def respond(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(obj), content_type="application/json")


def error_response(err: ApiError) -> web.Response:
    headers = {"Retry-After": "1"} if err.code in (429, 503) else None
    return web.Response(status=err.code, text=json.dumps(err.status()),
                        content_type="application/json", headers=headers)


class KubeApi:
    def __init__(self, store: Store, controller: Controller, clock: Clock) -> None:
        self.store, self.controller, self.clock = store, controller, clock
        self.server_address = "127.0.0.1:0"
        # the last line a crashed container logged, if a simulated pod state set one
        self.last_log_line: Callable[[Obj], str | None] = lambda pod: None

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/version", self.version), web.get("/api", self.core),
                web.get("/apis", self.group_list), web.get("/apis/{group}", self.group),
                web.route("*", "/api/{version}{tail:.*}", self.dispatch),
                web.route("*", "/apis/{group}/{version}{tail:.*}", self.dispatch)]

    async def version(self, request: web.Request) -> web.Response:
        return respond(discovery.VERSION)

    async def core(self, request: web.Request) -> web.Response:
        return respond(discovery.core_versions(self.server_address))

    async def group_list(self, request: web.Request) -> web.Response:
        return respond(discovery.group_list())

    async def group(self, request: web.Request) -> web.Response:
        name = request.match_info["group"]
        versions = discovery.groups().get(name)
        if versions is None:
            return error_response(ApiError(404, "the server could not find the requested resource"))
        return respond(discovery.api_group(name, versions))

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        group = request.match_info.get("group", "")
        version = request.match_info["version"]
        parts = [p for p in request.match_info["tail"].split("/") if p]
        try:
            if not parts:
                doc = discovery.resource_list(group, version)
                if request.method != "GET" or doc is None:
                    raise ApiError(404, "the server could not find the requested resource")
                return respond(doc)
            if parts[0] == "namespaces" and len(parts) >= 3:
                ns: str | None = parts[1]
                plural, rest = parts[2], parts[3:]
            else:
                ns, plural, rest = None, parts[0], parts[1:]
            rt = resource(group, plural)
            if rt is None or rt.version != version or len(rest) > 2:
                raise ApiError(404, "the server could not find the requested resource")
            name = rest[0] if rest else None
            sub = rest[1] if len(rest) > 1 else None
            if sub is not None and sub not in rt.subresources:
                raise ApiError(404, "the server could not find the requested resource")
            return await self._handle(request, rt, ns, name, sub)
        except ApiError as err:
            return error_response(err)

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as err:
            raise ApiError(400, f"the request body is not valid JSON: {err}") from None

    async def _handle(self, request: web.Request, rt: ResourceType, ns: str | None,
                      name: str | None, sub: str | None) -> web.StreamResponse:
        method, q = request.method, request.query
        if sub == "eviction":
            if method != "POST" or name is None or ns is None:
                raise ApiError(405, "the server does not allow this method on pods/eviction")
            return respond(disruption.evict(self.store, self.controller, ns, name,
                                            await self._body(request)), 201)
        if method == "GET" and name is None:
            if q.get("watch", "").lower() in ("true", "1"):
                return await self._watch(request, rt, ns)
            items = self.store.list(rt, ns, labels=q.get("labelSelector", ""),
                                    fields=q.get("fieldSelector", ""))
            return respond({"apiVersion": rt.api_version, "kind": f"{rt.kind}List",
                            "metadata": {"resourceVersion": str(self.store.resource_version)},
                            "items": items})
        if sub == "log" and name is not None:
            if method != "GET":
                raise ApiError(405, f"the server does not allow this method on {rt.qualified}")
            pod = self.store.get(rt, ns, name)
            text = pod_log(pod, dict(q), self.clock.now(), self.last_log_line(pod))
            return web.Response(text=text, content_type="text/plain")
        if method == "GET" and name is not None:
            obj = self.store.get(rt, ns, name)
            return respond(self._scale(rt, obj) if sub == "scale" else obj)
        if method == "POST" and name is None:
            body = await self._body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "the request body must be an object")
            created = self.store.create(rt, ns, self._validate(rt, body))
            self.controller.reconcile()
            return respond(self.store.find(rt, ns, created["metadata"]["name"]) or created, 201)
        if name is None:
            raise ApiError(405, f"the server does not allow this method on {rt.qualified}")
        if method == "DELETE":
            return await self._delete(request, rt, ns, name)
        if method not in ("PUT", "PATCH"):
            raise ApiError(405, f"the server does not allow this method on {rt.qualified}")
        current = self.store.get(rt, ns, name)
        body = await self._body(request)
        base = self._scale(rt, current) if sub == "scale" else current
        if method == "PATCH":
            ctype = request.content_type
            patcher = PATCHERS.get(ctype)
            if patcher is None:
                raise ApiError(415, f"the body of the request was in an unknown format - "
                               f"accepted media types include: {', '.join(PATCHERS)}")
            try:
                updated = patcher(base, body)
            except PatchError as err:
                raise ApiError(422, f"the server rejected our request due to an error in our "
                               f"request: {err}") from None
        else:
            updated = body
        if not isinstance(updated, dict):
            raise ApiError(400, "the request body must be an object")
        if (updated.get("metadata") or {}).get("name", name) != name:
            raise ApiError(400, f'the name of the object ({updated["metadata"]["name"]}) does '
                           f"not match the name on the URL ({name})")
        if sub == "scale":
            replicas = (updated.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, f'Scale.autoscaling "{name}" is invalid: spec.replicas: '
                               f"Invalid value: {replicas!r}: must be greater than or equal to 0")
            current["spec"]["replicas"] = replicas
            rv = (updated.get("metadata") or {}).get("resourceVersion")
            if rv:
                current["metadata"]["resourceVersion"] = rv
            self.store.update(rt, current)
            self.controller.reconcile()
            return respond(self._scale(rt, self.store.get(rt, ns, name)))
        updated.setdefault("metadata", {})
        updated["metadata"].setdefault("namespace", ns)
        self.store.update(rt, self._validate(rt, updated), subresource=sub)
        self.controller.reconcile()
        return respond(self.store.get(rt, ns, name))

    def _validate(self, rt: ResourceType, obj: Obj) -> Obj:
        spec = obj.get("spec")
        name = (obj.get("metadata") or {}).get("name", "")
        if rt.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
            replicas = (spec or {}).get("replicas", 1)
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, f'{rt.kind}.{rt.group} "{name}" is invalid: spec.replicas: '
                               f"Invalid value: {replicas!r}: must be greater than or equal to 0")
            containers = (((spec or {}).get("template") or {}).get("spec") or {}).get("containers")
            if not containers or not all(c.get("name") and c.get("image") for c in containers):
                raise ApiError(422, f'{rt.kind}.{rt.group} "{name}" is invalid: '
                               "spec.template.spec.containers: Required value")
        return obj

    def _scale(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        status = obj.get("status") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if k in meta},
                "spec": {"replicas": obj["spec"].get("replicas", 1)},
                "status": {"replicas": status.get("replicas", 0),
                           "selector": selector_string(obj["spec"].get("selector") or {})}}

    async def _delete(self, request: web.Request, rt: ResourceType, ns: str | None,
                      name: str) -> web.Response:
        body = await self._body(request) or {}
        uid = ((body.get("preconditions") or {}) if isinstance(body, dict) else {}).get("uid")
        deleted = self.store.delete(rt, ns, name, uid=uid)
        self.controller.reconcile()
        if rt.kind == "Pod":
            deleted["metadata"]["deletionTimestamp"] = self.clock.now().strftime(
                "%Y-%m-%dT%H:%M:%SZ")
            deleted["metadata"]["deletionGracePeriodSeconds"] = int(
                request.query.get("gracePeriodSeconds")
                or (body.get("gracePeriodSeconds") if isinstance(body, dict) else None) or 30)
            return respond(deleted)
        return respond({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": name, "group": rt.group, "kind": rt.plural,
                                    "uid": deleted["metadata"]["uid"]}})

    async def _watch(self, request: web.Request, rt: ResourceType,
                     ns: str | None) -> web.StreamResponse:
        q = request.query
        labels, fields = q.get("labelSelector", ""), q.get("fieldSelector", "")
        by_labels, by_fields = parse_label_selector(labels), parse_field_selector(fields)

        def matches(obj: Obj) -> bool:
            return by_labels(obj["metadata"].get("labels") or {}) and by_fields(obj)

        watcher = Watcher(rt, ns, matches)
        rv = q.get("resourceVersion", "")
        if rv in ("", "0"):
            backlog: list[tuple[str, Obj]] | None = [
                ("ADDED", obj) for obj in self.store.list(rt, ns, labels=labels, fields=fields)]
        else:
            try:
                since = self.store.since(rt, int(rv))
            except ValueError:
                raise ApiError(400, f"invalid resourceVersion {rv!r}") from None
            backlog = None if since is None else [
                (kind, obj) for kind, obj in since
                if (ns is None or obj["metadata"].get("namespace") == ns) and matches(obj)]
        self.store.watchers.add(watcher)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        timer = None
        try:
            if backlog is None:
                gone = ApiError(410, f"too old resource version: {rv}", reason="Expired")
                await response.write(json.dumps({"type": "ERROR", "object": gone.status()})
                                     .encode() + b"\n")
                return response
            for kind, obj in backlog:
                await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            timeout = float(q.get("timeoutSeconds") or 0)
            timer = asyncio.ensure_future(self.clock.sleep(timeout)) if timeout > 0 else None
            while True:
                getter = asyncio.ensure_future(watcher.queue.get())
                waiting = {getter, timer} if timer else {getter}
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                item = getter.result()
                if item is None:
                    break
                kind, obj = item
                await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
        except ConnectionResetError:
            pass
        finally:
            self.store.watchers.discard(watcher)
            if timer is not None:
                timer.cancel()
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response
