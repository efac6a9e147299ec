"""The console sink: one readable line per event, so the daemon is useful with no Slack or Jira.

Holds ``ConsoleSink`` and ``console_line`` (the line of one event, built from
``remediator.rendering``); redelivered events (same ``id``) are written once,
using ``SinkState`` to remember the last one.
"""

from __future__ import annotations

import sys
from typing import TextIO

from remediator.ports.sinks import (
    NotificationEvent,
    SinkState,
    delivered_before,
    remember_delivered,
)
from remediator.rendering import STATE_STYLE, headline, step_outcome

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


def console_line(event: NotificationEvent) -> str:
    """One readable line per event."""
    view = event.incident
    emoji_free = STATE_STYLE[view.state][1].lower()
    parts = [event.at.strftime("%Y-%m-%dT%H:%M:%SZ"), f"[{view.id}]",
             f"{event.kind.value:<18}", f"{emoji_free:<19}", headline(view)]
    if event.step is not None:
        parts.append(f"| {step_outcome(event.step)}")
    if event.message:
        parts.append(f"| {event.message}")
    if view.dry_run:
        parts.append("(dry run)")
    return " ".join(" ".join(parts).split("\n"))
