"""The params model of every action in the catalogue.

String fields may hold templates (rendered per alert at run time, then the model
is validated again); numbers and booleans may not, so that a playbook's limits
are checked when it is loaded, not at 3 a.m. Fields that must never come from
alert data (URLs, selectors' keys) reject templates outright.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from remediator.engine.contract import Params
from remediator.model.durations import Duration
from remediator.model.names import check_label_name


def _is_template(value: str) -> bool:
    return "{{" in value or "{%" in value


def _static(value: str, field: str) -> str:
    if _is_template(value):
        raise ValueError(f"{field} must be a fixed value, not a template "
                         "(alert data may not choose it)")
    return value


class RestartParams(Params):
    """kubectl rollout restart. Refuses a paused workload."""

    reason: str | None = Field(default=None, description="Recorded in the journal and messages.")


class ScaleParams(Params):
    """Scale through the scale subresource: exactly one of ``to``, ``by`` or ``factor``."""

    to: int | None = Field(default=None, ge=0)
    by: int | None = None
    factor: float | None = None
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)
    allow_hpa: bool = Field(default=False, description="Scale even when an HPA owns the object.")

    @field_validator("factor")
    @classmethod
    def _factor(cls, v: float | None) -> float | None:
        if v is not None and v <= 1:
            raise ValueError("must be > 1")
        return v

    @field_validator("by")
    @classmethod
    def _by(cls, v: int | None) -> int | None:
        if v is not None and v == 0:
            raise ValueError("must not be 0")
        return v

    @model_validator(mode="after")
    def _one_mode(self) -> ScaleParams:
        given = [n for n in ("to", "by", "factor") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'to', 'by' or 'factor'")
        if self.max_replicas is None and (self.factor is not None or (self.by or 0) > 0):
            raise ValueError("'max_replicas' is required when scaling up by 'by' or 'factor'")
        if self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError("'min_replicas' must not exceed 'max_replicas'")
        if self.to is not None and self.max_replicas is not None and self.to > self.max_replicas:
            raise ValueError(f"'to' ({self.to}) exceeds 'max_replicas' ({self.max_replicas})")
        return self


class RollbackParams(Params):
    """kubectl rollout undo: to the previous revision or a given one."""

    revision: Literal["previous"] | int = "previous"

    @field_validator("revision")
    @classmethod
    def _revision(cls, v: Literal["previous"] | int) -> Literal["previous"] | int:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be 'previous' or a revision number >= 1")
        return v


class DeletePodParams(Params):
    """Delete the alert's pod (default: the ``pod`` label) or pods matching a selector."""

    pod: str | None = None
    selector: dict[str, str] | None = None
    max_pods: int = Field(default=1, ge=1, le=50)
    grace_period_seconds: int | None = Field(default=None, ge=0)
    force: bool = Field(default=False,
                        description="Delete with grace period 0 (stuck Terminating).")

    @field_validator("selector")
    @classmethod
    def _selector(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is not None:
            if not v:
                raise ValueError("must not be empty (it would select every pod)")
            for key in v:
                _static(key, "a selector key")
                check_label_name(key, "selector key")
        return v

    @model_validator(mode="after")
    def _one_mode(self) -> DeletePodParams:
        if self.pod is not None and self.selector is not None:
            raise ValueError("give at most one of 'pod' or 'selector'")
        return self


class JiraIncidentParams(Params):
    """Open (or find again) the incident's Jira ticket."""

    project: str = Field(min_length=1)
    issue_type: str = "Incident"
    priority: str | None = None
    summary: str | None = Field(default=None, description="Template; default from the alert.")
    labels: list[str] = Field(default_factory=list)
    components: list[str] = Field(default_factory=list)

    @field_validator("project")
    @classmethod
    def _project(cls, v: str) -> str:
        return _static(v, "project")


class SlackNotifyParams(Params):
    """Post a message in the incident's Slack thread (or a channel)."""

    channel: str | None = None
    text: str = Field(min_length=1)


class SlackPageParams(Params):
    """Page the on-call group: a message mentioning them with the incident's context."""

    channel: str = Field(min_length=1)
    mention: str = Field(min_length=1, description="e.g. <!subteam^S0ONCALL> or <@U123>")
    text: str | None = None


class HttpPostParams(Params):
    """POST JSON to a fixed URL (a webhook of another system)."""

    url: str
    json_body: dict[str, object] = Field(default_factory=dict, alias="json")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = 10.0
    expect_status: list[int] = Field(default_factory=lambda: [200, 201, 202, 204])

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        _static(v, "url")
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


class WaitParams(Params):
    """Wait a while before the next step (e.g. for caches to warm)."""

    duration: Duration

    @field_validator("duration")
    @classmethod
    def _limit(cls, v: float) -> float:
        if v <= 0 or v > 3600:
            raise ValueError("must be more than 0s and at most 1h")
        return v


class _NodeFloor(Params):
    """The healthy-node floor: exactly one of ``min_ready_nodes`` or ``min_ready_percent``.
    A node counts as healthy when it is Ready and schedulable (not cordoned)."""

    min_ready_nodes: int | None = Field(default=None, ge=0)
    min_ready_percent: int | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _one_floor(self) -> _NodeFloor:
        if (self.min_ready_nodes is None) == (self.min_ready_percent is None):
            raise ValueError("give exactly one of 'min_ready_nodes' or 'min_ready_percent' "
                             "(the healthy-node floor cordoning must not break)")
        return self


class CordonParams(_NodeFloor):
    """kubectl cordon: mark the target Node unschedulable, unless the floor would break."""


class UncordonParams(Params):
    """kubectl uncordon: mark the target Node schedulable again."""


class DrainParams(_NodeFloor):
    """kubectl drain --ignore-daemonsets: cordon, then evict every pod through the Eviction
    API (PodDisruptionBudgets respected, a 429 retried every ``retry_interval`` until
    ``timeout``). Mirror and DaemonSet pods are skipped."""

    delete_emptydir_data: bool = Field(
        default=False, description="Evict pods with emptyDir volumes (their data is lost).")
    force: bool = Field(default=False,
                        description="Evict pods that no controller will recreate.")
    timeout: Duration = Field(default=90.0, description="How long to wait out PDBs (429s).")
    retry_interval: Duration = 5.0

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        if v <= 0 or v > 3600:
            raise ValueError("must be more than 0s and at most 1h")
        return v

    @field_validator("retry_interval")
    @classmethod
    def _interval(cls, v: float) -> float:
        if v <= 0 or v > 300:
            raise ValueError("must be more than 0s and at most 5m")
        return v


class IsolatePodParams(Params):
    """Take the alert's pod (default: its ``pod`` label) out of its Deployment and its
    Services by relabelling it; delete it once the incident has closed and ``keep_for``
    has passed."""

    pod: str | None = None
    keep_for: Duration = 3600.0
    max_isolated: int = Field(default=1, ge=1, le=10,
                              description="Isolated pods of one target at a time.")

    @field_validator("keep_for")
    @classmethod
    def _keep_for(cls, v: float) -> float:
        if v < 0 or v > 7 * 86400:
            raise ValueError("must be between 0s and 7d")
        return v


class NetworkIsolateParams(Params):
    """Cut the alert's pod off the network: a NetworkPolicy denying all ingress and
    egress to a quarantine label put on the pod; removed when the incident closes."""

    pod: str | None = None


# Why kubernetes.isolate_pod refuses a StatefulSet (the loader and the action say it)
ISOLATE_STATEFULSET = (
    "a StatefulSet's pods have fixed names (db-0, db-1, …): relabelled out, the isolated "
    "pod keeps its name, so the StatefulSet cannot start a replacement (it needs that same "
    "name, and the pod's volume claim) until the pod is deleted; isolating it would only "
    "take a replica away. Use kubernetes.delete_pod (recreated under its name) or "
    "kubernetes.network_isolate (its traffic cut off where it runs)")
