"""Durations: parsed as operators write them, shown as people read them."""

from __future__ import annotations

import pytest

from remediator.model.durations import format_duration, human_duration, parse_duration


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.45, "450ms"), (1, "1s"), (4.2, "4.2s"), (10, "10s"), (59.4, "59s"),
    (60, "1m"), (133.0481, "2m 13s"), (3600, "1h"), (3725, "1h 2m"), (7199, "1h 59m"),
    (90000, "1d 1h"), (273605, "3d 4h"), (86400 + 30, "1d"), (-90, "-1m 30s"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize("text", ["90s", "1h30m", "500ms", "2m13s"])
def test_format_duration_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == format_duration(parse_duration(
        format_duration(parse_duration(text))))
