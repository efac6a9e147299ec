"""Configuration: one pydantic settings root with small nested groups.

Sources, later ones winning: built-in defaults → the YAML file (``--config``)
→ environment variables (``REMEDIATOR_<GROUP>__<FIELD>``, e.g.
``REMEDIATOR_ENGINE__DRY_RUN=true``) → command-line flags. Secrets are read
from files (``*_file``) or the environment, kept as ``SecretStr`` and never
logged. Every field has a default and says its unit.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from remediator.errors import ConfigError, Problem
from remediator.located import Loc, documents, phrase
from remediator.model.durations import Duration
from remediator.model.names import check_dns1123_label


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserSettings(Group):
    """One named credential: a bearer token with a role."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$",
                      description="Who acts with this token (journaled as the actor).")
    role: Literal["webhook", "viewer", "operator", "admin"] = Field(
        description="webhook: POST alerts only; viewer: read APIs and the console; operator: "
                    "also pause, resume, approve, reject, retry, close; admin: everything.")
    token_file: Path | None = Field(default=None, description="File holding the token.")
    token: SecretStr | None = Field(default=None, description="The token (prefer token_file).")

    @model_validator(mode="after")
    def _one_token(self) -> UserSettings:
        if (self.token is None) == (self.token_file is None):
            raise ValueError(f"user {self.name!r}: set exactly one of token_file and token")
        return self


ConsoleRole = Literal["viewer", "operator", "admin"]


class SsoSettings(Group):
    """A trusted SSO proxy (e.g. oauth2-proxy) in front of the console."""

    header: str = Field(default="X-Forwarded-User", min_length=1,
                        description="The header carrying the proxy's authenticated user.")
    trusted_sources: list[str] = Field(
        default_factory=list, description="Addresses or CIDR networks of the proxy; the header "
                                          "is ignored from any other peer. Empty: SSO is off.")
    roles: dict[str, ConsoleRole] = Field(
        default_factory=dict, description="SSO user -> role (viewer, operator, admin).")
    default_role: ConsoleRole | None = Field(
        default=None, description="Role of an SSO user not in roles (null: refused).")

    @field_validator("trusted_sources")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress
        for source in v:
            try:
                ipaddress.ip_network(source, strict=False)
            except ValueError:
                raise ValueError(f"{source!r} is not an address or a CIDR network") from None
        return v


class AuthSettings(Group):
    token: SecretStr | None = Field(default=None, description="Bearer token with full rights "
                                    "(prefer named users; kept so existing configs work).")
    token_file: Path | None = Field(default=None, description="File holding the full-rights "
                                                              "bearer token.")
    basic_user: str | None = None
    basic_password: SecretStr | None = None
    basic_password_file: Path | None = None
    users: list[UserSettings] = Field(
        default_factory=list, description="Named credentials with roles (webhook, viewer, "
                                          "operator, admin); give Alertmanager a webhook one. "
                                          "The console's login takes a user's token.")
    insecure: bool = Field(default=False, description="Allow listening on a non-loopback "
                                                      "address with no auth configured.")
    session_ttl: Duration = Field(default=43200.0, gt=0,
                                  description="Seconds a console login session lasts.")
    secure_cookie: Literal["auto", "always", "never"] = Field(
        default="auto", description="The session cookie's Secure flag: auto sets it when the "
                                    "request came over TLS (or X-Forwarded-Proto: https).")
    sso: SsoSettings = Field(default_factory=SsoSettings)

    @model_validator(mode="after")
    def _unique_names(self) -> AuthSettings:
        names = [u.name for u in self.users]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"users: duplicate name {', '.join(dup)}")
        return self


class ServerSettings(Group):
    listen: str = Field(default="127.0.0.1:8080", description="HOST:PORT to listen on.")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024,
                                description="Largest webhook body accepted (bytes).")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    shutdown_grace: Duration = Field(default=20.0, description="Seconds in-flight steps get on "
                                                               "SIGTERM before they are cut.")
    header_timeout: Duration = Field(
        default=10.0, gt=0, description="Seconds a connection has, from its opening or the end "
                                        "of its last response, to send a complete request "
                                        "head; also how long an idle keep-alive connection "
                                        "stays open.")
    body_timeout: Duration = Field(default=30.0, gt=0,
                                   description="Seconds a request has to send its whole body.")
    max_connections: int = Field(default=512, ge=1,
                                 description="Open connections at once; beyond, 503 and close.")
    slack_team_id: str | None = Field(
        default=None, description="The Slack workspace (T…) whose approval clicks are accepted "
                                  "(unset: the one the click says; the signature still binds "
                                  "the app).")
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto", description="The asyncio event loop: uvloop (libuv, about a third less "
                                    "CPU per webhook), asyncio (the standard library's), or auto "
                                    "(uvloop when it is installed).")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        _host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{v!r} is not HOST:PORT")
        return v


