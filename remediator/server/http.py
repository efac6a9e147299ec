"""The HTTP surface (aiohttp): the Alertmanager webhook, the incidents API, the
kill switch, approvals, Slack interactions, health and metrics.

Status codes are chosen for Alertmanager's retry rules: it retries 5xx and
network errors and drops everything else. So 400 (malformed or wrong schema),
401, 403, 413 and 415 are the sender's problem and final; the webhook answers 503
only when an alert could not be persisted, so that Alertmanager tries again.
(The Slack interactions route also answers 503 when it cannot check a user
group's membership: the click is not approved, and can be tried again.) Errors are
JSON: ``{"error": "...", "detail": ...}``.

Every API route needs a credential whose role grants its right (``server/auth.py``):
401 without a valid one, 403 when the role does not allow the route. Who paused,
resumed, approved or rejected is the credential's name; free text (a pause reason,
an approval comment) is at most ``MAX_TEXT_BYTES`` of UTF-8, else 400 naming the
field and the limit.

A body must arrive within ``body_timeout``; a client that hangs up mid-body (or is
too slow) gets no answer, is logged at DEBUG and counted as
``remediator_webhook_requests_total{code="client_abort"}`` (or ``"body_timeout"``),
never as a 5xx. ``/readyz`` is not ready while the store cannot be read or the last
write to it failed (it tries a small write itself, so it becomes ready again without
traffic); it lists every dependency with its state, last success and last error
(``engine/health.py``), and stays ready while the others are down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import TypeAdapter

from remediator.adapters.graphs import MatplotlibRenderer
from remediator.engine.core import Engine
from remediator.engine.graphs import ALERT_GRAPH, incident_graphs
from remediator.engine.health import DependencyHealth
from remediator.engine.manual import ManualRefused, NoIncident
from remediator.model.alerts import WebhookError, WebhookPayload, parse_webhook
from remediator.model.incident import IncidentSummary, IncidentView
from remediator.notify.interactions import (
    Interaction,
    InteractionError,
    NotAllowed,
    ReplayGuard,
    SignatureError,
    check_allowed,
    message_refusal,
    parse_interaction,
    verify_slack_signature,
)
from remediator.ports.chat import SLACK_SINK
from remediator.ports.graphs import GraphRenderer
from remediator.ports.store import ApprovalRecord
from remediator.rendering import ACK_ACTION, incident_evidence, postmortem
from remediator.server import oncall
from remediator.server.auth import Authenticator, Credential, Principal, Right, Sso
from remediator.server.paging import CursorError, decode_cursor, encode_cursor
from remediator.settings import ServerSettings

log = logging.getLogger("remediator.server")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_TEXT_BYTES = 1024           # a pause reason, an approval comment (UTF-8 bytes)
WRITE_PROBE_FLAG = "readyz.write_probe"
# A click can reach us before remediator has stored where it posted the message (Slack
# shows the message as soon as it answers chat.postMessage; the channel and ts are
# committed a moment later). Such a click waits this long for the record, not refused.
POSTED_WAIT_SECONDS = 3.0
POSTED_POLL_SECONDS = 0.05


class ClientGone(Exception):
    """The client hung up (``client_abort``) or sent its body too slowly (``body_timeout``)
    while we read it: nobody is there to answer."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass
