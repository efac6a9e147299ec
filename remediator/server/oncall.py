"""The on-call routes: a human acknowledges an incident, or releases it.

``POST /api/v1/incidents/{id}/ack`` and ``POST /api/v1/incidents/{id}/release``
(operator role): 200 with who and when, 404 for an unknown incident, 409 for a closed
one (or a release of an incident nobody acknowledged). Who acted is the credential's
name. The Slack Acknowledge button (``slack_ack``) arrives through the Slack
interactions route, already signature-checked and replay-checked there; here it must
come from the escalation message remediator posted for the incident, in the configured
workspace, by a user on the acknowledgers' allow-list (``slack.acknowledgers``, else the
approvers'). A refused click is journaled.

Not here: what an acknowledgement does (``engine/handoff.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from remediator.engine.chain import message_key
from remediator.engine.handoff import Handoff, HandoffError
from remediator.engine.manual import ManualRefused, NoIncident
from remediator.notify.interactions import (
    Interaction,
    InteractionError,
    NotAllowed,
    ReplayGuard,
    SignatureError,
    check_allowed,
    message_refusal,
)
from remediator.notify.pagerduty import parse_pagerduty_webhook, verify_pagerduty_signature
from remediator.server.auth import Principal, Right

if TYPE_CHECKING:
    from remediator.engine.core import Engine


class Api(Protocol):
    """What these routes use of ``server.http.Api``."""

    engine: Engine

    @property
    def config(self) -> Any: ...

    def caller(self, request: web.Request, right: Right) -> Principal | web.Response: ...

    async def read_body(self, request: web.Request) -> bytes: ...

    async def _check_groups(self, user_id: str, allowed: Sequence[str],
                            not_listed: NotAllowed) -> web.Response | None: ...

    async def posted(self, incident_id: str, slot: str, *,
                     wait: bool) -> tuple[str | None, str | None]: ...

log = logging.getLogger("remediator.server")

_STATUS = {"not_found": 404, "closed": 409, "not_acknowledged": 409}


def _answer(done: Handoff, verb: str) -> dict[str, Any]:
    return {"incident": done.incident_id, verb: True, "by": done.by,
            "at": done.at.isoformat(), "already": done.already,
            "mtta_seconds": done.mtta_seconds}


def _failure(exc: HandoffError) -> web.Response:
    return web.json_response({"error": str(exc), "code": exc.code},
                             status=_STATUS.get(exc.code, 409))


def add_routes(app: web.Application, api: Api) -> None:
    async def handoff(request: web.Request) -> web.Response:
        """``POST …/ack`` or ``…/release`` by an operator."""
        who = api.caller(request, Right.OPERATE)
        if isinstance(who, web.Response):
            return who
        act = request.match_info["act"]
        hand = api.engine.acknowledge if act == "ack" else api.engine.release
        try:
            done = await hand(request.match_info["id"], who.name, via="api")
        except HandoffError as exc:
            return _failure(exc)
        return web.json_response(_answer(done, "acknowledged" if act == "ack" else "released"))

    replays = ReplayGuard()

    async def pagerduty(request: web.Request) -> web.Response:
        return await pagerduty_webhook(api, request, replays)

    app.router.add_post("/api/v1/incidents/{id}/{act:ack|release}", handoff)
    app.router.add_post("/api/v1/pagerduty/webhook", pagerduty)


async def pagerduty_webhook(api: Api, request: web.Request,
                            replays: ReplayGuard) -> web.Response:
    """A PagerDuty v3 webhook: signature verified, within five minutes, each event once
    (else 401); ``incident.acknowledged`` acknowledges the incident whose id is the
    PagerDuty incident's key, ``incident.resolved`` too and closes it by hand when it is
    escalated (else humans have it: remediator keeps off the target until its alerts
    resolve, with a note); anything else is answered 200 and ignored (PagerDuty
    disables a subscription that keeps failing)."""
    secret = api.config.pagerduty_webhook_secret
    if not secret:
        return web.json_response({"error": "PagerDuty webhooks are not configured"},
                                 status=404)
    body = await api.read_body(request)
    try:
        verify_pagerduty_signature(secret, body,
                                   request.headers.get("X-PagerDuty-Signature", ""))
        event = parse_pagerduty_webhook(body, time.time())
        replays.check(event.event_id, time.time())
    except SignatureError as exc:
        return web.json_response({"error": str(exc)}, status=401)
    except InteractionError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if event.event_type not in ("incident.acknowledged", "incident.resolved"):
        return web.json_response({"ignored": f"event type {event.event_type}"})
    who = f"{event.agent} (pagerduty)"
    if event.event_type == "incident.resolved":
        try:    # an escalated incident is closed by hand; one still running is held
            text = await api.engine.manual.close(event.incident_key, who,
                                                 "resolved in PagerDuty")
            return web.json_response({"incident": event.incident_key, "closed": text})
        except (ManualRefused, NoIncident):
            pass
    try:
        done = await api.engine.acknowledge(event.incident_key, who, via="pagerduty")
    except HandoffError as exc:
        return web.json_response({"ignored": str(exc)})
    if event.event_type == "incident.resolved":
        await api.engine.handoffs.note(event.incident_key, f"resolved in PagerDuty by "
                                       f"{event.agent}: humans have it until its alerts "
                                       "resolve")
    return web.json_response({"incident": done.incident_id, "acknowledged": True,
                              "by": done.by, "already": done.already})


async def slack_ack(api: Api, interaction: Interaction) -> web.Response:
    """An Acknowledge click (verified and not a replay): the checks, then the ack."""
    incident_id = interaction.value
    view = await api.engine.store.get_incident(incident_id, alert_limit=1)
    if view is None:
        return web.json_response({"error": "unknown incident"}, status=404)
    store = api.engine.store
    page = message_key(interaction.channel_id, interaction.message_ts)
    posted: tuple[str | None, str | None]
    if await store.sink_get(incident_id, page) is not None:      # one of its chain's pages
        posted = (interaction.channel_id, interaction.message_ts)
    else:
        posted = await api.posted(incident_id, "slack.escalated", wait=True)
    who = f"{interaction.user_name or interaction.user_id} ({interaction.user_id})"
    refusal = message_refusal(interaction, api.config.slack_team_id, posted,
                              what="escalation message")
    if refusal is not None:
        await api.engine.handoffs.refused(incident_id, who, refusal, via="slack")
        return web.json_response({"response_type": "ephemeral", "replace_original": False,
                                  "text": refusal}, status=403)
    allowed = api.config.slack_acknowledgers
    if allowed is None:
        allowed = api.config.slack_approvers
    try:
        check_allowed(interaction.user_id, allowed)
    except NotAllowed as exc:
        denied = await api._check_groups(interaction.user_id, allowed, exc)
        if denied is not None:
            if denied.status == 403:
                await api.engine.handoffs.refused(incident_id, who, "not on the allow-list",
                                                  via="slack")
            return denied
    try:
        done = await api.engine.acknowledge(incident_id, who, via="slack")
    except HandoffError as exc:
        return web.json_response({"response_type": "ephemeral", "replace_original": False,
                                  "text": str(exc)}, status=_STATUS.get(exc.code, 409))
    text = (f"already acknowledged by {done.by}" if done.already
            else f"acknowledged by {done.by}")
    return web.json_response({"text": text})
