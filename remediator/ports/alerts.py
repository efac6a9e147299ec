"""The alerts port: Alertmanager's API, to ask whether an alert is still active.

Holds ``AlertsApi`` only. Not here: the client (``remediator.adapters.alertmanager``).
"""

from __future__ import annotations

from typing import Protocol


class AlertsApi(Protocol):
    async def is_firing(self, fingerprint: str) -> bool:
        """Whether Alertmanager still lists the alert (active, silenced or inhibited).
        Raises ``TemporaryError`` (unreachable, 5xx) or ``PermanentError`` (4xx)."""
        ...
