"""Jinja filters of the console: times, ages and durations for a person at 3 a.m."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any


def ago(at: datetime | None, now: datetime | None = None) -> str:
    if at is None:
        return "—"
    now = now or datetime.now(at.tzinfo)
    return span((now - at).total_seconds()) + " ago"


def span(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def took(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return span((end - start).total_seconds())


def clock(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "—"


def hms(at: datetime | None) -> str:
    return at.strftime("%H:%M:%S") if at else ""


def safe_url(url: Any) -> str:
    """Only http(s) links are rendered as links (a label may carry ``javascript:``)."""
    text = str(url or "")
    return text if text.startswith(("http://", "https://")) else ""


def iso(text: Any) -> str:
    """An ISO timestamp string (as the flags and health report keep them) for a person."""
    if not text:
        return "—"
    try:
        at = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    return clock(at)


FILTERS: dict[str, Callable[..., Any]] = {
    "ago": ago, "span": span, "took": took, "clock": clock, "hms": hms, "safe_url": safe_url,
    "iso": iso}
