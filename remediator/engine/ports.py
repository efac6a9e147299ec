"""The outside world as the engine is given it: one field per port, each may be None
when it is not configured (a check that needs it then says so instead of waiting)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from remediator.ports import AlertsApi, ClusterApi, MetricsApi


@dataclass
class Ports:
    cluster: ClusterApi | None = None     # Kubernetes (kubectl semantics)
    metrics: MetricsApi | None = None     # Prometheus instant queries
    alerts: AlertsApi | None = None       # Alertmanager's API, for alert_resolved
    tickets: Any = None                   # Jira
    chat: Any = None                      # Slack
    http: Any = None                      # for http.post
