"""The metrics port: a Prometheus instant query, for ``promql`` verifications, and a
range query, for the graphs of an incident.

Holds ``MetricsApi`` only. Not here: the client (``remediator.adapters.prometheus``)
or what a result means (``remediator.engine.verify``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

# One sample of an instant vector, as Prometheus sends it: {"metric": {…}, "value": [t, "v"]}
Sample = dict[str, Any]


class MetricsApi(Protocol):
    async def query(self, promql: str, *, max_age: float | None = None) -> list[Sample]:
        """An instant query; returns ``data.result`` (a vector's samples). Raises
        ``TemporaryError`` (server down, 5xx, timeout) or ``PermanentError`` (the query
        is wrong). ``max_age``: the caller takes an answer asked at most this many
        seconds ago, and no older (a verification: one asked after its own previous poll
        came back); None: any answer the adapter may share. An adapter that asks Prometheus
        every time has nothing older to give and ignores it."""
        ...

    async def query_range(self, promql: str, start: datetime, end: datetime,
                          step: float) -> list[Sample]:
        """A range query; returns ``data.result`` (a matrix: {"metric", "values": [[t,
        "v"], …]}). Raises as ``query``."""
        ...