class ServerConfig:
    """What the server needs, resolved from ``ServerSettings`` (secrets read from their
    files); defaults come from the settings model, the one place they are defined."""

    max_body_bytes: int = ServerSettings.model_fields["max_body_bytes"].default
    bearer_token: str | None = None         # legacy: full rights, named "token"
    basic_user: str | None = None           # legacy: full rights, named after the user
    basic_password: str | None = None
    users: tuple[Credential, ...] = ()      # named tokens with roles
    header_timeout: float = ServerSettings.model_fields["header_timeout"].default
    body_timeout: float = ServerSettings.model_fields["body_timeout"].default
    max_connections: int = ServerSettings.model_fields["max_connections"].default
    slack_team_id: str | None = None
    slack_signing_secret: str | None = None
    slack_approvers: tuple[str, ...] = ()
    slack_acknowledgers: tuple[str, ...] | None = None     # None: the approvers
    pagerduty_webhook_secret: str | None = None     # serves /api/v1/pagerduty/webhook
    # how long the members of a Slack user group (S…) on an allow-list are reused
    slack_group_cache_seconds: float = 60.0
    dependencies: dict[str, str] = field(default_factory=dict)   # name → state, for /readyz
    sso: Sso = field(default_factory=Sso)      # a trusted SSO proxy (the console)
    session_ttl: float = 43200.0
    secure_cookie: str = "auto"
    insecure: bool = False

    def authenticator(self) -> Authenticator:
        tokens = list(self.users)
        if self.bearer_token:
            tokens.insert(0, Credential("token", "admin", self.bearer_token))
        basic = (Credential(self.basic_user, "admin", self.basic_password or "")
                 if self.basic_user else None)
        return Authenticator(tokens, basic)


_SUMMARIES = TypeAdapter(list[IncidentSummary])


class _Twin:
    __slots__ = ("done", "payload")

    def __init__(self, payload: WebhookPayload) -> None:
        self.payload = payload
        self.done: asyncio.Event | None = None      # made by the first copy that waits


class Twins:
    """Webhook bodies being received, by their exact bytes: a body identical to one still
    in flight (the two Alertmanagers of an HA pair racing, or Alertmanager retrying a
    webhook that timed out while remediator was still on it) waits for that one to end,
    then is received with its parsed payload: no second parse and, on SQLite, no second
    routing or write (the alerts are then committed re-deliveries). Identical bytes parse
    to the same payload, so the answer is the one the copy would have got on its own;
    if the first fails, the copy still makes its own attempt. Holds bodies only while
    they are in flight; a body with no copy costs a hash and two dict operations."""

    __slots__ = ("_bodies", "waiting")

    def __init__(self) -> None:
        self._bodies: dict[bytes, _Twin] = {}
        self.waiting = 0            # copies waiting for their first

    def __len__(self) -> int:
        return len(self._bodies)

    def get(self, body: bytes) -> _Twin | None:
        return self._bodies.get(body)

    async def first_of(self, twin: _Twin) -> WebhookPayload:
        """``twin``'s payload, once it has been received (or failed)."""
        if twin.done is None:
            twin.done = asyncio.Event()
        self.waiting += 1
        try:
            await twin.done.wait()
        finally:
            self.waiting -= 1
        return twin.payload

    def hold(self, body: bytes, payload: WebhookPayload) -> None:
        self._bodies[body] = _Twin(payload)

    def release(self, body: bytes) -> None:
        done = self._bodies.pop(body).done
        if done is not None:
            done.set()


def error(status: int, message: str, **detail: Any) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if detail:
        body["detail"] = detail
    return web.json_response(body, status=status)


def text_field(data: Any, name: str, default: str) -> str:
    """A free-text field of a JSON body: a string of at most MAX_TEXT_BYTES (UTF-8), else
    ``web.HTTPBadRequest`` naming the field and the limit."""
    value = data.get(name) if isinstance(data, dict) else None
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise web.HTTPBadRequest(reason=f"{name}: must be a string")
    size = len(value.encode())
    if size > MAX_TEXT_BYTES:
        raise web.HTTPBadRequest(reason=f"{name}: at most {MAX_TEXT_BYTES} bytes "
                                        f"(got {size})")
    return value


