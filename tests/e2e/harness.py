"""The end-to-end harness: the real Prometheus and Alertmanager around a running remediator.

One stack per session, everything on 127.0.0.1 and free ports:

* the simulated cluster (``python -m remediator.simulator``, a subprocess on the real
  clock) with one Deployment per scenario, each in its own namespace;
* the fake Slack and fake Jira servers, in-process on an event loop in a thread;
* ``prometheus`` (1 s scrape and evaluation) scraping the simulator's ``/metrics``
  with deploy/prometheus/rules.yaml rendered with shorter windows;
* ``prometheus-alertmanager`` (group_wait 1s, group_interval 2s, repeat_interval 1h)
  posting to remediator with a bearer token and ``send_resolved: true``;
* two ``remediator serve`` processes on the e2e playbooks: a normal one, and a
  ``--dry-run`` one that Alertmanager routes namespace ``e2e-dry`` to.

Readiness is polled (bounded). When a test fails, the tail of every process's log
is attached to its report. Teardown terminates every process the stack started.

The binaries are required in CI: when one is missing and ``CI`` is set, the tests
fail with the name of the missing binary; elsewhere they are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from remediator.testing.fake_jira import FakeJira
from remediator.testing.fake_slack import FakeSlack

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules.yaml"
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"

# The only differences between the operators' rules and the e2e copy.
E2E_WINDOW = "20s"
E2E_FOR = "5s"

BINARIES = {"prometheus": ("prometheus",),
            "alertmanager": ("prometheus-alertmanager", "alertmanager"),
            "promtool": ("promtool",),
            "amtool": ("amtool",)}

WEBHOOK_TOKEN = "e2e-webhook-token"
SIM_TOKEN = "e2e-sim-token"
BAD_IMAGE = "example/api:2.0.0-bad"

SEED: dict[str, Any] = {
    "token": SIM_TOKEN,
    "nodes": 3,
    "bad_images": [BAD_IMAGE],
    "deployments": [
        # 1: a bad rollout on top of three good revisions (1..3).
        {"namespace": "e2e-rollback", "name": "api", "replicas": 3, "image": "example/api:1.2.0",
         "history": ["example/api:1.0.0", "example/api:1.1.0"]},
        # 2: both revisions are made bad by the test.
        {"namespace": "e2e-escalate", "name": "api", "replicas": 2, "image": "example/esc:2.0.0",
         "history": ["example/esc:1.0.0"]},
        # 3: made bad, then good again by the test while the restart is being verified.
        {"namespace": "e2e-selfheal", "name": "api", "replicas": 2, "image": "example/heal:1.0.0",
         "history": ["example/heal:0.9.0"]},
        # 4: as 2, handled by the --dry-run daemon.
        {"namespace": "e2e-dry", "name": "api", "replicas": 2, "image": "example/dry:2.0.0",
         "history": ["example/dry:1.0.0"]},
    ],
}


# --- binaries -----------------------------------------------------------------------

def find_binary(name: str) -> str | None:
    """The binary's path: ``$E2E_<NAME>`` when set (e.g. E2E_ALERTMANAGER), else PATH,
    else /usr/bin."""
    override = os.environ.get(f"E2E_{name.upper()}")
    if override is not None:
        return override if os.access(override, os.X_OK) else None
    for candidate in BINARIES[name]:
        path = shutil.which(candidate) or (f"/usr/bin/{candidate}"
                                           if os.access(f"/usr/bin/{candidate}", os.X_OK)
                                           else None)
        if path:
            return path
    return None


def require_binaries(*names: str) -> dict[str, str]:
    """The binaries' paths; fail in CI (``CI`` set) and skip elsewhere when one is missing."""
    found = {n: find_binary(n) for n in names}
    missing = [" or ".join(BINARIES[n]) for n, p in found.items() if p is None]
    if missing:
        message = (f"e2e tests need the real binaries, not found ($E2E_<NAME>, PATH, /usr/bin): "
                   f"{', '.join(missing)} (Debian: apt-get install prometheus "
                   f"prometheus-alertmanager)")
        if os.environ.get("CI"):
            pytest.fail(message + "; CI is set, so this is a failure, not a skip",
                        pytrace=False)
        pytest.skip(message)
    return {n: p for n, p in found.items() if p is not None}


# --- rules ----------------------------------------------------------------------------

_WINDOW = re.compile(r"\[(\d+[smhd])\]")


