"""The composition root: settings → adapters → engine → HTTP server.

Nothing else wires things together. A dependency that is not configured or
not reachable does not stop the daemon: alerts are still received and
persisted, the steps that need it fail temporarily and then escalate, and
``/readyz`` says which one is missing or down (every port is observed by
``engine.health.DependencyHealth`` and probed when idle). The store's retention
pass and the dependency probes run under the engine's supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from remediator.actions import registry
from remediator.clock import Clock, SystemClock
from remediator.engine.core import Engine
from remediator.engine.health import DependencyHealth, Probe
from remediator.engine.ports import Ports
from remediator.errors import ConfigError, Problem, TemporaryError
from remediator.loader import check_policies, load_paths, playbook_needs
from remediator.metrics import Metrics, watch_loop_lag
from remediator.ports import AlertsApi, ChatApi, ClusterApi, HttpApi, MetricsApi, TrackerApi
from remediator.ports.alerts import SilencesApi
from remediator.ports.graphs import GraphRenderer
from remediator.ports.inspect import ClusterInspector
from remediator.ports.model import ModelApi
from remediator.ports.pager import PagerApi
from remediator.ports.sinks import Sink
from remediator.ports.store import Store
from remediator.server.auth import Credential, Sso
from remediator.server.http import ServerConfig, build_app
from remediator.server.limits import GuardedSite, Limits
from remediator.settings import Settings, read_secret
from remediator.store.retention import Retention
from remediator.store.sqlite import SqliteStore

log = logging.getLogger("remediator")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra`` fields such as ``incident`` are kept.

    Every incident step logs a line, so this is on the hot path: the formatted second is
    reused until the clock moves on, and the encoder is built once."""

    _STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
    _ENCODER = json.JSONEncoder(default=str)      # what json.dumps(..., default=str) builds
    # (second, converter, "%Y-%m-%dT%H:%M:%S" of that second): one tuple, swapped whole
    _second: tuple[int, Any, str] = (-1, None, "")

    def format(self, record: logging.LogRecord) -> str:
        second, converter, stamp = self._second
        if second != int(record.created) or converter is not self.converter:
            converter = self.converter
            second = int(record.created)
            stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
            self._second = (second, converter, stamp)
        data: dict[str, Any] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "msg": record.getMessage()}
        standard = self._STANDARD
        for key, value in vars(record).items():
            if key not in standard and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return self._ENCODER.encode(data)


