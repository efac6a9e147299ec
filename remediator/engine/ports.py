"""The outside world as the engine is given it: one field per port, each may be None
when it is not configured (a check that needs it then says so instead of waiting)."""

from __future__ import annotations

from dataclasses import dataclass

from remediator.ports import AlertsApi, ChatApi, ClusterApi, HttpApi, MetricsApi, TrackerApi
from remediator.ports.inspect import ClusterInspector
from remediator.ports.model import ModelApi


@dataclass
class Ports:
    cluster: ClusterApi | None = None     # Kubernetes (kubectl semantics)
    metrics: MetricsApi | None = None     # Prometheus instant queries
    alerts: AlertsApi | None = None       # Alertmanager's API, for alert_resolved
    tickets: TrackerApi | None = None     # Jira
    chat: ChatApi | None = None           # Slack
    http: HttpApi | None = None           # for http.post
    inspect: ClusterInspector | None = None   # diagnosis: events, nodes, PDBs, previous logs
    model: ModelApi | None = None         # diagnosis: an optional summary of the findings
