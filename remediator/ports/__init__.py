"""The ports: small Protocols the engine and the actions talk to the outside world through.

One module per port: ``cluster`` (Kubernetes), ``metrics`` (Prometheus),
``alerts`` (Alertmanager), ``chat`` (Slack), ``tracker`` (Jira), ``http`` (the
``http.post`` webhook), ``sinks`` (where notification events are delivered); time
is ``remediator.clock.Clock``, re-exported here.
Each module also holds the plain data types its port exchanges and the pure
helpers both the callers and the adapter need.

Adapters (``remediator.adapters``) implement the ports with real client
libraries; ``remediator.app`` proves each one conforms (to mypy). Nothing here
imports a third-party client, an adapter, the engine or an action.

Every method raises only ``TemporaryError`` or ``PermanentError``
(``remediator.errors``), with the underlying exception chained.
"""

from remediator.clock import Clock
from remediator.ports.alerts import AlertsApi
from remediator.ports.chat import (
    SLACK_ROOT_CHANNEL,
    SLACK_ROOT_TS,
    SLACK_SINK,
    Blocks,
    ChatApi,
    PostedMessage,
)
from remediator.ports.cluster import (
    ClusterApi,
    KubeObject,
    RolloutStatus,
    TargetContext,
    api_path,
    selector_string,
)
from remediator.ports.http import HttpApi, HttpResponse
from remediator.ports.metrics import MetricsApi, Sample
from remediator.ports.tracker import Ticket, TrackerApi, clean_label, clean_summary, truncate

__all__ = [
    "SLACK_ROOT_CHANNEL", "SLACK_ROOT_TS", "SLACK_SINK", "AlertsApi", "Blocks", "ChatApi",
    "Clock", "ClusterApi", "HttpApi", "HttpResponse", "KubeObject", "MetricsApi",
    "PostedMessage", "RolloutStatus", "Sample", "TargetContext", "Ticket", "TrackerApi",
    "api_path", "clean_label", "clean_summary", "selector_string", "truncate",
]
