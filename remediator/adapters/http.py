"""``AiohttpPoster``: the HTTP port (``remediator.ports.http``) on a shared aiohttp session.

A thin transport for the ``http.post`` action: it sends the POST and returns the
status and the body; whether that status is a success is the action's call.
A request that gets no response (connection refused, reset, timeout) is a
``TemporaryError`` with the cause chained. Not here: retries (the engine's), the
idempotency key (the action's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from remediator.errors import TemporaryError
from remediator.ports.http import HttpResponse


class AiohttpPoster:
    """POSTs through ``session``, which the caller owns (and closes)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def post(self, url: str, *, json: Any, headers: Mapping[str, str],
                   timeout_seconds: float) -> HttpResponse:
        limit = aiohttp.ClientTimeout(total=timeout_seconds)
        try:
            async with self.session.post(url, json=json, headers=dict(headers),
                                         timeout=limit) as resp:
                return HttpResponse(resp.status, await resp.text(errors="replace"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TemporaryError(f"POST {url} failed: {type(exc).__name__}: {exc}") from exc