class TextFormatter(logging.Formatter):
    """For a person at a terminal: ``time LEVEL logger: [inc-…] message``; the incident id
    (the ``incident`` extra) is kept, as in the JSON lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        incident = getattr(record, "incident", None)
        if incident:
            record.message = f"[{incident}] {record.message}"
        return super().formatMessage(record)


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
        import time
        logging.Formatter.converter = time.gmtime
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


@dataclass
class Daemon:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    sinks: list[Sink] = field(default_factory=list)
    engine: Engine | None = None
    url: str = ""
    _closers: list[Any] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _api: Any = None
    _renderer: GraphRenderer | None = None
    dependencies: dict[str, str] = field(default_factory=dict)
    health: DependencyHealth | None = None

    async def start(self) -> str:
        s = self.settings
        playbooks = load_paths(s.playbooks)
        unknown = check_policies(playbooks, s.escalation.policies)
        if unknown:
            raise ConfigError(unknown)
        log.info("loaded %d playbooks", len(playbooks), extra={"playbooks": [p.name for p
                                                                             in playbooks]})
        store = await self._open_store()
        http = aiohttp.ClientSession()
        self._closers.append(http.close)
        ports = await self._connect(http)
        log_missing_needs(playbooks, ports)
        metrics = Metrics()
        self.health = self._watch(ports, http, store, metrics)
        sinks = self._sinks(ports, store)
        self.engine = Engine(store=store, playbooks=playbooks, clock=self.clock,
                             catalogue=registry, ports=ports, settings=s.engine,
                             metrics=metrics, sinks=sinks, approvers=s.slack.approvers,
                             policies=s.escalation.policies, chain_tick=s.escalation.tick,
                             default_channel=s.slack.default_channel)
        self.engine.notifications.configure(storm_threshold=s.notify.storm.threshold,
                                            storm_window=s.notify.storm.window)
        await self._serve(self.engine)
        await self.engine.start()
        self._upkeep(self.engine, store, sinks)
        self._api.ready = True
        log.info("remediator ready on %s; web console at %s/", self.url, self.url,
                 extra={"dry_run": s.engine.dry_run, "dependencies": self.dependencies})
        return self.url

    def _watch(self, ports: Ports, http: aiohttp.ClientSession, store: Store,
               metrics: Metrics) -> DependencyHealth:
        """Dependency health: each configured port observed (its calls keep
        ``remediator_dependency_up`` current) and given a light probe for idle times."""
        s = self.settings
        # real seconds, like the sinks' rate limits: whether Jira answers is not a matter
        # of the engine's (in tests, fake) time
        health = DependencyHealth(SystemClock(), metrics)
        timeout = aiohttp.ClientTimeout(total=s.health.probe_timeout)

        def ready(url: str | None, path: str, fatal: int = 400) -> Probe | None:
            if not url:
                return None
            url = url.rstrip("/") + path

            async def get() -> None:
                async with http.get(url, timeout=timeout) as response:
                    if response.status >= fatal:
                        raise RuntimeError(f"GET {url}: HTTP {response.status}")
            return get

        probes: dict[str, tuple[Any, Probe | None]] = {
            "cluster": (ports.cluster, _cluster_probe(ports.cluster, s.health.probe_timeout)),
            "prometheus": (ports.metrics, ready(s.prometheus.url, "/-/ready")),
            "alertmanager": (ports.alerts, ready(s.alertmanager_url, "/-/ready")),
            "slack": (ports.chat, getattr(ports.chat, "check", None)),
            # serverInfo answers without credentials on Cloud; 4xx is still an answer
            "jira": (ports.tickets, ready(s.jira.url, "/rest/api/2/serverInfo", fatal=500)),
        }
        for name, (port, probe) in probes.items():
            detail = self.dependencies.get("kubernetes" if name == "cluster" else name, "")
            health.track(name, detail, probe=probe, configured=port is not None)
        health.track("store", "ok", probe=store.ping)
        ports.cluster = health.observe(ports.cluster, "cluster")
        ports.metrics = health.observe(ports.metrics, "prometheus")
        ports.alerts = health.observe(ports.alerts, "alertmanager")
        ports.chat = health.observe(ports.chat, "slack")
        ports.tickets = health.observe(ports.tickets, "jira")
        return health

    def _upkeep(self, engine: Engine, store: Store, sinks: list[Sink]) -> None:
        """The background loops the composition root adds to the engine's supervisor:
        the event loop's lag, dependency probes and the store's retention pass."""
        s = self.settings
        engine.tasks.start(watch_loop_lag(engine.metrics.event_loop_lag), name="loop-lag")
        if self.health is not None:
            engine.tasks.start(self.health.probe_loop(s.health.probe_interval,
                                                      s.health.probe_timeout),
                               name="dependency-probes")
        if s.store.retention:
            retention = Retention(store, self.clock, engine.metrics,
                                  retention=s.store.retention, interval=s.store.prune_interval,
                                  batch=s.store.prune_batch, sinks=[k.name for k in sinks])
            engine.tasks.start(retention.run(), name="store-retention")

    async def _open_store(self) -> Store:
        s = self.settings
        store: Store
        if s.store.path.startswith(("postgresql://", "postgres://")):
            from remediator.store.postgres import PostgresStore
            store = PostgresStore(s.store.path)
        else:
            store = SqliteStore(s.store.path, synchronous=s.store.synchronous)
        await store.open()
        self._closers.append(store.close)
        return store

    async def _connect(self, http: aiohttp.ClientSession) -> Ports:
        """The adapters, each bound to a name annotated with its port, so that mypy proves
        it conforms (``Ports`` itself is untyped): a drift between the two fails mypy here."""
        s = self.settings
        from remediator.adapters.http import AiohttpPoster
        poster: HttpApi = AiohttpPoster(http)
        ports = Ports(http=poster)
        ports.cluster = await self._cluster()
        ports.inspect = _inspector(ports.cluster)
        ports.model = _model(s, http)
        ports.clusters = await self._named_clusters()
        if s.prometheus.url:
            from remediator.adapters.prometheus import PrometheusMetrics
            from remediator.adapters.shared_queries import SharedQueries
            prometheus = PrometheusMetrics(s.prometheus.url, timeout=s.prometheus.timeout)

            async def close_prometheus() -> None:     # its worker threads and connections
                await prometheus.aclose()
            self._closers.append(close_prometheus)
            metrics: MetricsApi = SharedQueries(
                prometheus, window=s.prometheus.share_window,
                max_concurrency=s.prometheus.max_concurrency)
            ports.metrics = metrics
            self.dependencies["prometheus"] = s.prometheus.url
        else:
            self.dependencies["prometheus"] = "not configured: promql verifications will fail"
            log.warning("no Prometheus configured: steps verified by promql cannot succeed")
        if s.alertmanager_url:
            from remediator.adapters.alertmanager import AlertmanagerApi
            alerts: AlertsApi = AlertmanagerApi(s.alertmanager_url, http)
            ports.alerts = alerts
            ports.silences = _silences(alerts)
            self.dependencies["alertmanager"] = s.alertmanager_url
        else:
            self.dependencies["alertmanager"] = ("not configured: alert_resolved waits for a "
                                                 "resolved webhook")
        slack_token = read_secret(s.slack.token, s.slack.token_file, "the Slack token")
        if slack_token:
            from remediator.adapters.slack import SlackChat
            chat: ChatApi = SlackChat(slack_token, base_url=s.slack.base_url, session=http)
            ports.chat = chat
            self.dependencies["slack"] = s.slack.base_url
        else:
            self.dependencies["slack"] = "not configured"
        ports.pager = self._pager(http)
        ports.tickets = self._tickets()
        return ports

    def _tickets(self) -> TrackerApi | None:
        """Jira, when configured (a PAT, or an e-mail and API token)."""
        s = self.settings
        if not s.jira.url:
            self.dependencies["jira"] = "not configured"
            return None
        from remediator.adapters.jira import JiraTickets
        pat = read_secret(s.jira.pat, s.jira.pat_file, "the Jira PAT")
        token = read_secret(s.jira.api_token, s.jira.api_token_file, "the Jira API token")
        tickets: TrackerApi = JiraTickets(s.jira.url, email=s.jira.email, api_token=token,
                                          pat=pat)
        self.dependencies["jira"] = s.jira.url
        return tickets

    def _pager(self, http: aiohttp.ClientSession) -> PagerApi | None:
        """PagerDuty's Events API v2 through the HTTP port, when services are configured."""
        s = self.settings
        if not s.pagerduty.services:
            return None
        from remediator.adapters.http import AiohttpPoster
        from remediator.adapters.pagerduty import PagerDutyEvents
        keys = {name: read_secret(svc.routing_key, svc.routing_key_file,
                                  f"the routing key of PagerDuty service {name}") or ""
                for name, svc in s.pagerduty.services.items()}
        self.dependencies["pagerduty"] = s.pagerduty.events_url
        return PagerDutyEvents(AiohttpPoster(http), keys, url=s.pagerduty.events_url,
                               sleep=asyncio.sleep)

    def _webhooks(self, ports: Ports) -> list[Sink]:
        """A sink per ``notify.webhooks`` entry, POSTing through the HTTP port."""
        from remediator.notify.webhooks import WebhookSink
        out: list[Sink] = []
        for hook in self.settings.notify.webhooks:
            secret = read_secret(hook.secret, hook.secret_file,
                                 f"the secret of webhook {hook.name}") or ""
            assert ports.http is not None
            out.append(WebhookSink(hook.name, ports.http, hook.url, secret,
                                   events=hook.events))
        return out

    def _sinks(self, ports: Ports, store: Store) -> list[Sink]:
        """The given sinks, then console, Slack and Jira (each on its port) as configured;
        Slack and Jira get the incident's graphs and collected logs as files."""
        s = self.settings
        sinks = list(self.sinks)
        files = None
        if ports.chat is not None or ports.tickets is not None:
            from remediator.notify.files import EvidenceFiles
            files = EvidenceFiles(store, ports.metrics, self._graphs(), SystemClock(),
                                  graphs=s.notify.graphs)
        if s.notify.console:
            from remediator.notify.console import ConsoleSink
            sinks.append(ConsoleSink(sys.stdout))
        if ports.chat is not None:
            from remediator.notify.slack import SlackSink
            slack = SlackSink(ports.chat, s.slack.default_channel,
                              rate=s.notify.slack_rate, burst=s.notify.slack_burst, files=files)
            slack.use_clock(SystemClock())         # Slack's limits are in real seconds
            sinks.append(slack)
        if ports.pager is not None:
            from remediator.notify.pagerduty import PagerDutySink
            sinks.append(PagerDutySink(ports.pager))
        sinks += self._webhooks(ports)
        if ports.tickets is not None:
            from remediator.notify.jira import JiraSink
            jira = JiraSink(ports.tickets, s.jira.transition_on_close, rate=s.notify.jira_rate,
                            files=files)
            jira.use_clock(SystemClock())
            sinks.append(jira)
        return sinks

    def _graphs(self) -> GraphRenderer:
        """The one graph renderer (its worker processes start with the first graph) of
        the notifications and the API; shut down when the daemon stops."""
        if self._renderer is None:
            from remediator.adapters.graphs import MatplotlibRenderer
            self._renderer = MatplotlibRenderer()
            self._closers.insert(0, self._renderer.close)
        return self._renderer

    async def _serve(self, engine: Engine) -> None:
        """The HTTP server on ``server.listen``; sets ``self.url`` to where it is bound."""
        s = self.settings
        server_config = server_config_from(s, self.dependencies)
        if not server_config.authenticator().configured:
            log.warning("the webhook endpoint has NO authentication: set server.auth.users "
                        "(or server.auth.token_file) before exposing it beyond localhost")
        app, self._api = build_app(engine, server_config, self.health, graphs=self._graphs())
        from remediator import console
        from remediator.console.checks import PlaybookCheck
        from remediator.console.links import LinkConfig
        console.setup(app, self._api, LinkConfig.from_settings(s),
                      PlaybookCheck(s.playbooks, s.escalation.policies))
        # aiohttp's keep-alive timer bounds the wait for every request head after the first
        # (the guard bounds the first): one knob, server.header_timeout
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5,
                                     keepalive_timeout=server_config.header_timeout)
        await self._runner.setup()
        host, _, port = s.server.listen.rpartition(":")
        check_exposure(host, server_config)
        site = GuardedSite(self._runner, host, int(port),
                           Limits(header_timeout=server_config.header_timeout,
                                  max_connections=server_config.max_connections))
        await site.start()
        sockets = self._runner.addresses
        bound = sockets[0][1] if sockets else int(port)
        self.url = f"http://{host}:{bound}"

    async def _cluster(self) -> ClusterApi | None:
        k = self.settings.kubernetes
        mode: str = k.mode
        if mode == "auto":
            mode = _auto_mode(k.kubeconfig)
        if mode == "none":
            self.dependencies["kubernetes"] = "not configured: Kubernetes steps will escalate"
            log.warning("NO Kubernetes cluster configured: alerts are received and recorded, "
                        "Kubernetes steps fail and escalate")
            return None
        kubeconfig = k.kubeconfig
        if mode == "simulator":
            from remediator.simulator import seed as seeds
            from remediator.simulator.server import Simulator
            sim = Simulator(seeds.load_file(k.simulator_seed) if k.simulator_seed else None)
            url = await sim.start("127.0.0.1", 0)
            kubeconfig = sim.write_temp_kubeconfig()
            self._closers.insert(0, sim.stop)
            self.simulator = sim
            log.warning("using the SIMULATED cluster at %s (metrics at %s/metrics); for "
                        "kubectl: KUBECONFIG=%s (removed at exit)", url, url, kubeconfig,
                        extra={"kubeconfig": kubeconfig})
        from remediator.adapters.kubernetes import KubernetesCluster
        try:
            cluster = await KubernetesCluster.connect(
                kubeconfig=kubeconfig, context=k.context, in_cluster=(mode == "in-cluster"))
        except Exception as exc:
            self.dependencies["kubernetes"] = f"unavailable: {exc}"
            log.error("Kubernetes is unavailable (%s): Kubernetes steps will escalate", exc)
            return None
        self._closers.insert(0, cluster.close)
        self.dependencies["kubernetes"] = mode
        return cluster

    async def _named_clusters(self) -> dict[str, ClusterApi]:
        """kubernetes.clusters, each connected; one that cannot be is left out (its targets
        escalate as an unknown cluster) and said so."""
        from remediator.adapters.kubernetes import KubernetesCluster
        out: dict[str, ClusterApi] = {}
        for name, c in self.settings.kubernetes.clusters.items():
            try:
                cluster = await KubernetesCluster.connect(
                    kubeconfig=c.kubeconfig, context=c.context, in_cluster=c.in_cluster)
            except Exception as exc:
                self.dependencies[f"kubernetes.{name}"] = f"unavailable: {exc}"
                log.error("Kubernetes cluster %s is unavailable (%s): its targets escalate",
                          name, exc)
                continue
            self._closers.insert(0, cluster.close)
            self.dependencies[f"kubernetes.{name}"] = c.kubeconfig or "in-cluster"
            out[name] = cluster
        return out

    async def stop(self) -> None:
        if self._api is not None:
            self._api.accepting = False
            self._api.ready = False
        if self.engine is not None:
            await self.engine.stop(self.settings.server.shutdown_grace)
        if self._runner is not None:
            await self._runner.cleanup()
        for close in self._closers:
            with contextlib.suppress(Exception):
                await close()
        self._closers.clear()


