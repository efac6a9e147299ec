"""The pager port: PagerDuty's Events API v2, by service name (the adapter holds each
service's routing key; the engine never sees one).

``event`` sends ``trigger`` (with a summary), ``acknowledge`` or ``resolve`` for an
alert deduplicated by ``dedup_key`` (the incident id), and returns the dedup key the
API answered. Raises ``PermanentError`` for an event the API refused (400: do not send
it again) or an unknown service, ``TemporaryError`` when it could not be delivered now
(429 and 5xx after the adapter's retries, no answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

PagerAction = Literal["trigger", "acknowledge", "resolve"]
PAGERDUTY_SINK = "pagerduty"
#: Sink-state key (under the ``pagerduty`` sink) of the services an incident was paged on.
PAGED_SERVICES = "pagerduty.services"


class PagerApi(Protocol):
    async def event(self, service: str, action: PagerAction, dedup_key: str, *,
                    summary: str = "", source: str = "remediator",
                    details: Mapping[str, Any] | None = None) -> str: ...
