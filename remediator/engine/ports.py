"""The outside world as the engine is given it: one field per port, each may be None
when it is not configured (a check that needs it then says so instead of waiting)."""

from __future__ import annotations

from dataclasses import dataclass

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
