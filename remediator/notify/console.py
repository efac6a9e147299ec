"""The console sink: one readable line per event, so the daemon is useful with no Slack or Jira.

Lines come from ``remediator.notify.render.console_line``; redelivered events
(same ``id``) are written once, using ``SinkState`` to remember the last one.
"""

from __future__ import annotations

import sys
from typing import TextIO

from remediator.notify.base import (
    NotificationEvent,
    SinkState,
    delivered_before,
    remember_delivered,
)
from remediator.notify.render import console_line

_LAST = "console.last_event"


class ConsoleSink:
    """Writes each event to ``stream`` (default: standard output) and flushes."""

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def deliver(self, event: NotificationEvent, state: SinkState) -> None:
        if await delivered_before(event, state, _LAST):
            return
        stream = self._stream or sys.stdout
        stream.write(console_line(event) + "\n")
        stream.flush()
        await remember_delivered(event, state, _LAST)