class StoreSettings(Group):
    path: str = Field(default="var/remediator.db",
                      description="SQLite file (WAL mode, one replica), or a PostgreSQL URL "
                                  "(postgresql://… or postgres://…) shared by several replicas.")
    synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL", description="FULL survives power loss; NORMAL only process crashes.")
    retention: Duration | None = Field(
        default=30 * 86400.0,
        description="How long closed incidents (with their alerts, journal, approvals and "
                    "sink state) are kept after they closed; delivered notifications go at "
                    "the next pass. 0 or null: keep everything forever. Keep it longer "
                    "than the longest cooldown (cooldowns read closed incidents).")
    prune_interval: Duration = Field(
        default=600.0, gt=0, description="Seconds between two retention passes (on PostgreSQL "
                                         "one replica runs each pass).")
    prune_batch: int = Field(
        default=500, ge=1, le=10_000,
        description="Incidents (or alerts, or notifications) deleted a transaction: small "
                    "transactions keep the intake's commits from waiting behind a pass.")

    @field_validator("retention")
    @classmethod
    def _forever(cls, v: float | None) -> float | None:
        return v or None          # 0: forever, like null


class DiagnosisSettings(Group):
    enabled: bool = Field(default=True,
                          description="Diagnose the target when an incident opens and before "
                                      "each step (read-only calls).")
    window: Duration = Field(default=1800.0, gt=0,
                             description="A rollout this long before the first alert is "
                                         "a recent change.")


class ModelSettings(Group):
    url: str | None = Field(default=None,
                            description="An OpenAI-compatible endpoint's base URL, e.g. "
                                        "http://vllm.ai:8000/v1 (unset: no model summary).")
    model: str = Field(default="", description="The model name the endpoint serves.")
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    timeout: Duration = Field(default=10.0, gt=0, description="Longest wait for an answer.")
    max_tokens: int = Field(default=300, ge=16, le=4096)


#: What the evidence collector blanks out of pod logs by default: bearer tokens, a
#: ``password=``/``password:`` value, AWS access key ids and secret keys.
DEFAULT_REDACT = [
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+",
    r"""(?i)(passw(?:or)?d\s*[=:]\s*)[^\s&;,"']+""",
    r"\b((?:AKIA|ASIA))[A-Z0-9]{16}\b",
    r"(?i)(aws_secret_access_key\s*[=:]\s*)[A-Za-z0-9/+=]{40}",
]


class EvidenceSettings(Group):
    """What is collected from the cluster when an incident escalates (and after a step
    with ``collect``): the logs and events of its failing pods."""

    log_lines: int = Field(default=100, ge=1, le=5000,
                           description="Last lines of each container's log.")
    log_bytes: int = Field(default=16384, ge=256, le=1048576,
                           description="Most bytes of log kept per pod (all its containers).")
    max_pods: int = Field(default=3, ge=1, le=20, description="Failing pods looked at.")
    max_items: int = Field(default=60, ge=1, le=1000,
                           description="Most collected items (logs, events) kept per incident.")
    redact: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REDACT),
        description="Regular expressions whose matches are replaced by [REDACTED] in "
                    "collected logs; a first group, if any, is kept (the 'password=' part).")

    @field_validator("redact")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"redact pattern {pattern!r} is not a regular expression: "
                                 f"{exc}") from None
        return v


