"""The outside world as the engine is given it: one field per port, each may be None
when it is not configured (a check that needs it then says so instead of waiting)."""

from __future__ import annotations

from dataclasses import dataclass, field

from remediator.model.incident import TargetRef
from remediator.ports import AlertsApi, ChatApi, ClusterApi, HttpApi, MetricsApi, TrackerApi
from remediator.ports.alerts import SilencesApi
from remediator.ports.inspect import ClusterInspector
from remediator.ports.model import ModelApi
from remediator.ports.pager import PagerApi


@dataclass
class Ports:
    cluster: ClusterApi | None = None     # Kubernetes (kubectl semantics)
    metrics: MetricsApi | None = None     # Prometheus instant queries
    alerts: AlertsApi | None = None       # Alertmanager's API, for alert_resolved
    tickets: TrackerApi | None = None     # Jira
    chat: ChatApi | None = None           # Slack
    http: HttpApi | None = None           # for http.post
    pager: PagerApi | None = None         # PagerDuty Events API v2 (escalation policies)
    silences: SilencesApi | None = None   # Alertmanager's silences (playbook `silence:`)
    inspect: ClusterInspector | None = None   # diagnosis: events, nodes, PDBs, previous logs
    model: ModelApi | None = None         # diagnosis: an optional summary of the findings
    # further clusters by name (settings' kubernetes.clusters), for a target's ``cluster``
    clusters: dict[str, ClusterApi] = field(default_factory=dict)

    def cluster_for(self, target: TargetRef | None) -> ClusterApi | None:
        """The cluster a target names (None when it names an unknown one), else the
        default cluster."""
        if target is None or not target.cluster:
            return self.cluster
        return self.clusters.get(target.cluster)

    def every_cluster(self) -> list[ClusterApi]:
        return [c for c in (self.cluster, *self.clusters.values()) if c is not None]
