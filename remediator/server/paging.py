"""The incident list's cursors: where a page ended, opaque to clients.

A cursor is the last row's ``(created_at, id)`` (``ports.store.PageKey``) as
URL-safe base64 of a small JSON object; the next page starts strictly after it. A
client only passes back what it was given: anything else is refused (``CursorError``,
a 400 naming the cursor), never silently read as "from the start".
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from remediator.ports.store import PageKey

MAX_CURSOR_CHARS = 512


class CursorError(ValueError):
    """A cursor this API did not give out (or mangled on the way back)."""


def encode_cursor(key: PageKey) -> str:
    created_at, incident_id = key
    raw = json.dumps({"c": created_at.isoformat(), "i": incident_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> PageKey:
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise CursorError("empty or too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        created_at, incident_id = data["c"], data["i"]
        if not isinstance(created_at, str) or not isinstance(incident_id, str):
            raise CursorError("not a cursor")
        when = datetime.fromisoformat(created_at)
    except (binascii.Error, ValueError, UnicodeDecodeError, TypeError, KeyError) as exc:
        raise CursorError("not a cursor") from exc
    if when.tzinfo is None:
        raise CursorError("not a cursor")
    return when.astimezone(UTC), incident_id