class EngineSettings(Group):
    dry_run: bool = Field(default=False, description="Journal every action as 'would do'.")
    max_parallel: int = Field(default=32, ge=1, description="Incidents worked on at once.")
    allow_namespaces: list[str] = Field(default_factory=list,
                                        description="Only these namespaces (empty: all).")
    deny_namespaces: list[str] = Field(default_factory=lambda: ["kube-system"])
    action_budget: int = Field(default=20, ge=1,
                               description="Mutating actions per window, all incidents.")
    action_budget_window: Duration = Field(default=600.0, description="Budget window.")
    retry_base: Duration = Field(default=2.0, description="First retry delay; doubles.")
    retry_max: Duration = Field(default=60.0, description="Longest retry delay.")
    call_timeout: Duration = Field(default=60.0, description="Longest single API call.")
    lock_retry_interval: Duration = Field(default=10.0,
                                          description="Re-check of a busy per-target lock.")
    escalation_retries: int = Field(
        default=3, ge=0, description="Quick tries of each escalation action before the "
                                     "ones that met only temporary errors keep trying.")
    escalation_retry_for: Duration = Field(
        default=3600.0, description="How long an escalation action that met only temporary "
                                    "errors (Jira down) keeps trying.")
    intake_priority: Duration = Field(
        default=1.0, ge=0,
        description="Incident runs give way to webhooks being received: before each "
                    "journal write and action call a run waits while the intake is busy "
                    "and until no webhook has come for 10 ms, at most this long "
                    "(0: never). In an alert storm alerts are acknowledged first.")
    lease: Duration = Field(default=30.0, gt=0,
                            description="Shared store: how long a replica's claim on an "
                                        "incident holds without renewal (renewed every third).")
    scan_interval: Duration = Field(default=5.0, gt=0,
                                    description="Shared store: seconds between looks for "
                                                "incidents no replica holds.")
    owner: str | None = Field(default=None,
                              description="This replica's name in leases (default: host, "
                                          "process id and a random part).")
    diagnosis: DiagnosisSettings = Field(default_factory=DiagnosisSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)


class ClusterSettings(Group):
    """One more cluster a playbook's ``target.cluster`` may name."""

    kubeconfig: str | None = Field(default=None, description="Its kubeconfig file.")
    context: str | None = Field(default=None, description="The context in that kubeconfig.")
    in_cluster: bool = Field(default=False,
                             description="The cluster remediator runs in (service account).")

    @model_validator(mode="after")
    def _one_source(self) -> ClusterSettings:
        if self.in_cluster == (self.kubeconfig is not None):
            raise ValueError("give either 'kubeconfig' (and optionally 'context') or "
                             "'in_cluster: true'")
        if self.in_cluster and self.context is not None:
            raise ValueError("'context' applies to a kubeconfig only")
        return self


class KubernetesSettings(Group):
    mode: Literal["auto", "in-cluster", "kubeconfig", "simulator", "none"] = Field(
        default="auto", description="auto: in-cluster when running in a pod, else the "
                                    "kubeconfig if one exists, else none.")
    kubeconfig: str | None = None
    context: str | None = None
    simulator_seed: str | None = Field(default=None, description="Seed file for mode simulator.")
    clusters: dict[str, ClusterSettings] = Field(
        default_factory=dict,
        description="Further clusters by name, for a playbook's target.cluster (the "
                    "cluster above is the default one, for targets naming none).")

    @field_validator("clusters")
    @classmethod
    def _cluster_names(cls, v: dict[str, ClusterSettings]) -> dict[str, ClusterSettings]:
        for name in v:
            check_dns1123_label(name, "cluster name")
        return v


class PrometheusSettings(Group):
    url: str | None = Field(default=None, description="e.g. http://prometheus:9090")
    timeout: Duration = 10.0
    share_window: Duration = Field(
        default=5.0, ge=0,
        description="an identical query's answer is shared for this long (0: off)")
    max_concurrency: int = Field(default=16, ge=1,
                                 description="distinct queries in flight at once")


class SlackSettings(Group):
    token: SecretStr | None = None
    token_file: Path | None = None
    base_url: str = "https://slack.com/api/"
    default_channel: str | None = None
    workspace_url: str | None = Field(
        default=None, description="e.g. https://acme.slack.com: the console links each "
                                  "incident to its Slack thread there.")
    signing_secret: SecretStr | None = None
    signing_secret_file: Path | None = None
    approvers: list[str] = Field(default_factory=list,
                                 description="Slack user/group ids allowed to approve.")
    acknowledgers: list[str] | None = Field(
        default=None, description="Slack user/group ids allowed to click Acknowledge (null: "
                                  "the approvers; [] allows nobody).")


class JiraSettings(Group):
    url: str | None = None
    email: str | None = None
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    pat: SecretStr | None = None
    pat_file: Path | None = None
    transition_on_close: str | None = "Done"


class StormSettings(Group):
    threshold: int = Field(
        default=20, ge=1,
        description="More than this many incidents opened for one playbook within 'window' "
                    "is a storm: its incidents share one Slack storm message (edited with "
                    "counts by state) and one Jira ticket instead of one thread each.")
    window: Duration = Field(default=300.0, gt=0,
                             description="Seconds over which incidents are counted.")