_WHY = {"prometheus": "prometheus.url", "kubernetes": "kubernetes.mode",
        "slack": "slack.token_file",
        "jira": "jira.url"}


def log_missing_needs(playbooks: list[Any], ports: Ports) -> None:
    """One WARNING line per playbook that needs what is not configured (or reachable):
    those checks fail at once, those actions fail and escalate, approvals wait for
    the API or the CLI."""
    present = {"prometheus": ports.metrics is not None, "kubernetes": ports.cluster is not None,
               "slack": ports.chat is not None, "jira": ports.tickets is not None}
    for pb in playbooks:
        missing = {what: parts for what, parts in playbook_needs(pb).items()
                   if not present[what]}
        if missing:
            hint = "; approve or reject with 'remediator approve|reject ID'" if any(
                "(approval)" in part for part in missing.get("slack", ())) else ""
            log.warning("playbook %s needs what is not configured: %s%s", pb.name, "; ".join(
                f"{what} ({_WHY[what]}) for {', '.join(parts)}"
                for what, parts in missing.items()), hint,
                extra={"playbook": pb.name, "missing": sorted(missing)})


def check_exposure(host: str, config: ServerConfig) -> None:
    """Refuse to listen beyond loopback with no auth at all (the console would be open
    to the network), unless ``server.auth.insecure`` says that is meant."""
    import ipaddress
    if config.authenticator().configured or config.sso.configured or config.insecure:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError([Problem(
            "server.listen", None,
            f"{host!r} is not a loopback address and no auth is configured: set "
            "server.auth.users (or server.auth.sso), or server.auth.insecure: true")])


