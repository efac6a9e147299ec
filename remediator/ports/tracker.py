"""The tracker port: Jira as the ``jira.incident`` action and the Jira sink use it.

Holds ``TrackerApi`` (a Protocol), the data it exchanges (``Ticket``) and the
limits Jira enforces on what is sent, as pure functions both the action (to plan
the exact summary and labels) and the adapter apply: summary ≤ 255 characters on
one line, labels ≤ 255 characters without spaces, description ≤ 32,767 (cut
with a visible marker). Jira counts UTF-16 units. Not here: the client
(``remediator.adapters.jira``), rendering (``remediator.rendering``).

Every method raises only ``TemporaryError`` (429, 5xx, network) or
``PermanentError`` (auth, permissions, validation, unknown issue or transition).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

SUMMARY_LIMIT = 255
LABEL_LIMIT = 255
DESCRIPTION_LIMIT = 32_767


@dataclass(frozen=True)
class Ticket:
    """What remediator needs to know about one issue."""

    key: str
    url: str
    status: str = ""
    done: bool = False                       # status category "done"
    labels: tuple[str, ...] = ()
    resolved_at: datetime | None = None
    updated_at: datetime | None = None
    raw_fields: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class TrackerApi(Protocol):
    def lock(self, label: str) -> AbstractAsyncContextManager[None]:
        """The lock that serialises find-or-create for one dedup label in this process."""
        ...

    async def find_by_label(self, label: str, *, project: str | None = None) -> Ticket | None:
        """The most recently created issue carrying ``label`` (exact), or None."""
        ...

    async def get(self, key: str) -> Ticket:
        """The issue ``key``; ``PermanentError`` if it does not exist."""
        ...

    async def create(self, *, project: str, issue_type: str, summary: str, description: str,
                     labels: Sequence[str] = (), priority: str | None = None,
                     components: Sequence[str] = ()) -> Ticket:
        """Create an issue (limits applied)."""
        ...

    async def comment(self, key: str, body: str) -> None:
        ...

    async def attach(self, key: str, filename: str, content: bytes) -> None:
        """Attach a file to the issue (``POST /rest/api/2/issue/{key}/attachments``)."""
        ...

    async def transition(self, key: str, name: str, *, comment: str | None = None) -> bool:
        """Apply the transition called ``name`` (or leading to a status called ``name``).
        False, doing nothing, when the issue is already in status ``name``."""
        ...


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, units: int) -> str:
    """The longest prefix of ``text`` that fits in ``units`` UTF-16 code units."""
    out, used = [], 0
    for ch in text:
        size = 2 if ord(ch) > 0xFFFF else 1
        if used + size > units:
            break
        out.append(ch)
        used += size
    return "".join(out)


def truncate(text: str, limit: int, *, marker: str | None = None) -> str:
    """``text`` if it fits in ``limit`` (UTF-16 units), else a prefix ending in a marker."""
    if _units(text) <= limit:
        return text
    total = _units(text)
    marker = marker if marker is not None else (
        "\n\n… [truncated by remediator: {omitted} characters omitted]")
    omitted = total - limit
    head = ""
    for _ in range(5):   # the count is part of the marker's length: iterate until stable
        head = _cut(text, max(0, limit - _units(marker.format(omitted=omitted)))).rstrip()
        if total - _units(head) == omitted:
            break
        omitted = total - _units(head)
    return _cut(head + marker.format(omitted=omitted), limit)


def clean_summary(text: str) -> str:
    """One line, ≤ 255 characters, never empty."""
    line = " ".join(text.split()) or "remediator incident"
    return truncate(line, SUMMARY_LIMIT, marker="…")


def clean_label(text: str) -> str:
    """Jira labels: no whitespace, ≤ 255 characters."""
    label = re.sub(r"\s+", "-", text.strip()) or "remediator"
    return _cut(label, LABEL_LIMIT)
