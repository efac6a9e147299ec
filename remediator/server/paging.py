"""The incident list's cursors: where a page ended, opaque to clients.

A cursor is the last row's ``(created_at, id)`` (``ports.store.PageKey``) and the
filters of the list it came from, as URL-safe base64 of a small JSON object; the next
page starts strictly after it. A client only passes back what it was given, with the
same filters: anything else is refused (``CursorError``, a 400 naming the cursor),
never silently read as "from the start" or as another list's position.
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


Filters = dict[str, str]      # the list's filters (state, playbook) that were set


def encode_cursor(key: PageKey, filters: Filters | None = None) -> str:
    created_at, incident_id = key
    data: dict[str, object] = {"c": created_at.isoformat(), "i": incident_id}
    if filters:
        data["f"] = filters
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, filters: Filters | None = None) -> PageKey:
    """The position in ``cursor``; ``CursorError`` if it was not given out for a list
    with these ``filters``."""
    key, given_for = _decode(cursor)
    if given_for != (filters or {}):
        shown = ", ".join(f"{k}={v}" for k, v in sorted(given_for.items())) or "no filter"
        raise CursorError(f"it belongs to the list with {shown}")
    return key


def _decode(cursor: str) -> tuple[PageKey, Filters]:
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise CursorError("empty or too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        created_at, incident_id, given_for = data["c"], data["i"], data.get("f", {})
        if not isinstance(created_at, str) or not isinstance(incident_id, str) \
                or not isinstance(given_for, dict):
            raise CursorError("not a cursor")
        when = datetime.fromisoformat(created_at)
    except (binascii.Error, ValueError, UnicodeDecodeError, TypeError, KeyError) as exc:
        raise CursorError("not a cursor") from exc
    if when.tzinfo is None:
        raise CursorError("not a cursor")
    return (when.astimezone(UTC), incident_id), {str(k): str(v) for k, v in given_for.items()}
