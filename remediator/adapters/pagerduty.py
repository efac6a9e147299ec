"""``PagerDutyEvents``: the pager port (``ports.pager``) on PagerDuty's Events API v2,
through the HTTP port (aiohttp).

Why not the ``pagerduty`` package or pdpyras: both are synchronous (requests); calling
them from the event loop would block it (or need a thread per call) for what is one
JSON POST. The Events API is small: ``POST {url}/v2/enqueue`` with the routing key,
``event_action``, ``dedup_key`` and, for a trigger, a ``payload`` (summary ≤ 1024
characters, source, severity) → 202 ``{"status": "success", "dedup_key"}``; 400 for an
invalid event (never retried), 429 when rate limited and 5xx: retried here with a
backoff (``retries`` times), then a ``TemporaryError`` for the caller to try later.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from remediator.errors import PermanentError, TemporaryError
from remediator.ports.http import HttpApi, HttpResponse
from remediator.ports.pager import PagerAction

SUMMARY_MAX = 1024
DEDUP_MAX = 255


class PagerDutyEvents:
    def __init__(self, http: HttpApi, routing_keys: Mapping[str, str], *,
                 url: str = "https://events.pagerduty.com",
                 sleep: Callable[[float], Awaitable[None]], retries: int = 3,
                 backoff: float = 2.0, timeout: float = 10.0) -> None:
        self.http = http
        self.routing_keys = dict(routing_keys)
        self.url = url.rstrip("/") + "/v2/enqueue"
        self.sleep = sleep
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout

    def body(self, service: str, action: PagerAction, dedup_key: str, summary: str,
             source: str, details: Mapping[str, Any] | None) -> dict[str, Any]:
        key = self.routing_keys.get(service)
        if key is None:
            raise PermanentError(f"no PagerDuty service {service!r} is configured")
        body: dict[str, Any] = {"routing_key": key, "event_action": action,
                                "dedup_key": dedup_key[:DEDUP_MAX]}
        if action == "trigger":
            text = summary or dedup_key
            if len(text) > SUMMARY_MAX:
                text = text[:SUMMARY_MAX - 1] + "…"
            body["payload"] = {"summary": text, "source": source, "severity": "critical",
                               "custom_details": dict(details or {})}
        return body

    async def event(self, service: str, action: PagerAction, dedup_key: str, *,
                    summary: str = "", source: str = "remediator",
                    details: Mapping[str, Any] | None = None) -> str:
        body = self.body(service, action, dedup_key, summary, source, details)
        delay = self.backoff
        for attempt in range(self.retries + 1):
            answer = await self.http.post(self.url, json=body, headers={},
                                          timeout_seconds=self.timeout)
            if answer.status == 202:
                return str(_json(answer).get("dedup_key") or dedup_key)
            if answer.status == 400:
                raise PermanentError(f"PagerDuty refused the {action} event: "
                                     f"{_said(answer)}")
            if answer.status != 429 and answer.status < 500:
                raise PermanentError(f"PagerDuty answered HTTP {answer.status} to the "
                                     f"{action} event: {_said(answer)}")
            if attempt < self.retries:
                await self.sleep(delay)
                delay *= 2
        raise TemporaryError(f"PagerDuty answered HTTP {answer.status} to the {action} "
                             f"event {self.retries + 1} times: {_said(answer)}")


def _json(answer: HttpResponse) -> dict[str, Any]:
    try:
        data = json.loads(answer.text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _said(answer: HttpResponse) -> str:
    data = _json(answer)
    errors = data.get("errors")
    text = "; ".join(map(str, errors)) if isinstance(errors, list) else data.get("message")
    return str(text or answer.text)[:300]