def render_e2e_rules(text: str) -> str:
    """deploy/prometheus/rules.yaml with every range window set to ``E2E_WINDOW`` and
    every ``for`` to ``E2E_FOR``: only those two knobs change."""
    doc = yaml.safe_load(text)
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule["expr"] = _WINDOW.sub(f"[{E2E_WINDOW}]", rule["expr"])
            if "for" in rule:
                rule["for"] = E2E_FOR
    return "# Rendered by tests/e2e/conftest.py from deploy/prometheus/rules.yaml: only the\n" \
           f"# range windows ([{E2E_WINDOW}]) and the `for` durations ({E2E_FOR}) differ.\n" \
           + yaml.safe_dump(doc, sort_keys=False)


# --- small helpers --------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: Any = None, *, token: str | None = None,
         content_type: str = "application/json", timeout: float = 5.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str,
             interval: float = 0.5) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = predicate()
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        else:
            last = value
            if value:
                return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; "
                                 f"last: {last!r}"[:4000])
        time.sleep(interval)


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path | None = None, env: dict[str, str] | None = None) -> Proc:
        out = self.log.open("wb")
        self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, cwd=cwd, env=env)
        out.close()
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 80) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def wait_ready(proc: Proc, url: str, timeout: float = 30.0) -> None:
    def ready() -> bool:
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited ({proc.popen and proc.popen.returncode}) "
                                 f"before it was ready:\n{proc.tail()}")
        try:
            status, _ = http("GET", url, timeout=1.0)
        except OSError:
            return False
        return status == 200
    try:
        wait_for(ready, timeout, f"{proc.name} ready at {url}", interval=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- {proc.name} log ---\n{proc.tail()}") from None


class Fakes:
    """FakeSlack and FakeJira on an event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="e2e-fakes",
                                       daemon=True)
        self.thread.start()
        self.slack: FakeSlack = self.run(self._make(FakeSlack))
        self.jira: FakeJira = self.run(self._make(FakeJira))
        self.slack_url = self.run(self.slack.start())
        self.jira_url = self.run(self.jira.start())

    @staticmethod
    async def _make(cls: Callable[[], T]) -> T:
        return cls()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def inspect(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` on the fakes' loop, so that it never sees a half-made change."""
        async def call() -> T:
            return fn()
        return self.run(call())

    def close(self) -> None:
        if not self.loop.is_running():
            return
        with contextlib.suppress(Exception):
            self.run(self.slack.stop())
        with contextlib.suppress(Exception):
            self.run(self.jira.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class Stack:
    dir: Path
    fakes: Fakes
    sim_url: str = ""
    prom_url: str = ""
    am_url: str = ""
    rem_url: str = ""
    dry_url: str = ""
    procs: list[Proc] = field(default_factory=list)

    # simulator
    def sim(self, method: str, path: str, body: Any = None) -> Any:
        status, data = http(method, self.sim_url + path, body)
        assert status < 300, f"simulator {method} {path}: {status} {data}"
        return data

    def kube(self, method: str, path: str, body: Any = None,
             content_type: str = "application/json") -> Any:
        status, data = http(method, self.sim_url + path, body, token=SIM_TOKEN,
                            content_type=content_type)
        assert status < 300, f"kube {method} {path}: {status} {data}"
        return data

    def deployment(self, ns: str, name: str = "api") -> dict[str, Any]:
        return dict(self.kube("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"))

    def set_image(self, ns: str, image: str, name: str = "api") -> None:
        self.kube("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}",
                  [{"op": "replace", "path": "/spec/template/spec/containers/0/image",
                    "value": image}], content_type="application/json-patch+json")

    def bad_image(self, image: str, bad: bool = True) -> None:
        self.sim("POST" if bad else "DELETE", "/sim/v1/bad-images", {"image": image})

    def writes(self, ns: str) -> list[dict[str, Any]]:
        calls = self.sim("GET", "/sim/v1/calls")["calls"]
        return [c for c in calls if f"/namespaces/{ns}/" in c["path"]]

    # prometheus
    def query(self, expr: str) -> list[dict[str, Any]]:
        status, data = http("GET", self.prom_url + "/api/v1/query?" +
                            urllib.parse.urlencode({"query": expr}))
        assert status == 200, f"prometheus query {expr!r}: {status} {data}"
        return list(data["data"]["result"])

    def alert_state(self, ns: str) -> str | None:
        """'pending', 'firing' or None for HighErrorRate on ``ns``, as Prometheus sees it."""
        for sample in self.query(f'ALERTS{{alertname="HighErrorRate",namespace="{ns}"}}'):
            return str(sample["metric"]["alertstate"])
        return None

    def am_alerts(self, ns: str) -> list[dict[str, Any]]:
        status, data = http("GET", self.am_url + "/api/v2/alerts?" + urllib.parse.urlencode(
            {"filter": f'namespace="{ns}"'}))
        assert status == 200, data
        return list(data)

    # remediator
    def incidents(self, dry: bool = False) -> list[dict[str, Any]]:
        url = self.dry_url if dry else self.rem_url
        status, data = http("GET", url + "/api/v1/incidents", token=WEBHOOK_TOKEN)
        assert status == 200, f"GET /api/v1/incidents: {status} {data}"
        return list(data["incidents"])

    def incident_for(self, ns: str, dry: bool = False) -> dict[str, Any] | None:
        for summary in self.incidents(dry):
            target = summary.get("target") or {}
            if target.get("namespace") == ns:
                status, data = http("GET", f"{self.dry_url if dry else self.rem_url}"
                                           f"/api/v1/incidents/{summary['id']}",
                                    token=WEBHOOK_TOKEN)
                assert status == 200, data
                return dict(data)
        return None

    def wait_incident(self, ns: str, predicate: Callable[[dict[str, Any]], bool], timeout: float,
                      what: str, dry: bool = False) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def check() -> dict[str, Any] | None:
            inc = self.incident_for(ns, dry)
            if inc is not None:
                last.clear()
                last.update(inc)
                if predicate(inc):
                    return inc
            return None
        try:
            return wait_for(check, timeout, f"the {ns} incident: {what}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast incident view:\n{describe(last)}") from None

    def log_tails(self) -> list[tuple[str, str]]:
        return [(p.name, p.tail()) for p in self.procs]

    def dump_fakes(self) -> None:
        """What Slack and Jira received, as JSON next to the logs (for post-mortems)."""
        slack, jira = self.fakes.slack, self.fakes.jira
        messages = self.fakes.inspect(lambda: [
            {"channel": m.channel, "ts": m.ts, "thread_ts": m.thread_ts, "text": m.text,
             "history": m.history} for m in slack.messages])
        issues = self.fakes.inspect(lambda: [
            {"key": i.key, "status": i.status, "fields": i.fields, "comments": i.comments,
             "transitions": i.transitions} for i in jira.issues.values()])
        (self.dir / "slack.json").write_text(json.dumps(messages, indent=1, default=str))
        (self.dir / "jira.json").write_text(json.dumps(issues, indent=1, default=str))

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.dump_fakes()
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop()
        self.fakes.close()


def describe(incident: dict[str, Any]) -> str:
    """An incident's state, steps and timeline, for assertion messages."""
    if not incident:
        return "(none)"
    lines = [f"{incident.get('id')} {incident.get('state')} dry_run={incident.get('dry_run')}"]
    for s in incident.get("steps", []):
        lines.append(f"  step {s['index']} {s['name']!r} {s['action']} {s['status']} "
                     f"result={s.get('result')!r} verify={s.get('verify')!r} "
                     f"error={s.get('error')!r}")
    for t in incident.get("timeline", []):
        lines.append(f"  {t['at']} {t['kind']}: {t['message']}")
    return "\n".join(lines)


# --- the stack ------------------------------------------------------------------------

def _write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def _alertmanager_config(rem_port: int, dry_port: int) -> dict[str, Any]:
    def receiver(name: str, port: int) -> dict[str, Any]:
        return {"name": name, "webhook_configs": [{
            "url": f"http://127.0.0.1:{port}/api/v1/alerts", "send_resolved": True,
            "max_alerts": 0,
            "http_config": {"authorization": {"type": "Bearer",
                                              "credentials": WEBHOOK_TOKEN}}}]}
    return {
        "route": {"receiver": "remediator",
                  "group_by": ["alertname", "namespace", "deployment"],
                  "group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h",
                  "routes": [{"matchers": ['namespace="e2e-dry"'],
                              "receiver": "remediator-dry-run"}]},
        "receivers": [receiver("remediator", rem_port), receiver("remediator-dry-run", dry_port)],
    }


def _prometheus_config(sim_port: int, am_port: int) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                   "scrape_timeout": "1s"},
        "rule_files": ["rules.yaml"],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "simulator",
                            "static_configs": [{"targets": [f"127.0.0.1:{sim_port}"]}]}],
    }