class WebhookSettings(Group):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="Names the sink (its delivery state and metrics).")
    url: str = Field(min_length=1, description="Where the events are POSTed.")
    secret: SecretStr | None = None
    secret_file: Path | None = Field(default=None, description="File holding the HMAC "
                                                               "secret.")
    events: list[Literal["opened", "state", "step", "approval_requested",
                         "approval_decided", "escalated", "closed", "acknowledged",
                         "released"]] = Field(
        default_factory=list, description="Event kinds to send (empty: every one).")

    @model_validator(mode="after")
    def _secret(self) -> WebhookSettings:
        if self.secret is None and self.secret_file is None:
            raise ValueError("a webhook needs secret_file (its HMAC signing secret)")
        return self


class NotifySettings(Group):
    console: bool = Field(default=True, description="Print every incident event on stdout.")
    storm: StormSettings = Field(default_factory=StormSettings)
    graphs: bool = Field(default=True,
                         description="Attach the incident's graphs (PNG, drawn in a worker "
                                     "process) to its Slack thread and Jira ticket.")
    webhooks: list[WebhookSettings] = Field(
        default_factory=list, description="Lifecycle webhooks: incidents' events POSTed, "
                                          "signed, through the outbox.")
    slack_rate: float = Field(default=1.0, gt=0,
                              description="Slack calls a second per channel (Slack: about "
                                          "one message a second in a channel).")
    slack_burst: float = Field(default=4.0, ge=1, description="Slack calls in a short burst.")
    jira_rate: float = Field(default=1.0, gt=0,
                             description="Jira calls a second (conservative: Jira Cloud's "
                                         "limits are per user and not one published figure).")


class EscalationTargets(Group):
    slack_users: list[str] = Field(default_factory=list,
                                   description="Slack user ids (U…/W…) mentioned in the page.")
    slack_groups: list[str] = Field(default_factory=list,
                                    description="Slack user group ids (S…) mentioned.")
    slack_channel: str | None = Field(default=None,
                                      description="Where the page is posted (else "
                                                  "slack.default_channel).")
    pagerduty: str | None = Field(default=None, min_length=1,
                                  description="A service of pagerduty.services: an alert is "
                                              "triggered there (dedup key: the incident id).")

    @field_validator("slack_users")
    @classmethod
    def _users(cls, v: list[str]) -> list[str]:
        bad = [u for u in v if u[:1] not in ("U", "W")]
        if bad:
            raise ValueError(f"not Slack user ids (U… or W…): {', '.join(bad)}")
        return v

    @field_validator("slack_groups")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        bad = [g for g in v if not g.startswith("S")]
        if bad:
            raise ValueError(f"not Slack user group ids (S…): {', '.join(bad)}")
        return v


class EscalationLevel(Group):
    targets: EscalationTargets = Field(default_factory=EscalationTargets)
    ack_within: Duration = Field(gt=0, description="Unacknowledged this long after the "
                                                   "page: the next level is paged.")
    reminders: list[Duration] = Field(default_factory=list,
                                      description="Seconds after the page when it is "
                                                  "repeated to the same targets.")

    @model_validator(mode="after")
    def _coherent(self) -> EscalationLevel:
        t = self.targets
        if not (t.slack_users or t.slack_groups or t.slack_channel or t.pagerduty):
            raise ValueError("a level needs at least one target (slack_users, slack_groups, "
                             "slack_channel or pagerduty)")
        late = [r for r in self.reminders if r <= 0 or r >= self.ack_within]
        if late:
            raise ValueError(f"reminders must fall within ack_within ({self.ack_within:g}s): "
                             f"{', '.join(f'{r:g}s' for r in late)}")
        return self


class EscalationPolicy(Group):
    levels: list[EscalationLevel] = Field(min_length=1)
    repeat: int = Field(default=0, ge=0, le=100,
                        description="Times the whole chain is paged again after its last "
                                    "level goes unacknowledged.")


class EscalationSettings(Group):
    policies: dict[str, EscalationPolicy] = Field(
        default_factory=dict, description="Named on-call chains a playbook's escalate block "
                                          "references with `- policy: NAME`.")
    tick: Duration = Field(default=5.0, gt=0,
                           description="Seconds between looks for chain timers that fell due.")


class PagerDutyService(Group):
    routing_key: SecretStr | None = None
    routing_key_file: Path | None = Field(default=None, description="File holding the "
                                                                    "service's routing key.")


