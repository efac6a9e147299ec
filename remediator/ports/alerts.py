"""The alerts port: Alertmanager's API, to ask whether an alert is still active.

Holds ``AlertsApi`` only. Not here: the client (``remediator.adapters.alertmanager``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol


class AlertsApi(Protocol):
    async def is_firing(self, fingerprint: str) -> bool:
        """Whether Alertmanager still lists the alert (active, silenced or inhibited).
        Raises ``TemporaryError`` (unreachable, 5xx) or ``PermanentError`` (4xx)."""
        ...


class SilencesApi(Protocol):
    """Alertmanager's silences (API v2)."""

    async def create_silence(self, labels: Mapping[str, str], *, starts_at: datetime,
                             ends_at: datetime, created_by: str, comment: str) -> str:
        """A silence matching exactly ``labels``: one equality matcher per label, never a
        regex. Returns its id. Raises ``TemporaryError`` / ``PermanentError``."""
        ...

    async def expire_silence(self, silence_id: str) -> None:
        """Expire the silence (one already expired or gone counts as done)."""
        ...
