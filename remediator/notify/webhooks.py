"""Lifecycle webhooks out: each configured ``notify.webhooks`` entry is a sink on the
outbox, so ServiceNow, Opsgenie or a chat bot can follow incidents.

For every event of a kind the entry asks for (``events``; all when empty) it POSTs
JSON ``{"id", "event", "at", "message", "incident": {…the incident view…}}`` with:

* ``X-Remediator-Event``: the event kind; ``X-Remediator-Delivery``: the event id
  (the same on a redelivery: receivers deduplicate on it);
* ``X-Remediator-Timestamp``: Unix seconds when this attempt was signed;
* ``X-Remediator-Signature``: ``sha256=`` + hex HMAC-SHA256 under the entry's secret of
  ``{timestamp}.{raw body}`` (``signature`` computes it; a receiver recomputes it from
  the bytes it got and refuses an old timestamp).

Delivery is the outbox's: at least once, in order per incident, a 429, a 5xx or no
answer retried with backoff (``TemporaryError``), another 4xx dropped with a log line
(``PermanentError``). The body is ``json.dumps`` of the payload, the serialization the
HTTP port sends, so the signed bytes are the bytes on the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Collection
from typing import Any

from remediator.errors import PermanentError, TemporaryError
from remediator.ports.http import HttpApi
from remediator.ports.sinks import NotificationEvent, SinkState


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class WebhookSink:
    def __init__(self, name: str, http: HttpApi, url: str, secret: str, *,
                 events: Collection[str] = (), timeout: float = 10.0,
                 now: Callable[[], float] = time.time) -> None:
        self.name = f"webhook:{name}"
        self.http = http
        self.url = url
        self.secret = secret
        self.events = frozenset(events)
        self.timeout = timeout
        self.now = now

    def payload(self, event: NotificationEvent) -> dict[str, Any]:
        return {"id": event.id, "event": event.kind.value, "at": event.at.isoformat(),
                "message": event.message,
                "incident": event.incident.model_dump(mode="json")}

    async def deliver(self, event: NotificationEvent, state: SinkState) -> None:
        if self.events and event.kind.value not in self.events:
            return
        payload = self.payload(event)
        stamp = str(int(self.now()))
        body = json.dumps(payload).encode()
        headers = {"X-Remediator-Event": event.kind.value,
                   "X-Remediator-Delivery": str(event.id),
                   "X-Remediator-Timestamp": stamp,
                   "X-Remediator-Signature": signature(self.secret, stamp, body)}
        answer = await self.http.post(self.url, json=payload, headers=headers,
                                      timeout_seconds=self.timeout)
        if 200 <= answer.status < 300:
            return
        said = f"webhook {self.url} answered HTTP {answer.status}: {answer.text[:200]}"
        if answer.status in (408, 429) or answer.status >= 500:
            raise TemporaryError(said)
        raise PermanentError(said)
