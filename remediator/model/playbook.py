"""The playbook format (``apiVersion: remediator/v1``, ``kind: Playbook``).

Pure data and single-field rules only. Rules that need the action catalogue or
the template compiler (unknown actions, params, template variables) live in
``remediator.loader``, which also maps every problem to a file and line.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from remediator.model.durations import Duration
from remediator.model.findings import FINDING_KINDS

#: Seconds a step's action and its retries may take when the step sets no ``timeout``
#: (its verification's own timeout comes on top).
ACTION_TIMEOUT = 120.0


#: ``group_by: ['...']``: group by every label (Alertmanager's spelling), one incident per alert
GROUP_BY_ALL = "..."
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _label_name(v: str) -> str:
    if v != GROUP_BY_ALL and not _LABEL_NAME.fullmatch(v):
        raise ValueError(f"{v!r} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*), "
                         "nor '...' (every label)")
    return v


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


_PLAYBOOK_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


class Metadata(Strict):
    name: str = Field(max_length=120)
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _PLAYBOOK_NAME.fullmatch(v):
            raise ValueError(f"{v!r} is not a valid playbook name "
                             "(lowercase letters, digits, '-' and '.')")
        return v


class Verify(Strict):
    """How to tell that a step worked. At least one check; all given must hold."""

    promql: str | None = Field(default=None, min_length=1)
    # what the promql measures, in words ("error ratio"): how the journal and the
    # notifications name its value; default: the query's left side
    name: str | None = Field(default=None, min_length=1, max_length=100)
    hold_for: Duration = Field(default=0.0, alias="for")
    rollout: Literal["complete"] | None = None
    alert_resolved: bool = False
    timeout: Duration = 300.0
    interval: Duration = 15.0

    @model_validator(mode="after")
    def _coherent(self) -> Verify:
        if self.promql is None and self.rollout is None and not self.alert_resolved:
            raise ValueError("give at least one of 'promql', 'rollout' or 'alert_resolved'")
        if self.name is not None and self.promql is None:
            raise ValueError("'name' applies to 'promql' only")
        if self.hold_for and self.promql is None:
            raise ValueError("'for' applies to 'promql' only")
        if self.timeout <= 0:
            raise ValueError("'timeout' must be more than 0s")
        if self.interval <= 0:
            raise ValueError("'interval' must be more than 0s")
        return self


class SlackApproval(Strict):
    channel: str = Field(min_length=1)


class Approval(Strict):
    """A human must click Approve in Slack before the step acts."""

    slack: SlackApproval
    ttl: Duration = 900.0
    approvers: list[str] = Field(
        default_factory=list,
        description="Slack user ids (U…) or user group ids (S…); empty: the config's list.")

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, v: float) -> float:
        if v <= 0 or v > 86400:
            raise ValueError("must be more than 0s and at most 24h")
        return v


class FindingCondition(Strict):
    """``{finding: recent_rollout}``: the diagnosis before the step found this kind."""

    finding: str

    @field_validator("finding")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in FINDING_KINDS:
            raise ValueError(f"unknown finding kind {v!r} (known: {', '.join(FINDING_KINDS)})")
        return v


class Step(Strict):
    name: str = Field(min_length=1, max_length=100)
    action: str
    params: dict[str, Any] = Field(default_factory=dict, alias="with")
    verify: Verify | None = None
    approval: Approval | None = None
    retries: int = Field(default=3, ge=0, le=20)
    # what to collect from the cluster once the step ended (the target's failing pods)
    collect: list[Literal["logs", "events"]] = Field(default_factory=list)
    # The action, its retries and its verification together; None: ACTION_TIMEOUT plus
    # the verification's own timeout.
    timeout: Duration | None = None
    # steered by the diagnosis made before the step: run only when / skip when it found
    # this kind of finding (the decision and the finding behind it are journaled)
    when: FindingCondition | None = None
    skip_if: FindingCondition | None = None

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("must be more than 0s")
        return v

    @property
    def effective_timeout(self) -> float:
        """Seconds the step may take from its first call to its verdict."""
        if self.timeout is not None:
            return self.timeout
        return ACTION_TIMEOUT + (self.verify.timeout if self.verify is not None else 0.0)


class Escalation(Strict):
    """One entry of ``escalate``: an action (``action`` + ``with``), or an on-call chain
    (``policy``: a name from the ``escalation.policies`` settings)."""

    action: str = ""
    policy: str | None = Field(default=None, min_length=1)
    params: dict[str, Any] = Field(default_factory=dict, alias="with")

    @model_validator(mode="after")
    def _one(self) -> Escalation:
        if self.policy is not None:
            if self.action or self.params:
                raise ValueError("an entry is either an action (action, with) or a policy")
        elif not self.action:
            raise ValueError("an entry needs an action or a policy")
        return self


class Silence(Strict):
    """``silence: {while: remediating}``: Alertmanager keeps quiet about the incident's
    alerts while remediator works on them (at most ``for``)."""

    while_: Literal["remediating"] = Field(alias="while")
    for_: Duration = Field(default=3600.0, gt=0, alias="for")


class Guards(Strict):
    cooldown: Duration = 0.0
    max_runs_per_hour: int | None = Field(default=None, ge=1)
    dry_run: bool = False


class Target(Strict):
    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "Pod", "Node"]
    namespace: str = ""               # none for a Node (cluster-scoped), required otherwise
    name: str = Field(min_length=1)
    cluster: str = ""                 # kubernetes.clusters' name (template); "": the default

    @model_validator(mode="after")
    def _scope(self) -> Target:
        if self.kind == "Node" and self.namespace:
            raise ValueError("a Node is cluster-scoped: give no 'namespace'")
        if self.kind != "Node" and not self.namespace:
            raise ValueError(f"a {self.kind} target needs a 'namespace'")
        return self


class SlackNotify(Strict):
    channel: str = Field(min_length=1)


class Notify(Strict):
    slack: SlackNotify | None = None


class Spec(Strict):
    match: list[str] = Field(min_length=1)
    continue_: bool = Field(default=False, alias="continue")
    target: Target | None = None
    # Which alerts share an incident when there is no target (Alertmanager's route
    # ``group_by``): None or ['...']: one incident per alert (label set); []: one per
    # playbook; [a, b]: one per value of labels a and b. A target is one per target.
    group_by: list[Annotated[str, AfterValidator(_label_name)]] | None = None
    guards: Guards = Field(default_factory=Guards)
    steps: list[Step] = Field(default_factory=list)
    escalate: list[Escalation] = Field(default_factory=list)
    notify: Notify = Field(default_factory=Notify)
    silence: Silence | None = None

    @model_validator(mode="after")
    def _something_to_do(self) -> Spec:
        if not self.steps and not self.escalate:
            raise ValueError("a playbook needs at least one step or one escalation")
        return self

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, v: list[str] | None) -> list[str] | None:
        if v and GROUP_BY_ALL in v and len(v) > 1:
            raise ValueError("'...' (every label) must be the only entry")
        if v and len(set(v)) != len(v):
            raise ValueError("a label is named twice")
        return v


class Playbook(Strict):
    api_version: Literal["remediator/v1"] = Field(alias="apiVersion")
    kind: Literal["Playbook"]
    metadata: Metadata
    spec: Spec

    # Where it came from, set by the loader (not part of the format).
    _source: str = PrivateAttr(default="<string>")
    _line: int = PrivateAttr(default=1)
    _name_line: int = PrivateAttr(default=1)
    _matchers: list[Any] = PrivateAttr(default_factory=list)
    _warnings: list[Any] = PrivateAttr(default_factory=list)     # loader Problems
    # (policy name, line, index) of each ``escalate: - policy:`` entry, set by the loader
    _policy_refs: list[tuple[str, int, int]] = PrivateAttr(default_factory=list)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def source(self) -> str:
        return self._source

    @property
    def line(self) -> int:
        return self._line

    @property
    def warnings(self) -> list[Any]:
        """What ``remediator check`` warns about (``remediator.errors.Problem``s, set by the
        loader): legal but risky, e.g. nested loops in a template."""
        return self._warnings

    @property
    def matchers(self) -> list[Any]:
        """The parsed ``spec.match`` (``remediator.matching.Matcher``), set by the loader."""
        return self._matchers