class Api:
    def __init__(self, engine: Engine, config: ServerConfig,
                 health: DependencyHealth | None = None,
                 graphs: GraphRenderer | None = None) -> None:
        self.engine = engine
        self.config = config
        self.health = health or _configured(engine, config)
        self.auth = config.authenticator()
        self.ready = False
        self.accepting = True
        self.write_failure: str | None = None   # the last store write's error, until one works
        self.graphs: GraphRenderer = graphs or MatplotlibRenderer()
        self.replays = ReplayGuard()
        self.twins = Twins()
        # Slack user group id → (valid until, on the engine clock; member user ids)
        self._group_members: dict[str, tuple[datetime, frozenset[str]]] = {}
        self._group_locks: dict[str, asyncio.Lock] = {}
        # the console's session (cookie or SSO header) of a request without an
        # Authorization header: read routes accept it (set by ``console.setup``)
        self.session_of: Callable[[web.Request], Principal | None] | None = None

    # --- auth and bodies -----------------------------------------------------------

    def auth_configured(self) -> bool:
        return self.auth.configured

    def caller(self, request: web.Request, right: Right) -> Principal | web.Response:
        """The authenticated caller if their role grants ``right``; else the 401/403."""
        header = request.headers.get("Authorization", "")
        who = self.auth.identify(header)
        if who is None and not header and self.session_of is not None \
                and right is Right.READ:
            who = self.session_of(request)
        if who is None:
            return web.json_response({"error": "unauthorized"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="remediator"'})
        if not who.may(right):
            return error(403, f"forbidden: credential {who.name!r} (role {who.role}) may not "
                              f"{right.value}")
        return who

    def too_large(self) -> web.Response:
        return error(413, f"body larger than {self.config.max_body_bytes} bytes")

    async def read_body(self, request: web.Request) -> bytes:
        """The whole body within ``body_timeout``; ``ClientGone`` if the client hangs up
        or is too slow (the connection is then closed)."""
        if request.content.is_eof():         # all of it arrived already: no timer needed
            return await request.read()
        try:
            async with asyncio.timeout(self.config.body_timeout):
                return await request.read()
        except TimeoutError:
            if request.transport is not None:
                request.transport.abort()
            raise ClientGone("body_timeout", f"body not received within "
                                             f"{self.config.body_timeout:g}s") from None
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise ClientGone("client_abort", f"client hung up mid-body: {exc}") from None

    async def read_json(self, request: web.Request) -> Any:
        body = await self.read_body(request)
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise web.HTTPBadRequest(reason="body must be a JSON object") from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(reason="body must be a JSON object")
        return data

    # --- routes --------------------------------------------------------------------

    async def alerts(self, request: web.Request) -> web.Response:
        who = self.caller(request, Right.POST_ALERTS)
        if isinstance(who, web.Response):
            return who
        if not self.accepting:
            return error(503, "shutting down; retry on another replica or later")
        ctype = request.content_type
        if ctype not in ("application/json", "text/json"):
            return error(415, f"content type must be application/json, not {ctype!r}")
        if request.content_length is not None and \
                request.content_length > self.config.max_body_bytes:
            return self.too_large()
        try:
            body = await self.read_body(request)
        except web.HTTPRequestEntityTooLarge:
            return self.too_large()
        twin = self.twins.get(body)
        if twin is not None:
            with self.engine.gate:      # a copy waiting for its first is being received
                payload = await self.twins.first_of(twin)
        else:
            try:
                payload = parse_webhook(body)
            except WebhookError as exc:
                return error(400, "invalid webhook payload", problems=exc.problems)
            self.twins.hold(body, payload)
        try:
            counts = await self.engine.intake.receive(payload)
        except Exception as exc:
            log.exception("could not persist %d alerts; answering 503 so Alertmanager retries",
                          len(payload.alerts))
            self.write_failure = f"{type(exc).__name__}: {exc}"
            return error(503, f"alerts not persisted: {type(exc).__name__}: {exc}")
        finally:
            if twin is None:
                self.twins.release(body)
        self.write_failure = None
        return web.json_response({"status": "accepted", "alerts": counts})

    async def incidents(self, request: web.Request) -> web.Response:
        """A page of incident summaries, newest first: ``limit`` (default 100, at most
        1000), ``cursor`` (the previous page's ``next_cursor``), ``state``, ``playbook``;
        ``next_cursor`` is null on the last page."""
        who = self.caller(request, Right.READ)
        if isinstance(who, web.Response):
            return who
        from remediator.model.incident import IncidentState
        state = request.query.get("state")
        if state is not None and state not in set(IncidentState):
            return error(400, f"state must be one of {', '.join(IncidentState)}, "
                              f"not {state[:40]!r}")
        try:
            limit = min(1000, max(1, int(request.query.get("limit", "100"))))
        except ValueError:
            return error(400, "limit must be an integer")
        playbook = request.query.get("playbook") or None
        filters = {k: v for k, v in (("state", state), ("playbook", playbook)) if v}
        cursor = request.query.get("cursor")
        try:
            after = decode_cursor(cursor, filters) if cursor is not None else None
        except CursorError as exc:
            if cursor is None:
                return error(400, "bad cursor")
            if str(exc).startswith("it belongs"):
                return error(400, f"cursor {cursor[:40]!r}: {exc}; pass the same filters "
                                  "with it")
            return error(400, f"cursor {cursor[:40]!r} is not one this API gave out "
                              f"(pass next_cursor of the previous page unchanged)")
        page, last = await self.engine.store.incident_page(
            state=state, playbook=playbook, after=after, limit=limit)
        next_cursor = json.dumps(encode_cursor(last, filters) if last is not None else None)
        body = b"".join((b'{"incidents":', _SUMMARIES.dump_json(page), b',"next_cursor":',
                         next_cursor.encode(), b"}"))
        return web.Response(body=body, content_type="application/json")

    async def _readable(self, request: web.Request,
                        alert_limit: int | None = None) -> IncidentView | web.Response:
        """The incident of ``{id}`` for a caller who may read, else the error to answer."""
        who = self.caller(request, Right.READ)
        if isinstance(who, web.Response):
            return who
        view = await self.engine.store.get_incident(request.match_info["id"],
                                                    alert_limit=alert_limit)
        if view is None:
            return error(404, f"no incident {request.match_info['id']!r}")
        return view

    async def incident(self, request: web.Request) -> web.Response:
        view = await self._readable(request)
        if isinstance(view, web.Response):
            return view
        return web.json_response(view.model_dump(mode="json"))

    async def evidence(self, request: web.Request) -> web.Response:
        """What the incident's verifications saw, poll by poll (the values, what they
        needed, how long they held) and what was collected from the cluster."""
        view = await self._readable(request, alert_limit=1)
        if isinstance(view, web.Response):
            return view
        collected = await self.engine.store.list_evidence(view.id)
        return web.json_response(incident_evidence(view, collected))

    async def postmortem(self, request: web.Request) -> web.Response:
        """A postmortem draft of the incident, in Markdown."""
        view = await self._readable(request)
        if isinstance(view, web.Response):
            return view
        collected = await self.engine.store.list_evidence(view.id)
        api = f"{request.scheme}://{request.host}"
        return web.Response(text=postmortem(view, collected, api=api),
                            content_type="text/markdown", charset="utf-8")

    async def graph(self, request: web.Request) -> web.Response:
        """The incident's graph as a PNG: ``?of=verification`` (the default: the value
        its verification compared, else the alert's) or ``?of=alert`` (the alert's
        own expression)."""
        view = await self._readable(request)
        if isinstance(view, web.Response):
            return view
        of = request.query.get("of", "verification")
        if of not in ("verification", "alert"):
            return error(400, f"of must be 'verification' or 'alert', not {of!r}")
        graphs = await incident_graphs(view, self.engine.ports.metrics, self.engine.clock.now())
        if of == "alert":
            graphs = [g for g in graphs if g.title == ALERT_GRAPH]
        if not graphs:
            return error(404, "no graph: no step of this incident polled Prometheus, and its "
                              "alerts' generatorURL carries no expression (g0.expr)")
        png = await self.graphs.render(graphs[0])
        return web.Response(body=png, content_type="image/png",
                            headers={"Cache-Control": "no-store"})

    async def alert_list(self, request: web.Request) -> web.Response:
        who = self.caller(request, Right.READ)
        if isinstance(who, web.Response):
            return who
        try:
            limit = min(10000, max(1, int(request.query.get("limit", "100"))))
        except ValueError:
            return error(400, "limit must be an integer")
        rows = await self.engine.store.list_alerts(outcome=request.query.get("outcome"),
                                                   limit=limit)
        return web.json_response({"alerts": rows})

    async def pause(self, request: web.Request) -> web.Response:
        """The kill switch: every cluster, or one with ``{"cluster": NAME}`` (``""``: the
        default cluster). ``by`` is the credential's name; a ``by`` in the body is
        ignored."""
        who = self.caller(request, Right.OPERATE)
        if isinstance(who, web.Response):
            return who
        data = await self.read_json(request)
        reason = text_field(data, "reason", "paused by an operator")
        cluster = self._cluster_field(data)
        await self.engine.guards.pause(reason, who.name, self.engine.clock.now(), cluster)
        where = "everywhere" if cluster is None else f"in cluster {cluster or '(default)'}"
        log.warning("automation paused %s by %s: %s", where, who.name, reason)
        body: dict[str, Any] = {"paused": True, "reason": reason, "by": who.name}
        if cluster is not None:
            body["cluster"] = cluster
        return web.json_response(body)

    async def resume(self, request: web.Request) -> web.Response:
        """Lift every pause (the kill switch and each cluster's), or one cluster's with
        ``{"cluster": NAME}``."""
        who = self.caller(request, Right.OPERATE)
        if isinstance(who, web.Response):
            return who
        cluster = self._cluster_field(await self.read_json(request))
        await self.engine.guards.resume(cluster)
        where = "everywhere" if cluster is None else f"in cluster {cluster or '(default)'}"
        log.warning("automation resumed %s by %s", where, who.name)
        body: dict[str, Any] = {"paused": False, "by": who.name}
        if cluster is not None:
            body["cluster"] = cluster
        return web.json_response(body)

    def _cluster_field(self, data: dict[str, Any]) -> str | None:
        """``cluster`` of a pause/resume body: absent or null for every cluster, else a
        name under kubernetes.clusters or ``""`` (the default cluster)."""
        cluster = data.get("cluster")
        if cluster is None:
            return None
        known = self.engine.guards.cluster_names()
        if not isinstance(cluster, str) or cluster not in known:
            names = ", ".join(repr(c) for c in known)
            raise web.HTTPBadRequest(reason=f"cluster: {cluster!r} is not a cluster (known: "
                                            f"{names}; \"\" is the default cluster)")
        return cluster

    async def status(self, request: web.Request) -> web.Response:
        who = self.caller(request, Right.READ)
        if isinstance(who, web.Response):
            return who
        # top level: the pause of the default cluster (or the global kill switch), as
        # before clusters; "clusters": each one's budget and pause
        paused = await self.engine.guards.paused("")
        return web.json_response({
            "paused": paused is not None,
            "pause": paused.__dict__ if paused else None,     # kind, reason, by, at, cluster
            "clusters": await self.cluster_status(),
            "running_incidents": self.engine.running,
            "playbooks": [pb.name for pb in self.engine.playbook_list],
            "dry_run": self.engine.settings.dry_run,
        })

    async def cluster_status(self) -> list[dict[str, Any]]:
        """Per cluster: its action budget (spent and left in the current window) and the
        pause in effect there (the global kill switch or its own)."""
        guards = self.engine.guards
        since = self.engine.clock.now() - timedelta(seconds=guards.action_budget_window)
        out = []
        for cluster in guards.cluster_names():
            spent = await self.engine.store.mutations_since(since, cluster)
            pause = await guards.paused(cluster)
            out.append({"name": cluster, "default": cluster == "",
                        "budget": guards.action_budget, "window": guards.action_budget_window,
                        "spent": spent, "left": max(0, guards.action_budget - spent),
                        "paused": pause is not None,
                        "pause": pause.__dict__ if pause else None})
        return out

    async def decide(self, request: web.Request) -> web.Response:
        """``POST /api/v1/approvals/{id}/approve|reject`` with an optional ``comment``: the
        same decision as a Slack click, by the credential's name."""
        who = self.caller(request, Right.OPERATE)
        if isinstance(who, web.Response):
            return who
        data = await self.read_json(request)
        comment = text_field(data, "comment", "")
        approval = await self.engine.store.get_approval(request.match_info["id"])
        if approval is None:
            return error(404, f"no approval {request.match_info['id']!r}")
        approved = request.match_info["decision"] == "approve"
        by = f"{who.name} (api)" + (f": {comment}" if comment else "")
        decided, text = await self._decide(approval, approved, by)
        return web.json_response({"text": text}, status=200 if decided else 409)

    async def manual(self, request: web.Request) -> web.Response:
        """``POST /api/v1/incidents/{id}/retry|resolve`` (optional ``reason`` for resolve):
        an escalated incident's ladder run again from its first step, or the incident
        closed by hand; by the credential's name. 404 unknown, 409 not escalated."""
        who = self.caller(request, Right.OPERATE)
        if isinstance(who, web.Response):
            return who
        data = await self.read_json(request)
        incident_id = request.match_info["id"]
        by = f"{who.name} (api)"
        try:
            if request.match_info["act"] == "retry":
                text = await self.engine.manual.retry(incident_id, by)
            else:
                text = await self.engine.manual.close(incident_id, by,
                                                      text_field(data, "reason", ""))
        except NoIncident:
            return error(404, f"no incident {incident_id!r}")
        except ManualRefused as exc:
            return error(409, str(exc))
        return web.json_response({"text": text})

    async def _decide(self, approval: ApprovalRecord, approved: bool,
                      who: str) -> tuple[bool, str]:
        """Record one decision (the Slack and API paths): (recorded, what to tell)."""
        now = self.engine.clock.now()
        if now >= approval.expires_at:
            # Too late, even if the waiting incident has not noticed yet (it polls).
            if await self.engine.store.decide_approval(approval.id, "expired", "remediator",
                                                       now):
                self.engine.wake(approval.incident_id)
            return False, "This request has expired."
        decision = "approved" if approved else "rejected"
        if not await self.engine.store.decide_approval(approval.id, decision, who, now):
            return False, "This request was already answered."
        self.engine.wake(approval.incident_id)
        return True, f"{decision} by {who}"

    async def slack_interactions(self, request: web.Request) -> web.Response:
        secret = self.config.slack_signing_secret
        if not secret:
            return error(404, "Slack interactivity is not configured")
        body = await self.read_body(request)
        try:
            verify_slack_signature(secret, request.headers.get("X-Slack-Request-Timestamp", ""),
                                   body, request.headers.get("X-Slack-Signature", ""),
                                   now=time.time())
            self.replays.check(request.headers.get("X-Slack-Signature", ""), time.time())
        except SignatureError as exc:
            return error(401, str(exc))
        try:
            interaction = parse_interaction(body)
        except InteractionError as exc:
            return error(400, str(exc))
        if interaction.action_id == ACK_ACTION:
            return await oncall.slack_ack(self, interaction)
        approval = await self.engine.store.get_approval(interaction.value)
        if approval is None:
            return error(404, "unknown approval")
        refusal = await self._check_click(interaction, approval)
        if refusal is not None:
            return refusal
        who = f"{interaction.user_name or interaction.user_id} ({interaction.user_id})"
        _, text = await self._decide(approval, interaction.approved, who)
        return web.json_response({"text": text})

    async def posted(self, incident_id: str, slot: str, *,
                     wait: bool) -> tuple[str | None, str | None]:
        """The channel and ts of the Slack message remediator posted in ``slot`` of
        ``incident_id`` (None, None: not posted). With ``wait``, a missing record is read
        again for up to ``POSTED_WAIT_SECONDS``: the post may be answered but not yet
        committed."""
        store = self.engine.store
        prefix = f"{SLACK_SINK}:{slot}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (POSTED_WAIT_SECONDS if wait else 0.0)
        while True:
            posted = (await store.sink_get(incident_id, f"{prefix}.channel"),
                      await store.sink_get(incident_id, f"{prefix}.ts"))
            if all(posted) or loop.time() >= deadline:
                return posted
            await asyncio.sleep(POSTED_POLL_SECONDS)

    async def _check_click(self, interaction: Interaction,
                           approval: ApprovalRecord) -> web.Response | None:
        """None if this click may decide ``approval``: the configured workspace, the very
        message remediator posted for it, and a user on its allow-list."""
        posted = await self.posted(approval.incident_id, f"slack.approval.{approval.id}",
                                   wait=approval.decision is None)
        refusal = message_refusal(interaction, self.config.slack_team_id, posted)
        if refusal is not None:
            log.warning("Slack click on approval %s refused: %s", approval.id, refusal)
            return web.json_response({"response_type": "ephemeral",
                                      "replace_original": False, "text": refusal},
                                     status=403)
        allowed = approval.approvers or self.config.slack_approvers
        try:
            check_allowed(interaction.user_id, allowed)
        except NotAllowed as exc:
            return await self._check_groups(interaction.user_id, allowed, exc)
        return None

    async def _check_groups(self, user_id: str, allowed: Sequence[str],
                            not_listed: NotAllowed) -> web.Response | None:
        """``user_id`` is not listed by id: look in the user groups (``S…``) of ``allowed``.
        None if a group holds the user; 403 if none does; 503 if a group could not be
        resolved and no other one holds the user (never allow on a failed lookup)."""
        groups = list(dict.fromkeys(e.strip() for e in allowed if e.strip().startswith("S")))
        if not groups:
            return error(403, str(not_listed))
        members: dict[str, frozenset[str]] = {}
        failures: dict[str, str] = {}
        for group in groups:
            try:
                members[group] = await self._usergroup_members(group)
            except Exception as exc:
                log.warning("could not resolve Slack user group %s: %s", group, exc)
                failures[group] = str(exc) or type(exc).__name__
        try:
            check_allowed(user_id, allowed, members)
        except NotAllowed as exc:
            if failures:
                return error(503, "could not check the approver: Slack user group membership "
                                  "is unavailable; try again", groups=failures)
            return error(403, str(exc))
        return None

    async def _usergroup_members(self, group: str) -> frozenset[str]:
        """The members of a Slack user group, through the chat port, cached for
        ``slack_group_cache_seconds``; concurrent clicks share one lookup."""
        lock = self._group_locks.setdefault(group, asyncio.Lock())
        async with lock:
            now = self.engine.clock.now()
            cached = self._group_members.get(group)
            if cached is not None and now < cached[0]:
                return cached[1]
            chat = self.engine.ports.chat
            if chat is None:
                raise RuntimeError("Slack is not configured (no token)")
            users = frozenset(str(u) for u in await chat.usergroup_members(group))
            ttl = timedelta(seconds=self.config.slack_group_cache_seconds)
            self._group_members[group] = (self.engine.clock.now() + ttl, users)
            return users

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        """Ready while the store can be read and written; every dependency is listed with
        its state, last success and last error, but only the store's is fatal (a down
        Prometheus fails the checks that need it, not the intake)."""
        store_ok, store_detail = await self._store_state()
        if store_ok:
            self.health.succeeded("store")
        else:
            self.health.failed("store", store_detail)
        self.health.dependencies["store"].detail = store_detail
        ready = self.ready and store_ok and self.accepting
        return web.json_response(
            {"ready": ready, "dependencies": self.health.report(),
             "playbooks": f"{len(self.engine.playbook_list)} loaded"},
            status=200 if ready else 503)

    async def _store_state(self) -> tuple[bool, str]:
        """Whether the store reads (and, after a failed write, writes), and what it says."""
        try:
            await self.engine.store.ping()
        except Exception as exc:
            return False, f"error: {exc}"
        if self.write_failure is not None and not await self._probe_write():
            return False, f"writes failing: {self.write_failure}"
        return True, "ok"

    async def _probe_write(self) -> bool:
        """After a failed write: one small write of our own (so that readiness comes back
        without waiting for traffic a not-ready pod does not get). True if it worked."""
        try:
            await self.engine.store.set_flag(WRITE_PROBE_FLAG,
                                             self.engine.clock.now().isoformat())
        except Exception as exc:
            self.write_failure = f"{type(exc).__name__}: {exc}"
            return False
        self.write_failure = None
        return True

    async def metrics(self, request: web.Request) -> web.Response:
        try:
            await self.engine.refresh_gauges()
        except Exception:                  # a store that is down must not hide the rest
            log.exception("refreshing the store's gauges failed")
        data = generate_latest(self.engine.metrics.registry)
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _configured(engine: Engine, config: ServerConfig) -> DependencyHealth:
    """Health with only what the configuration says (no calls seen yet): for a server
    built without the daemon's ``DependencyHealth``."""
    health = DependencyHealth(engine.clock, engine.metrics)
    for name, detail in config.dependencies.items():
        health.track("cluster" if name == "kubernetes" else name, detail,
                     configured=not detail.startswith("not configured"))
    health.track("store")
    return health


def build_app(engine: Engine, config: ServerConfig,
              health: DependencyHealth | None = None, *,
              graphs: GraphRenderer | None = None) -> tuple[web.Application, Api]:
    """The API's application; ``graphs``: the renderer of ``graph.png`` (default: its
    own, whose worker processes stop with the application)."""
    api = Api(engine, config, health, graphs)

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        code: str | None = None
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = error(exc.status, exc.reason)
        except ClientGone as exc:
            log.debug("%s %s: %s", request.method, request.path, exc)
            code = exc.code
            response = error(408, str(exc))          # nobody reads it
        except asyncio.CancelledError:   # the client left and aiohttp cancels its handlers
            if request.match_info.route is webhook:
                log.debug("%s %s: cancelled (client gone)", request.method, request.path)
                engine.metrics.webhook_requests.labels("client_abort").inc()
            raise
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = error(500, "internal error")
        if request.match_info.route is webhook:      # POST /api/v1/alerts only
            if code is None:
                engine.metrics.count_webhook(response.status)
            else:
                engine.metrics.webhook_requests.labels(code).inc()
        return response

    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[errors])
    webhook = app.router.add_post("/api/v1/alerts", api.alerts)
    if graphs is None:                   # its own renderer: its workers end with the app
        async def close_graphs(_: web.Application) -> None:
            await api.graphs.close()
        app.on_cleanup.append(close_graphs)
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/api/v1/alerts", api.alert_list),
        ("GET", "/api/v1/incidents", api.incidents),
        ("GET", "/api/v1/incidents/{id}", api.incident),
        ("GET", "/api/v1/incidents/{id}/evidence", api.evidence),
        ("GET", "/api/v1/incidents/{id}/graph.png", api.graph),
        ("GET", "/api/v1/incidents/{id}/postmortem", api.postmortem),
        ("POST", "/api/v1/pause", api.pause),
        ("POST", "/api/v1/resume", api.resume),
        ("POST", "/api/v1/approvals/{id}/{decision:approve|reject}", api.decide),
        ("POST", "/api/v1/incidents/{id}/{act:retry|resolve}", api.manual),
        ("GET", "/api/v1/status", api.status),
        ("POST", "/api/v1/slack/interactions", api.slack_interactions),
        ("GET", "/healthz", api.healthz),
        ("GET", "/readyz", api.readyz),
        ("GET", "/metrics", api.metrics)]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    oncall.add_routes(app, api)
    return app, api
