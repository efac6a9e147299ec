"""The HTTP surface (aiohttp): the Alertmanager webhook, the incidents API, the
kill switch, Slack interactions, health and metrics.

Status codes are chosen for Alertmanager's retry rules: it retries 5xx and
network errors and drops everything else. So 400 (malformed or wrong schema),
401, 413 and 415 are the sender's problem and final; the webhook answers 503
only when an alert could not be persisted, so that Alertmanager tries again.
(The Slack interactions route also answers 503 when it cannot check a user
group's membership: the click is not approved, and can be tried again.) Errors are
JSON: ``{"error": "...", "detail": ...}``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from remediator.engine.core import Engine
from remediator.model.alerts import WebhookError, parse_webhook
from remediator.notify.interactions import (
    InteractionError,
    NotAllowed,
    ReplayGuard,
    SignatureError,
    check_allowed,
    parse_interaction,
    verify_slack_signature,
)
from remediator.settings import ServerSettings

log = logging.getLogger("remediator.server")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ServerConfig:
    """What the server needs, resolved from ``ServerSettings`` (secrets read from their
    files); defaults come from the settings model, the one place they are defined."""

    max_body_bytes: int = ServerSettings.model_fields["max_body_bytes"].default
    bearer_token: str | None = None
    basic_user: str | None = None
    basic_password: str | None = None
    slack_signing_secret: str | None = None
    slack_approvers: tuple[str, ...] = ()
    # how long the members of a Slack user group (S…) on an allow-list are reused
    slack_group_cache_seconds: float = 60.0
    dependencies: dict[str, str] = field(default_factory=dict)   # name → state, for /readyz


def error(status: int, message: str, **detail: Any) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if detail:
        body["detail"] = detail
    return web.json_response(body, status=status)


class Api:
    def __init__(self, engine: Engine, config: ServerConfig) -> None:
        self.engine = engine
        self.config = config
        self.ready = False
        self.accepting = True
        self.replays = ReplayGuard()
        # Slack user group id → (valid until, on the engine clock; member user ids)
        self._group_members: dict[str, tuple[datetime, frozenset[str]]] = {}
        self._group_locks: dict[str, asyncio.Lock] = {}

    # --- auth ----------------------------------------------------------------------

    def auth_configured(self) -> bool:
        return bool(self.config.bearer_token or self.config.basic_user)

    def authorized(self, request: web.Request) -> bool:
        if not self.auth_configured():
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        token = self.config.bearer_token
        if token and scheme.lower() == "bearer":
            return hmac.compare_digest(credentials.strip().encode(), token.encode())
        if self.config.basic_user and scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(credentials.strip(),
                                                     validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            ok_user = hmac.compare_digest(user.encode(), self.config.basic_user.encode())
            ok_pw = hmac.compare_digest(password.encode(),
                                        (self.config.basic_password or "").encode())
            return ok_user and ok_pw
        return False

    # --- routes --------------------------------------------------------------------

    async def alerts(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="remediator"'})
        if not self.accepting:
            return error(503, "shutting down; retry on another replica or later")
        ctype = request.content_type
        if ctype not in ("application/json", "text/json"):
            return error(415, f"content type must be application/json, not {ctype!r}")
        if request.content_length is not None and \
                request.content_length > self.config.max_body_bytes:
            return error(413, f"body larger than {self.config.max_body_bytes} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error(413, f"body larger than {self.config.max_body_bytes} bytes")
        try:
            payload = parse_webhook(body)
        except WebhookError as exc:
            return error(400, "invalid webhook payload", problems=exc.problems)
        try:
            counts = await self.engine.intake.receive(payload)
        except Exception as exc:
            log.exception("could not persist %d alerts; answering 503 so Alertmanager retries",
                          len(payload.alerts))
            return error(503, f"alerts not persisted: {type(exc).__name__}: {exc}")
        return web.json_response({"status": "accepted", "alerts": counts})

    async def incidents(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return error(401, "unauthorized")
        state = request.query.get("state")
        try:
            limit = min(1000, max(1, int(request.query.get("limit", "100"))))
        except ValueError:
            return error(400, "limit must be an integer")
        views = await self.engine.store.list_incidents(state=state, limit=limit)
        return web.json_response({"incidents": [v.model_dump(mode="json") for v in views]})

    async def incident(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return error(401, "unauthorized")
        view = await self.engine.store.get_incident(request.match_info["id"])
        if view is None:
            return error(404, f"no incident {request.match_info['id']!r}")
        return web.json_response(view.model_dump(mode="json"))

    async def alert_list(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return error(401, "unauthorized")
        try:
            limit = min(10000, max(1, int(request.query.get("limit", "100"))))
        except ValueError:
            return error(400, "limit must be an integer")
        rows = await self.engine.store.list_alerts(outcome=request.query.get("outcome"),
                                                   limit=limit)
        return web.json_response({"alerts": rows})

    async def pause(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return error(401, "unauthorized")
        try:
            data = await request.json() if request.can_read_body else {}
        except ValueError:
            return error(400, "body must be JSON")
        reason = str((data or {}).get("reason") or "paused by an operator")
        by = str((data or {}).get("by") or request.remote or "api")
        await self.engine.guards.pause(reason, by, self.engine.clock.now())
        log.warning("automation paused by %s: %s", by, reason)
        return web.json_response({"paused": True, "reason": reason})

    async def resume(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return error(401, "unauthorized")
        await self.engine.guards.resume()
        log.warning("automation resumed")
        return web.json_response({"paused": False})

    async def status(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return error(401, "unauthorized")
        paused = await self.engine.guards.paused()
        return web.json_response({
            "paused": paused.__dict__ if paused else None,
            "running_incidents": self.engine.running,
            "playbooks": [pb.name for pb in self.engine.playbook_list],
            "dry_run": self.engine.settings.dry_run,
        })

    async def slack_interactions(self, request: web.Request) -> web.Response:
        secret = self.config.slack_signing_secret
        if not secret:
            return error(404, "Slack interactivity is not configured")
        body = await request.read()
        try:
            verify_slack_signature(secret, request.headers.get("X-Slack-Request-Timestamp", ""),
                                   body, request.headers.get("X-Slack-Signature", ""),
                                   now=time.time())
        except SignatureError as exc:
            return error(401, str(exc))
        try:
            self.replays.check(request.headers.get("X-Slack-Signature", ""), time.time())
        except SignatureError as exc:
            return error(401, str(exc))
        try:
            interaction = parse_interaction(body)
        except InteractionError as exc:
            return error(400, str(exc))
        approval = await self.engine.store.get_approval(interaction.value)
        if approval is None:
            return error(404, "unknown approval")
        allowed = approval.approvers or self.config.slack_approvers
        try:
            check_allowed(interaction.user_id, allowed)
        except NotAllowed as exc:
            refusal = await self._check_groups(interaction.user_id, allowed, exc)
            if refusal is not None:
                return refusal
        now = self.engine.clock.now()
        if now >= approval.expires_at:
            # Too late, even if the waiting incident has not noticed yet (it polls).
            if await self.engine.store.decide_approval(approval.id, "expired", "remediator",
                                                       now):
                self.engine.wake(approval.incident_id)
            return web.json_response({"text": "This request has expired."})
        decision = "approved" if interaction.approved else "rejected"
        who = f"{interaction.user_name or interaction.user_id} ({interaction.user_id})"
        if not await self.engine.store.decide_approval(approval.id, decision, who, now):
            return web.json_response({"text": "This request was already answered."})
        self.engine.wake(approval.incident_id)
        return web.json_response({"text": f"{decision} by {who}"})

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
        deps = dict(self.config.dependencies)
        store_ok = True
        try:
            await self.engine.store.ping()
        except Exception as exc:
            store_ok = False
            deps["store"] = f"error: {exc}"
        else:
            deps["store"] = "ok"
        deps["playbooks"] = f"{len(self.engine.playbook_list)} loaded"
        ready = self.ready and store_ok and self.accepting
        return web.json_response({"ready": ready, "dependencies": deps},
                                 status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        try:
            await self.engine.refresh_gauges()
        except Exception:                  # a store that is down must not hide the rest
            log.exception("refreshing the store's gauges failed")
        data = generate_latest(self.engine.metrics.registry)
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(engine: Engine, config: ServerConfig) -> tuple[web.Application, Api]:
    api = Api(engine, config)

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = error(exc.status, exc.reason)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = error(500, "internal error")
        if request.match_info.route is webhook:      # POST /api/v1/alerts only
            engine.metrics.count_webhook(response.status)
        return response

    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[errors])
    webhook = app.router.add_post("/api/v1/alerts", api.alerts)
    app.router.add_get("/api/v1/alerts", api.alert_list)
    app.router.add_get("/api/v1/incidents", api.incidents)
    app.router.add_get("/api/v1/incidents/{id}", api.incident)
    app.router.add_post("/api/v1/pause", api.pause)
    app.router.add_post("/api/v1/resume", api.resume)
    app.router.add_get("/api/v1/status", api.status)
    app.router.add_post("/api/v1/slack/interactions", api.slack_interactions)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)
    app.router.add_get("/metrics", api.metrics)
    return app, api