class PagerDutySettings(Group):
    events_url: str = Field(default="https://events.pagerduty.com",
                            description="Events API v2 base URL.")
    services: dict[str, PagerDutyService] = Field(
        default_factory=dict, description="Services escalation levels page, by name.")
    webhook_secret: SecretStr | None = None
    webhook_secret_file: Path | None = Field(
        default=None, description="The v3 webhook subscription's signing secret: "
                                  "POST /api/v1/pagerduty/webhook is served when set.")


class HealthSettings(Group):
    probe_interval: Duration = Field(
        default=30.0, gt=0,
        description="Seconds after which a dependency that no real call used is probed "
                    "lightly (Kubernetes /version, Prometheus and Alertmanager /-/ready, "
                    "Slack auth.test, Jira serverInfo, the store's ping).")
    probe_timeout: Duration = Field(default=5.0, gt=0,
                                    description="Seconds a probe may take before it counts "
                                                "as the dependency being down.")


class LogSettings(Group):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REMEDIATOR_", env_nested_delimiter="__",
                                      extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    playbooks: list[str] = Field(default_factory=lambda: ["playbooks"])
    engine: EngineSettings = Field(default_factory=EngineSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    alertmanager_url: str | None = None
    alertmanager_external_url: str | None = Field(
        default=None, description="Alertmanager as a browser reaches it (the console's "
                                  "silence links); unset: alertmanager_url.")
    diagnosis_model: ModelSettings = Field(default_factory=ModelSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    jira: JiraSettings = Field(default_factory=JiraSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    pagerduty: PagerDutySettings = Field(default_factory=PagerDutySettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @model_validator(mode="after")
    def _pagerduty_services(self) -> Settings:
        for name, policy in self.escalation.policies.items():
            for i, level in enumerate(policy.levels):
                service = level.targets.pagerduty
                if service is not None and service not in self.pagerduty.services:
                    raise ValueError(f"escalation.policies.{name}.levels.{i}.targets."
                                     f"pagerduty: unknown service {service!r} (not in "
                                     "pagerduty.services)")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init) beat the environment, which beats the file (passed as init too,
        # merged beforehand in load_settings).
        return (init_settings, env_settings)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_settings(path: str | Path | None = None,
                  overrides: dict[str, Any] | None = None) -> Settings:
    """Defaults ← file ← environment ← ``overrides`` (flags). ConfigError names the file,
    line and field of every problem (or the environment, for a value set there)."""
    data: dict[str, Any] = {}
    lines: dict[Loc, int] = {}
    source = str(path) if path else "<settings>"
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([Problem(source, None, f"cannot read: {exc.strerror}")]) from exc
        first_doc = next(documents(text, source), None)
        if first_doc is not None:
            loaded, lines, first = first_doc
            if loaded is not None and not isinstance(loaded, dict):
                raise ConfigError([Problem(source, first, "the config must be a mapping")])
            data = loaded or {}
    try:
        from_env = Settings()  # defaults ← env
    except ValidationError as exc:
        raise ConfigError([Problem("environment", None,
                                   f"REMEDIATOR_{'__'.join(str(p) for p in e['loc']).upper()}: "
                                   f"{phrase(e, Settings)}") for e in exc.errors()]) from exc
    # The environment must beat the file: the fields it set are merged over the file.
    try:
        merged = _merge(data, _explicit(from_env))
        if overrides:
            merged = _merge(merged, overrides)
        return Settings(**merged)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = tuple(e["loc"])
            where = ".".join(str(p) for p in loc)
            line = lines.get(loc) or (lines.get(loc[:-1]) if len(loc) > 1 else None)
            problems.append(Problem(source if line else f"{source} (or flags/environment)",
                                    line, f"{where}: {phrase(e, Settings)}"))
        raise ConfigError(problems) from exc


def _explicit(settings: Settings) -> dict[str, Any]:
    """The fields the environment set (so that they override the file)."""
    env = {k for k in os.environ if k.startswith("REMEDIATOR_")}
    out: dict[str, Any] = {}
    dumped = settings.model_dump()
    for key in env:
        parts = key.removeprefix("REMEDIATOR_").lower().split("__")
        value: Any = dumped
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                value = None
                break
            value = value[part]
        if value is None:
            continue
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def read_secret(value: SecretStr | None, path: Path | None, what: str) -> str | None:
    """A secret from the setting itself or from its file (trailing newline dropped)."""
    if value is not None:
        return value.get_secret_value()
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError([Problem(str(path), None,
                                   f"cannot read {what}: {exc.strerror}")]) from exc