def server_config_from(s: Settings, dependencies: dict[str, str]) -> ServerConfig:
    """``ServerConfig`` from the settings, every secret read from its file."""
    auth = s.server.auth
    users = tuple(Credential(u.name, u.role,
                             read_secret(u.token, u.token_file, f"the token of user {u.name}")
                             or "")
                  for u in auth.users)
    empty = [c.name for c in users if not c.secret]
    if empty:
        raise ConfigError([Problem("server.auth.users", None,
                                   f"user {name!r}: the token is empty") for name in empty])
    return ServerConfig(
        max_body_bytes=s.server.max_body_bytes,
        bearer_token=read_secret(auth.token, auth.token_file, "the auth token"),
        basic_user=auth.basic_user,
        basic_password=read_secret(auth.basic_password, auth.basic_password_file,
                                   "the basic auth password"),
        users=users, header_timeout=s.server.header_timeout,
        body_timeout=s.server.body_timeout, max_connections=s.server.max_connections,
        slack_team_id=s.server.slack_team_id,
        slack_signing_secret=read_secret(s.slack.signing_secret, s.slack.signing_secret_file,
                                         "the Slack signing secret"),
        slack_approvers=tuple(s.slack.approvers),
        slack_acknowledgers=(None if s.slack.acknowledgers is None
                             else tuple(s.slack.acknowledgers)),
        pagerduty_webhook_secret=read_secret(s.pagerduty.webhook_secret,
                                             s.pagerduty.webhook_secret_file,
                                             "the PagerDuty webhook secret"),
        dependencies=dict(dependencies),
        sso=Sso.of(auth.sso.header, auth.sso.trusted_sources, auth.sso.roles,
                   auth.sso.default_role),
        session_ttl=auth.session_ttl, secure_cookie=auth.secure_cookie,
        insecure=auth.insecure)