def _remediator(stack: Stack, name: str, port: int, kubeconfig: Path,
                dry_run: bool) -> Proc:
    d = stack.dir
    token_file = _write(d / "webhook.token", WEBHOOK_TOKEN + "\n")
    slack_token = _write(d / "slack.token", stack.fakes.slack.token + "\n")
    jira_token = _write(d / "jira.token", stack.fakes.jira.api_token + "\n")
    config = _write(d / f"{name}.yaml", {
        "store": {"synchronous": "NORMAL"},
        "engine": {"retry_base": 0.5, "retry_max": 2.0, "call_timeout": 10.0,
                   "lock_retry_interval": 1.0},
        "slack": {"token_file": str(slack_token), "base_url": stack.fakes.slack_url,
                  "default_channel": "#ops-alerts"},
        "jira": {"url": stack.fakes.jira_url, "email": stack.fakes.jira.email,
                 "api_token_file": str(jira_token), "transition_on_close": "Done"},
        "notify": {"console": True},
        "log": {"level": "INFO", "format": "text"},
    })
    argv = [sys.executable, "-m", "remediator.cli", "serve", "--config", str(config),
            "--listen", f"127.0.0.1:{port}", "--playbooks", str(PLAYBOOKS),
            "--store", str(d / f"{name}.db"), "--auth-token-file", str(token_file),
            "--kubeconfig", str(kubeconfig), "--prometheus", stack.prom_url]
    if dry_run:
        argv.append("--dry-run")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDIATOR_")}
    env["PYTHONUNBUFFERED"] = "1"
    return Proc(name, argv, d / f"{name}.log").start(cwd=d, env=env)


