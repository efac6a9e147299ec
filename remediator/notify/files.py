"""The files attached to an incident's Slack thread and Jira ticket: its graphs (PNG)
and, at escalation, the logs and events collected from the cluster (text).

``EvidenceFiles`` builds them from the incident's view (the graphs: see
``remediator.engine.graphs``), the metrics port and the store's collected evidence;
the PNGs are drawn by a ``GraphRenderer`` off the event loop. What cannot be built
(Prometheus down, nothing collected) is left out: a notification never waits on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from remediator import rendering
from remediator.clock import Clock
from remediator.engine.graphs import incident_graphs
from remediator.model.incident import ALERTS_IN_VIEW, EvidenceItem, IncidentView
from remediator.ports.graphs import GraphRenderer
from remediator.ports.metrics import MetricsApi
from remediator.ports.store import Store

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class FileAttachment:
    filename: str
    title: str
    content: bytes


def _safe(name: str) -> str:
    return _UNSAFE.sub("-", name).strip("-")[:80] or "file"


def logs_file(incident_id: str, items: list[EvidenceItem],
              moment: str = "escalation") -> list[FileAttachment]:
    """One text file of the items collected at ``moment``: each pod's containers' logs
    and events, then the target's events (none when nothing was collected)."""
    chosen = [i for i in items if i.moment == moment]
    if not chosen:
        return []
    parts = []
    for item in sorted(chosen, key=lambda i: (i.object_kind != "Pod", i.pod or "",
                                              i.kind, i.container or "", i.previous)):
        head = f"==> {item.title}"
        if item.truncated:
            head += " (cut to the byte cap: its end is kept)"
        if item.redacted:
            head += f" ({item.redacted} secrets redacted)"
        parts.append(f"{head} <==\n{item.text.rstrip()}\n")
    pods = len({i.pod for i in chosen if i.kind == "logs"})
    return [FileAttachment(f"{_safe(incident_id)}-logs.txt",
                           f"logs and events of {pods} failing pod{'s' if pods != 1 else ''} "
                           f"({moment})", "\n".join(parts).encode())]


class EvidenceFiles:
    def __init__(self, store: Store, metrics: MetricsApi | None,
                 renderer: GraphRenderer, clock: Clock, *, graphs: bool = True) -> None:
        """``graphs``: False attaches no graphs (``notify.graphs``), only the logs."""
        self.store = store
        self.draw = graphs
        self.metrics = metrics
        self.renderer = renderer
        self.clock = clock

    async def graphs(self, view: IncidentView) -> list[FileAttachment]:
        """The incident's graphs, from its stored record (an event's snapshot carries
        only each step's latest poll); none when ``notify.graphs`` is off."""
        if not self.draw:
            return []
        view = await self.store.get_incident(view.id, alert_limit=ALERTS_IN_VIEW) or view
        out = []
        for n, spec in enumerate(await incident_graphs(view, self.metrics, self.clock.now())):
            png = await self.renderer.render(spec)
            out.append(FileAttachment(f"{view.id}-graph-{n + 1}.png", spec.title, png))
        return out

    async def for_escalation(self, view: IncidentView) -> list[FileAttachment]:
        """The graphs, then the logs and events collected at escalation."""
        return [*await self.graphs(view),
                *logs_file(view.id, await self.store.list_evidence(view.id))]

    async def postmortem(self, view: IncidentView) -> str:
        """The postmortem draft (Markdown) of the stored incident, with its collected
        logs and events."""
        view = await self.store.get_incident(view.id, alert_limit=ALERTS_IN_VIEW) or view
        return rendering.postmortem(view, await self.store.list_evidence(view.id))
