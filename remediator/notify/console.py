"""The console sink: one readable line per event, so the daemon is useful with no Slack or Jira.

Lines come from ``remediator.notify.render.console_line``; redelivered events
(same ``id``) are written once, using ``SinkState`` to remember the last one.
"""

from __future__ import annotations

import sys
from typing import TextIO

from remediator.notify.base import NotificationEvent, SinkState
from remediator.notify.render import console_line

_LAST = "console.last_event"


class ConsoleSink:
    """Writes each event to ``stream`` (default: standard output) and flushes."""

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def deliver(self, event: NotificationEvent, state: SinkState) -> None:
        incident = event.incident.id
        last = await state.get(incident, _LAST)
        if event.id and last is not None and event.id <= int(last):
            return
        stream = self._stream or sys.stdout
        stream.write(console_line(event) + "\n")
        stream.flush()
        if event.id:
            await state.set(incident, _LAST, str(event.id))
