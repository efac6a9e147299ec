"""The HTTP port: the one POST the ``http.post`` action makes (a webhook of another system).

Holds ``HttpApi`` and its answer, ``HttpResponse``. The port only transports: a
status the caller did not expect is *not* an error here, the action judges it.
Not here: the aiohttp session (``remediator.adapters.http``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class HttpResponse:
    status: int
    text: str                 # the body, decoded (undecodable bytes replaced)


class HttpApi(Protocol):
    async def post(self, url: str, *, json: Any, headers: Mapping[str, str],
                   timeout_seconds: float) -> HttpResponse:
        """POST ``json`` to ``url`` within ``timeout_seconds``, whatever the status.
        Raises ``TemporaryError`` when no response came (network error, timeout)."""
        ...
