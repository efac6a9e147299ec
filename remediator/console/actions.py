"""The console's form posts: approve, reject, retry, close, acknowledge, release an
incident; pause and resume automation. Each needs the operator right and the form's
CSRF token (else a 403 page), is done by the signed-in person's name with " (console)", is journaled
(the approval, the manual act, the pause flag) and answers 303 back to the page with
what happened.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

from aiohttp import web

from remediator.console.access import Access, see_other
from remediator.engine.handoff import HandoffError
from remediator.engine.manual import ManualRefused, NoIncident
from remediator.server.auth import Right
from remediator.server.http import MAX_TEXT_BYTES, Api

log = logging.getLogger("remediator.console")
RESUMED_FLAG = "console.resumed"      # who resumed automation last, why, when (status page)


def _text(form: Any, name: str) -> str:
    value = str(form.get(name, "") or "").strip()
    if len(value.encode()) > MAX_TEXT_BYTES:
        raise web.HTTPBadRequest(reason=f"{name}: at most {MAX_TEXT_BYTES} bytes")
    return value


def back(path: str, message: str) -> web.Response:
    return see_other(f"{path}?msg={quote(message[:300])}")


class Actions:
    def __init__(self, api: Api, access: Access) -> None:
        self.api = api
        self.access = access
        self.engine = api.engine

    async def decide(self, request: web.Request) -> web.StreamResponse:
        who, form = await self.access.check(request, Right.OPERATE)
        incident_id = request.match_info["id"]
        page = f"/incidents/{quote(incident_id)}"
        view = await self.engine.store.get_incident(incident_id, alert_limit=0)
        if view is None:
            raise web.HTTPNotFound(reason=f"no incident {incident_id!r}")
        approval = await self.engine.store.get_approval(_text(form, "approval"))
        if approval is None or approval.incident_id != incident_id:
            return back(page, "That approval request is not this incident's.")
        approved = request.match_info["decision"] == "approve"
        comment = _text(form, "comment")
        by = f"{who.name} (console)" + (f": {comment}" if comment else "")
        _, text = await self.api._decide(approval, approved, by)
        return back(page, text)

    async def manual(self, request: web.Request) -> web.StreamResponse:
        who, form = await self.access.check(request, Right.OPERATE)
        incident_id = request.match_info["id"]
        page = f"/incidents/{quote(incident_id)}"
        by = f"{who.name} (console)"
        try:
            if request.match_info["act"] == "retry":
                text = await self.engine.manual.retry(incident_id, by)
            else:
                text = await self.engine.manual.close(incident_id, by, _text(form, "reason"))
        except NoIncident:
            raise web.HTTPNotFound(reason=f"no incident {incident_id!r}") from None
        except ManualRefused as exc:
            text = str(exc)
        return back(page, text)

    async def handoff(self, request: web.Request) -> web.StreamResponse:
        """Acknowledge (the chain stops; automation keeps off the target) or release."""
        who, _ = await self.access.check(request, Right.OPERATE)
        incident_id = request.match_info["id"]
        page = f"/incidents/{quote(incident_id)}"
        by = f"{who.name} (console)"
        try:
            if request.match_info["act"] == "ack":
                done = await self.engine.acknowledge(incident_id, by, via="console")
                text = (f"Already acknowledged by {done.by}." if done.already else
                        f"Acknowledged by {done.by}: paging stopped, automation keeps off "
                        "the target until it is resolved or released.")
            else:
                done = await self.engine.release(incident_id, by, via="console")
                text = f"Released by {done.by}: automation may act on the target again."
        except HandoffError as exc:
            if exc.code == "not_found":
                raise web.HTTPNotFound(reason=f"no incident {incident_id!r}") from None
            text = str(exc)
        return back(page, text)

    async def pause(self, request: web.Request) -> web.StreamResponse:
        who, form = await self.access.check(request, Right.OPERATE)
        reason = _text(form, "reason") or "paused from the console"
        await self.engine.guards.pause(reason, f"{who.name} (console)", self.engine.clock.now())
        log.warning("automation paused by %s (console): %s", who.name, reason)
        return back("/status", f"Automation paused by {who.name}: {reason}")

    async def resume(self, request: web.Request) -> web.StreamResponse:
        who, form = await self.access.check(request, Right.OPERATE)
        reason = _text(form, "reason") or "resumed from the console"
        await self.engine.guards.resume()
        await self.engine.store.set_flag(RESUMED_FLAG, json.dumps(
            {"by": f"{who.name} (console)", "reason": reason,
             "at": self.engine.clock.now().isoformat()}))
        log.warning("automation resumed by %s (console): %s", who.name, reason)
        return back("/status", f"Automation resumed by {who.name}: {reason}")


def routes(app: web.Application, api: Api, access: Access) -> None:
    actions = Actions(api, access)
    app.router.add_post("/incidents/{id}/{decision:approve|reject}", actions.decide)
    app.router.add_post("/incidents/{id}/{act:retry|close}", actions.manual)
    app.router.add_post("/incidents/{id}/{act:ack|release}", actions.handoff)
    app.router.add_post("/status/pause", actions.pause)
    app.router.add_post("/status/resume", actions.resume)
