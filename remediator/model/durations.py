"""Durations as operators write them: Prometheus style ``90s``, ``5m``, ``1h30m``, ``500ms``."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: Any) -> float:
    """Parse a duration into seconds. Accepts ``"1h30m"``, ``"45s"``, ``"500ms"``, or a
    plain non-negative number of seconds. Raises ``ValueError`` with an example otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r}: expected e.g. 30s, 5m, 1h30m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"bad duration {value!r}: must not be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"bad duration {value!r}: expected e.g. 30s, 5m, 1h30m")
    text = value.strip()
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"bad duration {value!r}: expected e.g. 30s, 5m, 1h30m")
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact Prometheus-style text for ``seconds`` (``90`` → ``1m30s``)."""
    if seconds == 0:
        return "0s"
    ms = round(seconds * 1000)
    out = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


def human_duration(seconds: float) -> str:
    """A duration for people to read: ``2m 13s``, ``1h 5m``, ``3d 4h``, ``4.2s``, ``450ms``
    (the largest unit and the next, cut, not rounded; never ``133.0481s``)."""
    if seconds < 0:
        return "-" + human_duration(-seconds)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 10:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"
    total = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, total = divmod(total, size)
        if n:
            parts.append(f"{n}{unit}")
        if parts and (len(parts) == 2 or not n):
            break                   # the largest unit and the next one, if it is not zero
    return " ".join(parts)


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""Seconds as a float; parsed from duration text, serialized back to text in JSON."""
