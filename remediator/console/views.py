"""The console's pages: the incident list, one incident, status, playbooks.

Each page is a whole HTML document; with ``?fragment=1`` only its live part (what the
event stream's script swaps in). The list filters by state, playbook, the target's
namespace and free text (a substring of id, key, playbook, target, summary and state,
ASCII letters case-insensitive) in the store: keyset pages of ``incident_page``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from aiohttp import web

from remediator.console.access import ACCESS, Access, page
from remediator.console.actions import RESUMED_FLAG
from remediator.console.checks import PlaybookCheck
from remediator.console.links import Links
from remediator.engine.graphs import has_graph
from remediator.model.incident import IncidentState, StepStatus
from remediator.server.http import Api
from remediator.server.paging import CursorError, decode_cursor, encode_cursor

PAGE_SIZE = 50
ALERTS_SHOWN = 100
LIVE = {"incidents.html", "incident.html", "status.html"}    # with a *_live.html part


def render(request: web.Request, name: str, context: dict[str, Any],
           status: int = 200) -> web.Response:
    context["now"] = request.app[ACCESS].api.engine.clock.now()
    if request.query.get("fragment") and name in LIVE:
        name = name.replace(".html", "_live.html")
    return page(name, request, context, status=status)


class Views:
    def __init__(self, api: Api, links: Links, check: PlaybookCheck) -> None:
        self.api, self.links, self.check = api, links, check
        self.store = api.engine.store

    async def incidents(self, request: web.Request) -> web.Response:
        q = request.query
        state = q.get("state") or None
        if state is not None and state not in set(IncidentState):
            raise web.HTTPBadRequest(reason=f"state must be one of {', '.join(IncidentState)}")
        playbook = q.get("playbook") or None
        namespace = (q.get("namespace") or "").strip()
        text = (q.get("q") or "").strip()
        filters = {k: v for k, v in (("state", state), ("playbook", playbook),
                                     ("namespace", namespace), ("q", text)) if v}
        after = None
        if q.get("cursor"):
            try:
                after = decode_cursor(q["cursor"], filters)
            except CursorError as exc:
                raise web.HTTPBadRequest(reason=f"bad cursor: {exc}") from None
        rows, last = await self.store.incident_page(
            state=state, playbook=playbook, namespace=namespace or None, text=text or None,
            after=after, limit=PAGE_SIZE)
        steps = await self.store.last_steps([r.id for r in rows])
        counts = await self.store.count_by_state()
        return render(request, "incidents.html", {
            "rows": rows, "steps": steps, "counts": counts, "states": list(IncidentState),
            "total": sum(counts.values()), "filters": filters,
            "playbooks": sorted(self.api.engine.playbooks),
            "next_cursor": encode_cursor(last, filters) if last is not None else None})

    async def incident(self, request: web.Request) -> web.Response:
        incident_id = request.match_info["id"]
        view = await self.store.get_incident(incident_id, alert_limit=ALERTS_SHOWN)
        if view is None:
            raise web.HTTPNotFound(reason=f"no incident {incident_id!r}")
        pb = self.api.engine.playbooks.get(view.playbook)
        approval = None
        if view.state == IncidentState.AWAITING_APPROVAL:
            done = {s.index for s in view.steps if s.status not in (StepStatus.PENDING,)}
            count = len(pb.spec.steps) if pb else len(view.steps)
            for index in (i for i in range(count) if i not in done):
                approval = await self.store.pending_approval(view.id, index)
                if approval is not None:
                    break
        verify = {}
        if pb is not None:
            verify = {i: s.verify for i, s in enumerate(pb.spec.steps) if s.verify}
        links = await self.links.of(view.id, view.context,
                                    [a.get("labels") or {} for a in view.alerts])
        return render(request, "incident.html", {
            "inc": view, "approval": approval, "verify": verify, "playbook": pb,
            "links": links, "silence": self.links.silence,
            "graph": has_graph(view, self.api.engine.ports.metrics),
            "msg": request.query.get("msg", "")[:300],
            "step_count": len(pb.spec.steps) if pb else len(view.steps)})

    async def status(self, request: web.Request) -> web.Response:
        engine = self.api.engine
        paused = await engine.guards.paused()
        now = engine.clock.now()
        guards = engine.guards
        spent = await self.store.mutations_since(
            now - timedelta(seconds=guards.action_budget_window))
        resumed = await self.store.get_flag(RESUMED_FLAG)
        return render(request, "status.html", {
            "deps": self.api.health.report(), "paused": paused,
            "resumed": json.loads(resumed) if resumed and not paused else None,
            "budget": guards.action_budget, "spent": spent,
            "left": max(0, guards.action_budget - spent),
            "window": guards.action_budget_window, "running": engine.running,
            "clusters": await self.api.cluster_status(),
            "dry_run": engine.settings.dry_run, "msg": request.query.get("msg", "")[:300]})

    async def playbooks(self, request: web.Request) -> web.Response:
        items = []
        for pb in self.api.engine.playbook_list:
            recent, _ = await self.store.incident_page(playbook=pb.metadata.name, limit=20)
            ended = [r for r in recent if r.state.closed or r.state == IncidentState.ESCALATED]
            good = [r for r in ended if r.state == IncidentState.RECOVERED]
            items.append({"pb": pb, "recent": recent, "ended": len(ended),
                          "rate": (100 * len(good) // len(ended)) if ended else None,
                          "warnings": [str(w) for w in pb.warnings]})
        check = await self.check.report()
        loaded = {pb.metadata.name for pb in self.api.engine.playbook_list}
        return render(request, "playbooks.html", {
            "items": items, "check": check,
            "added": sorted(check.names - loaded) if check and check.ok else [],
            "removed": sorted(loaded - check.names) if check and check.ok else []})


def routes(app: web.Application, api: Api, access: Access, links: Links,
           check: PlaybookCheck) -> None:
    views = Views(api, links, check)
    app.router.add_get("/", views.incidents)
    app.router.add_get("/incidents/{id}", views.incident)
    app.router.add_get("/status", views.status)
    app.router.add_get("/playbooks", views.playbooks)
    app.router.add_get("/login", access.login_form)
    app.router.add_post("/login", access.login)
    app.router.add_post("/logout", access.logout)
