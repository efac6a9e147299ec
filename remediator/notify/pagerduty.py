"""The PagerDuty sink: keeps the PagerDuty alert of an incident in step with it.

An incident's on-call chain triggers its alert on a PagerDuty service (``engine/chain``
records the services under ``pagerduty.services`` in this sink's state). Then:

* ``ACKNOWLEDGED`` (from Slack, the API, the CLI or PagerDuty itself) → ``acknowledge``
* ``CLOSED`` (recovered or resolved) → ``resolve``

on every service the incident was paged on, with the incident id as the dedup key.
Delivered through the outbox: at least once, in order per incident, retried with
backoff while PagerDuty answers 429 or 5xx; an event PagerDuty refuses (400) is
dropped with a log line. Sending an acknowledge twice changes nothing at PagerDuty.

Inbound, PagerDuty's v3 webhooks (``incident.acknowledged``, ``incident.resolved``) are
verified here (``verify_pagerduty_signature``, ``parse_pagerduty_webhook``) and acted on
by the route (``server/oncall.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime

from remediator.notify.interactions import (
    MAX_AGE_SECONDS,
    BadSignature,
    MalformedInteraction,
    MissingSignature,
    StaleRequest,
)
from remediator.ports.pager import PAGED_SERVICES, PAGERDUTY_SINK, PagerAction, PagerApi
from remediator.ports.sinks import (
    EventKind,
    NotificationEvent,
    SinkState,
    delivered_before,
    remember_delivered,
)

_LAST = "pagerduty.last_event"
_ACTIONS: dict[EventKind, PagerAction] = {EventKind.ACKNOWLEDGED: "acknowledge",
                                          EventKind.CLOSED: "resolve"}


class PagerDutySink:
    name = PAGERDUTY_SINK

    def __init__(self, pager: PagerApi) -> None:
        self.pager = pager

    async def deliver(self, event: NotificationEvent, state: SinkState) -> None:
        action = _ACTIONS.get(event.kind)
        incident = event.incident.id
        if action is None or await delivered_before(event, state, _LAST):
            return
        for service in json.loads(await state.get(incident, PAGED_SERVICES) or "[]"):
            await self.pager.event(service, action, incident)
        await remember_delivered(event, state, _LAST)


# --- inbound: v3 webhooks ---------------------------------------------------------------

@dataclass(frozen=True)
class PagerDutyWebhook:
    """One v3 webhook event about an incident."""

    event_id: str
    event_type: str             # incident.acknowledged | incident.resolved | …
    incident_key: str           # the Events API dedup key: remediator's incident id
    agent: str                  # who did it (the agent's summary)


def verify_pagerduty_signature(secret: str, body: bytes, header: str) -> None:
    """Raise a ``SignatureError`` unless one of the ``v1=`` signatures in
    ``X-PagerDuty-Signature`` (several while a secret is rotated) is the HMAC-SHA256 of
    the raw body under ``secret``, compared in constant time."""
    if not secret:
        raise MissingSignature("no PagerDuty webhook secret is configured")
    if not header:
        raise MissingSignature("missing X-PagerDuty-Signature")
    expected = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected.encode(), s.strip().encode())
               for s in header.split(",")):
        raise BadSignature("X-PagerDuty-Signature does not match the request")


def parse_pagerduty_webhook(body: bytes, now: float) -> PagerDutyWebhook:
    """The event of a verified body; ``StaleRequest`` when it happened more than five
    minutes from ``now`` (either way), ``MalformedInteraction`` when unreadable."""
    try:
        data = json.loads(body)
        event = data["event"]
        occurred = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))
        incident = event.get("data") or {}
        agent = event.get("agent") or {}
        parsed = PagerDutyWebhook(str(event["id"]), str(event["event_type"]),
                                  str(incident.get("incident_key") or ""),
                                  str(agent.get("summary") or "PagerDuty"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MalformedInteraction(f"not a PagerDuty v3 webhook: {exc}") from None
    if abs(now - occurred.timestamp()) > MAX_AGE_SECONDS:
        raise StaleRequest(f"event occurred {int(now - occurred.timestamp())}s from now "
                           f"(limit {int(MAX_AGE_SECONDS)}s)")
    return parsed