def _silences(alerts: AlertsApi) -> SilencesApi:
    """The Alertmanager adapter as the silences port too (mypy proves it conforms)."""
    from remediator.adapters.alertmanager import AlertmanagerApi
    assert isinstance(alerts, AlertmanagerApi)
    silences: SilencesApi = alerts
    return silences


def _model(s: Settings, http: aiohttp.ClientSession) -> ModelApi | None:
    """The optional model that summarises findings (an OpenAI-compatible endpoint)."""
    m = s.diagnosis_model
    if not m.url:
        return None
    from remediator.adapters.openai_chat import OpenAIChat
    model: ModelApi = OpenAIChat(m.url, m.model, http, timeout=m.timeout,
                                 api_key=read_secret(m.api_key, m.api_key_file,
                                                     "the model's API key"),
                                 max_tokens=m.max_tokens)
    return model


def _inspector(cluster: ClusterApi | None) -> ClusterInspector | None:
    """Diagnosis's extra reads (events, nodes, PDBs, logs), on the cluster's own client."""
    from remediator.adapters.kubernetes import KubernetesCluster
    if not isinstance(cluster, KubernetesCluster):
        return None
    from remediator.adapters.k8s_inspect import KubernetesInspector
    inspector: ClusterInspector = KubernetesInspector(cluster)
    return inspector


