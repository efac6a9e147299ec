"""The AlertsApi on Alertmanager's API v2 (``GET /api/v2/alerts``).

One listing of every alert Alertmanager still holds (active, silenced, inhibited
and unprocessed: a silenced alert is still firing) answers ``is_firing`` for any
fingerprint. Alertmanager leaves resolved alerts (``endsAt`` in the past) out of
the listing, so "not listed" means "not firing any more".

The listing is cached for ``cache_ttl`` seconds and concurrent callers share one
request, so that many incidents polling at once cost one request. Errors become
TemporaryError (network, timeout, 5xx, an unreadable body) or PermanentError
(4xx: a wrong URL or missing credentials), with the cause chained.

Silences (``SilencesApi``): ``POST /api/v2/silences`` with one equality matcher per
label of the alert (``isRegex: false, isEqual: true``), ``DELETE
/api/v2/silence/{id}`` to expire one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from remediator.errors import PermanentError, TemporaryError

QUERY = {"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"}


class AlertmanagerApi:
    def __init__(self, url: str, session: aiohttp.ClientSession, timeout: float = 10.0, *,
                 cache_ttl: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.session = session
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.requests = 0                     # listings fetched (for tests and debugging)
        self._cached: tuple[float, frozenset[str]] | None = None
        self._lock = asyncio.Lock()

    async def is_firing(self, fingerprint: str) -> bool:
        return fingerprint in await self.firing()

    async def firing(self) -> frozenset[str]:
        """The fingerprints of every alert Alertmanager lists, at most ``cache_ttl`` old."""
        async with self._lock:
            cached = self._cached
            if cached is not None and time.monotonic() - cached[0] < self.cache_ttl:
                return cached[1]
            fingerprints = await self._fetch()
            self._cached = (time.monotonic(), fingerprints)
            return fingerprints

    async def _fetch(self) -> frozenset[str]:
        endpoint = f"{self.url}/api/v2/alerts"
        self.requests += 1
        try:
            async with self.session.get(
                    endpoint, params=QUERY, headers={"Accept": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                if resp.status >= 400:
                    text = (await resp.text(errors="replace"))[:200]
                    message = f"Alertmanager GET {endpoint}: HTTP {resp.status}: {text}"
                    error = aiohttp.ClientResponseError(
                        resp.request_info, resp.history, status=resp.status, message=text)
                    if resp.status >= 500 or resp.status == 429:
                        raise TemporaryError(message) from error
                    raise PermanentError(message) from error
                body: Any = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TemporaryError(f"Alertmanager at {self.url} unreachable: "
                                 f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:             # not JSON (a proxy's error page, …)
            raise TemporaryError(f"Alertmanager GET {endpoint}: unreadable body: {exc}") \
                from exc
        if not isinstance(body, list):
            raise TemporaryError(f"Alertmanager GET {endpoint}: expected a list of alerts, "
                                 f"got {type(body).__name__}")
        return frozenset(str(a["fingerprint"]) for a in body
                         if isinstance(a, dict) and a.get("fingerprint"))

    # --- silences (API v2) -----------------------------------------------------------

    async def create_silence(self, labels: Mapping[str, str], *, starts_at: datetime,
                             ends_at: datetime, created_by: str, comment: str) -> str:
        body = {"matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True}
                             for k, v in sorted(labels.items())],
                "startsAt": _stamp(starts_at), "endsAt": _stamp(ends_at),
                "createdBy": created_by, "comment": comment}
        answer = await self._call("POST", "/api/v2/silences", body)
        if not isinstance(answer, dict) or not answer.get("silenceID"):
            raise TemporaryError(f"Alertmanager POST /api/v2/silences: no silenceID in "
                                 f"{str(answer)[:200]}")
        return str(answer["silenceID"])

    async def expire_silence(self, silence_id: str) -> None:
        try:
            await self._call("DELETE", f"/api/v2/silence/{quote(silence_id, safe='')}", None)
        except PermanentError as exc:
            if "404" not in str(exc):
                raise
        except TemporaryError as exc:           # Alertmanager answers 500 for one expired
            if "already expired" not in str(exc):
                raise

    async def _call(self, method: str, path: str, body: Any) -> Any:
        endpoint = f"{self.url}{path}"
        try:
            async with self.session.request(
                    method, endpoint, json=body, headers={"Accept": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                text = await resp.text(errors="replace")
                if resp.status >= 400:
                    message = f"Alertmanager {method} {endpoint}: HTTP {resp.status}: " \
                              f"{text[:200]}"
                    if resp.status >= 500 or resp.status == 429:
                        raise TemporaryError(message)
                    raise PermanentError(message)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TemporaryError(f"Alertmanager at {self.url} unreachable: "
                                 f"{type(exc).__name__}: {exc}") from exc
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            return None


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
