"""A fake PagerDuty for tests: the Events API v2 and the v3 webhooks it sends.

Events API v2 (``POST /v2/enqueue``), as PagerDuty answers it:

* 202 ``{"status": "success", "message": "Event processed", "dedup_key"}`` for a valid
  event; a trigger without a ``dedup_key`` gets a generated one;
* 400 ``{"status": "invalid event", "message", "errors": [...]}`` for an invalid one:
  not JSON, an unknown ``routing_key`` (32 characters; the fake knows the keys it was
  given), an ``event_action`` other than trigger/acknowledge/resolve, a ``dedup_key``
  over 255 characters or missing on acknowledge/resolve, a trigger without ``payload``
  or with a ``summary`` missing or over 1024 characters, no ``source``, a ``severity``
  other than critical/error/warning/info;
* 429 ``{"status": "throttle event", ...}`` for the next ``throttle(n)`` requests.

``alerts`` holds each dedup key's status (triggered → acknowledged → resolved; a second
trigger of an open alert adds to it, it does not page again), ``events`` every valid
event, ``pages`` the triggers that opened (paged) an alert.

Webhooks v3: ``webhook(event_type, incident_key, ...)`` builds the body PagerDuty POSTs
(``{"event": {"id", "event_type", "resource_type", "occurred_at", "agent", "data"}}``),
``signature(secret, body)`` its ``X-PagerDuty-Signature`` (``v1=`` HMAC-SHA256 hex).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")


class FakePagerDuty:
    def __init__(self, routing_keys: tuple[str, ...] = ("R" * 32,)) -> None:
        self.routing_keys = set(routing_keys)
        self.events: list[dict[str, Any]] = []
        self.pages: list[dict[str, Any]] = []
        self.alerts: dict[str, str] = {}
        self.requests = 0
        self._throttle = 0
        app = web.Application()
        app.router.add_post("/v2/enqueue", self._enqueue)
        self._runner = web.AppRunner(app, access_log=None)
        self.url = ""

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self._runner.cleanup()

    def throttle(self, n: int) -> None:
        """Answer the next ``n`` requests 429."""
        self._throttle = n

    async def _enqueue(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self._throttle > 0:
            self._throttle -= 1
            return web.json_response({"status": "throttle event",
                                      "message": "Requests for this service are arriving too "
                                                 "quickly. Please retry later."}, status=429)
        try:
            event = json.loads(await request.read())
        except ValueError:
            return _invalid(["Event object is invalid"])
        errors = self._errors(event) if isinstance(event, dict) else ["Event object is invalid"]
        if errors:
            return _invalid(errors)
        key = event.get("dedup_key") or uuid.uuid4().hex
        action = event["event_action"]
        self.events.append(event)
        status = self.alerts.get(key)
        if action == "trigger":
            if status in (None, "resolved"):
                self.alerts[key] = "triggered"
                self.pages.append(event)
        elif status in ("triggered", "acknowledged"):
            self.alerts[key] = "acknowledged" if action == "acknowledge" else "resolved"
        return web.json_response({"status": "success", "message": "Event processed",
                                  "dedup_key": key}, status=202)

    def _errors(self, event: dict[str, Any]) -> list[str]:
        errors = []
        if event.get("routing_key") not in self.routing_keys:
            errors.append("'routing_key' is invalid")
        action = event.get("event_action")
        if action not in ACTIONS:
            errors.append("'event_action' is invalid (must be one of trigger, acknowledge, "
                          "resolve)")
        key = event.get("dedup_key")
        if key is not None and (not isinstance(key, str) or len(key) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action in ("acknowledge", "resolve") and not key:
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if action == "trigger":
            errors += _payload_errors(event.get("payload"))
        return errors


def _payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    errors = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary or len(summary) > 1024:
        errors.append("'payload.summary' is missing or longer than 1024 characters")
    if not payload.get("source"):
        errors.append("'payload.source' is missing")
    if payload.get("severity") not in SEVERITIES:
        errors.append("'payload.severity' is invalid")
    return errors


def _invalid(errors: list[str]) -> web.Response:
    return web.json_response({"status": "invalid event", "message": "Event object is invalid",
                              "errors": errors}, status=400)


def webhook(event_type: str, incident_key: str, *, agent: str = "Alice Oncall",
            occurred_at: datetime | None = None, event_id: str | None = None) -> bytes:
    """The body of a v3 webhook about an incident whose ``incident_key`` (the Events API
    dedup key) is ``incident_key``."""
    at = (occurred_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"event": {
        "id": event_id or uuid.uuid4().hex[:26].upper(), "event_type": event_type,
        "resource_type": "incident", "occurred_at": at,
        "agent": {"html_url": "https://acme.pagerduty.com/users/PLH1HKV", "id": "PLH1HKV",
                  "self": "https://api.pagerduty.com/users/PLH1HKV", "summary": agent,
                  "type": "user_reference"},
        "client": None,
        "data": {"id": "PGR0VU2", "type": "incident", "number": 2,
                 "self": "https://api.pagerduty.com/incidents/PGR0VU2",
                 "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                 "status": event_type.split(".", 1)[1], "incident_key": incident_key,
                 "created_at": at, "title": "remediator escalation",
                 "service": {"id": "PF9KMXH", "summary": "API Service",
                             "type": "service_reference"}}}}
    return json.dumps(body).encode()


def signature(secret: str, body: bytes) -> str:
    """The ``X-PagerDuty-Signature`` header of ``body`` under ``secret``."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
