"""The graph port: a time-series graph as a PNG, for notifications and the API.

Holds ``GraphSpec`` (what to draw: series of (unix time, value) points, a threshold
line, a vertical mark per step) and ``GraphRenderer`` (a Protocol). Not here: what
goes in a graph (``remediator.engine.graphs``) or the drawing
(``remediator.adapters.graphs``, matplotlib).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: the most series and points per series drawn (more are left out, and said so)
MAX_SERIES = 10
MAX_POINTS = 1000
#: the PNG's size in pixels
WIDTH, HEIGHT = 900, 420


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[tuple[float, float], ...]          # (unix seconds, value)


@dataclass(frozen=True)
class GraphSpec:
    title: str
    query: str                                       # what was drawn (the caption)
    series: tuple[Series, ...]
    start: float
    end: float
    threshold: float | None = None                   # drawn as a horizontal line
    marks: tuple[tuple[float, str], ...] = ()        # a vertical line per step
    note: str = ""                                   # e.g. where the values came from
    left_out: int = 0                                # series not drawn (over MAX_SERIES)


class GraphRenderer(Protocol):
    async def render(self, spec: GraphSpec) -> bytes:
        """The PNG; drawn off the event loop."""
        ...

    async def close(self) -> None:
        """Release what drawing holds (worker processes); called when the daemon stops."""
        ...