def _cluster_probe(cluster: ClusterApi | None, timeout: float) -> Probe | None:
    """``GET /version`` on the Kubernetes API server (any credentials may read it): down
    when it cannot be reached or does not answer 2xx (a 503 from an unhealthy server, a
    401 for credentials it no longer takes)."""
    from remediator.adapters.kubernetes import VERSION, KubernetesCluster
    if not isinstance(cluster, KubernetesCluster):
        return None
    get_version = cluster.endpoint("GET", VERSION)

    async def version() -> None:
        response: Any = await get_version(_preload_content=False, _request_timeout=timeout)
        try:
            if not 200 <= response.status <= 299:
                raise TemporaryError(f"GET /version: HTTP {response.status} {response.reason}")
        finally:
            response.release()
    return version


def _auto_mode(kubeconfig: str | None) -> str:
    """in-cluster inside a pod, kubeconfig when one is given or exists, else none."""
    import os
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "in-cluster"
    if kubeconfig or os.environ.get("KUBECONFIG") or \
            os.path.exists(os.path.expanduser("~/.kube/config")):
        return "kubeconfig"
    return "none"


def settle_heap() -> None:
    """Once started: what was loaded so far (modules, playbooks, clients) lives as long as
    the process, so it is frozen out of the cyclic collector's passes; without that every
    full pass walks it all, 50-150 ms pauses under load (the intake's p99). The young
    generation is also let grow larger before a pass: a webhook allocates a few hundred
    objects, nearly all freed by reference counting, and 700 (the default) meant a pass
    every few webhooks."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


async def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT, then shut down within the grace period."""
    daemon = Daemon(settings)
    try:
        await daemon.start()
    except Exception:
        await daemon.stop()
        raise
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: no new alerts; in-flight steps get %gs",
             settings.server.shutdown_grace)
    await daemon.stop()
    log.info("stopped")
    return 0
