"""The GraphRenderer on matplotlib (Agg, no display), in a worker thread.

Only matplotlib's object API is used (a ``Figure`` with its own Agg canvas, no
pyplot state), so several graphs can be drawn at once in worker threads while the
event loop goes on. Series and points are capped (``ports.graphs``): a graph costs
the same whatever Prometheus returns.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC

from remediator.ports.graphs import HEIGHT, MAX_POINTS, MAX_SERIES, WIDTH, GraphSpec

DPI = 100


def _thin(points: tuple[tuple[float, float], ...]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return list(points)
    every = -(-len(points) // MAX_POINTS)
    return list(points[::every])


def render_png(spec: GraphSpec) -> bytes:
    """Draw ``spec`` (blocking: call it off the event loop)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    def when(t: float) -> float:
        return t / 86400.0             # matplotlib's dates: days since 1970-01-01 UTC

    for series in spec.series[:MAX_SERIES]:
        points = _thin(series.points)
        ax.plot([when(t) for t, _ in points], [v for _, v in points], linewidth=1.4,
                label=series.label[:60], marker="o" if len(points) < 30 else None,
                markersize=3)
    if spec.threshold is not None:
        ax.axhline(spec.threshold, color="#A30200", linestyle="--", linewidth=1.2,
                   label=f"threshold {spec.threshold:g}")
    for t, label in spec.marks:
        ax.axvline(when(t), color="#555555", linestyle=":", linewidth=1.0)
        ax.annotate(label[:30], (when(t), 1.0), xycoords=("data", "axes fraction"),
                    rotation=90, va="top", ha="right", fontsize=7, color="#555555")
    ax.set_xlim(when(spec.start), when(spec.end))
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
    ax.set_title(spec.title[:90], fontsize=10)
    ax.set_xlabel("UTC" + (f" — {spec.note}" if spec.note else ""), fontsize=8)
    ax.grid(True, alpha=0.3)
    if spec.series or spec.threshold is not None:
        ax.legend(fontsize=7, loc="upper left")
    if not spec.series:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center")
    caption = spec.query if len(spec.query) <= 140 else spec.query[:139] + "…"
    if spec.left_out:
        caption += f"  (+{spec.left_out} series not drawn)"
    fig.text(0.01, 0.01, caption, fontsize=7, color="#333333")
    fig.subplots_adjust(bottom=0.18)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


class MatplotlibRenderer:
    """Implements ``GraphRenderer``; at most ``parallel`` graphs drawn at once."""

    PARALLEL = 2

    def __init__(self, parallel: int = PARALLEL) -> None:
        self._slots = asyncio.Semaphore(parallel)

    async def render(self, spec: GraphSpec) -> bytes:
        async with self._slots:
            return await asyncio.to_thread(render_png, spec)