def start_stack(base: Path) -> Stack:
    bins = require_binaries("prometheus", "alertmanager")
    stack = Stack(dir=base, fakes=Fakes())
    try:
        # the simulated cluster
        sim_port = free_port()
        kubeconfig = base / "sim.kubeconfig"
        seed = _write(base / "seed.yaml", SEED)
        sim = Proc("simulator", [sys.executable, "-m", "remediator.simulator",
                                 "--listen", f"127.0.0.1:{sim_port}", "--seed", str(seed),
                                 "--kubeconfig-out", str(kubeconfig)],
                   base / "simulator.log").start(cwd=REPO)
        stack.procs.append(sim)
        stack.sim_url = f"http://127.0.0.1:{sim_port}"
        wait_ready(sim, stack.sim_url + "/healthz")
        wait_for(kubeconfig.exists, 10, "the simulator's kubeconfig")

        rem_port, dry_port, am_port, prom_port = (free_port() for _ in range(4))
        stack.rem_url, stack.dry_url = (f"http://127.0.0.1:{p}" for p in (rem_port, dry_port))
        stack.am_url, stack.prom_url = (f"http://127.0.0.1:{p}" for p in (am_port, prom_port))

        # Alertmanager
        am_dir = base / "alertmanager"
        am_dir.mkdir()
        am_config = _write(base / "alertmanager.yml", _alertmanager_config(rem_port, dry_port))
        am = Proc("alertmanager", [bins["alertmanager"], f"--config.file={am_config}",
                                   f"--storage.path={am_dir}",
                                   f"--web.listen-address=127.0.0.1:{am_port}",
                                   "--cluster.listen-address=", "--log.level=debug"],
                  base / "alertmanager.log").start(cwd=base)
        stack.procs.append(am)

        # Prometheus
        prom_dir = base / "prometheus"
        prom_dir.mkdir()
        _write(prom_dir / "rules.yaml", render_e2e_rules(RULES.read_text()))
        prom_config = _write(prom_dir / "prometheus.yml", _prometheus_config(sim_port, am_port))
        prom = Proc("prometheus", [bins["prometheus"], f"--config.file={prom_config}",
                                   f"--storage.tsdb.path={prom_dir / 'data'}",
                                   f"--web.listen-address=127.0.0.1:{prom_port}",
                                   "--storage.tsdb.retention.time=1h",
                                   "--rules.alert.resend-delay=1s"],
                    base / "prometheus.log").start(cwd=prom_dir)
        stack.procs.append(prom)

        # remediator: the normal daemon and a --dry-run one
        stack.procs.append(_remediator(stack, "remediator", rem_port, kubeconfig, False))
        stack.procs.append(_remediator(stack, "remediator-dry-run", dry_port, kubeconfig, True))

        wait_ready(am, stack.am_url + "/-/ready")
        wait_ready(prom, stack.prom_url + "/-/ready")
        for proc, url in ((stack.procs[-2], stack.rem_url), (stack.procs[-1], stack.dry_url)):
            wait_ready(proc, url + "/readyz")
        # Prometheus scrapes the simulator before any scenario starts.
        wait_for(lambda: stack.query('up{job="simulator"} == 1'), 20,
                 "Prometheus to scrape the simulator")
        wait_for(lambda: stack.query("deployment:http_errors:ratio_rate1m"), 20,
                 "the recording rule to produce samples")
    except BaseException:
        stack.stop()
        raise
    return stack
