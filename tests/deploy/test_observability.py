"""remediator's self-monitoring: the PrometheusRule, the ServiceMonitor, the Grafana
dashboard and the Alertmanager snippets.

- Every PromQL expression (alert rules, dashboard panels, dashboard variables)
  names only metrics that remediator/metrics.py exports, with prometheus-client's
  suffixes (Counter ``_total``, Histogram ``_bucket``/``_sum``/``_count``), plus
  Prometheus' own ``up``.
- ``promtool check rules`` accepts the rule groups and every dashboard expression,
  and ``promtool test rules`` (tests/deploy/data/remediator_rules_test.yaml) shows
  the main alerts firing when they should and not before.
- ``amtool check-config`` accepts the receiver snippet and the routing example.

promtool and amtool tests skip when the binaries are absent; the rest does not.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from remediator.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RULE_FILE = DEPLOY / "kustomize" / "base" / "prometheusrule.yaml"
SERVICE_MONITOR = DEPLOY / "kustomize" / "base" / "servicemonitor.yaml"
DASHBOARD = DEPLOY / "grafana" / "remediator.json"
RECEIVER = DEPLOY / "alertmanager" / "receiver.yaml"
ROUTING = DEPLOY / "alertmanager" / "routing.example.yaml"
RULES_TEST = Path(__file__).parent / "data" / "remediator_rules_test.yaml"
PROMETHEUS_BUILTINS = {"up"}
# Values for Grafana's variables when an expression is checked by promtool.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h",
                     "${datasource}": "", "$playbook": ".*"}


# ---------------------------------------------------------------------------
# metric names
# ---------------------------------------------------------------------------

def exported_metric_names() -> set[str]:
    """Series names a scrape of remediator can contain, from the metrics contract."""
    names: set[str] = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
        elif family.type == "gauge":
            names.add(family.name)
        else:  # pragma: no cover - a new metric type needs a rule here
            raise AssertionError(f"unhandled metric type {family.type} for {family.name}")
    return names


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
             "unless", "bool", "offset", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(?![\w:])(\s*\()?")
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][\w:]*)?[^,)]*(?:,\s*\w+)?\s*\)")


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression (or Grafana's label_values()) selects."""
    text = expr
    for var in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        text = text.replace(var, "")
    text = re.sub(r"\$\w+", "", text)
    text = _STRING.sub('""', text)
    text = re.sub(r"\{[^}]*\}", "", text)        # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)       # range selectors, subqueries
    text = _GROUPING.sub("", text)
    text = _LABEL_VALUES.sub(lambda m: m.group(1) or "", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue  # a function, an aggregation or a keyword
        names.add(name)
    return names


def test_metric_name_extraction() -> None:
    assert metric_names_in(
        'sum by (code) (rate(remediator_webhook_requests_total{code=~"5..", a="b c"}'
        '[$__rate_interval])) / ignoring(x) up offset 5m') == {
        "remediator_webhook_requests_total", "up"}
    assert metric_names_in('absent(up{job="remediator"} == 1)') == {"up"}
    assert metric_names_in("label_values(remediator_incidents_opened_total{job=\"r\"}, "
                           "playbook)") == {"remediator_incidents_opened_total"}
    assert metric_names_in("histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))") == {
        "x_bucket"}


def _assert_known(expr: str, where: str) -> set[str]:
    names = metric_names_in(expr)
    assert names, f"{where}: no metric in {expr!r}"
    unknown = names - exported_metric_names() - PROMETHEUS_BUILTINS
    assert not unknown, (f"{where}: {sorted(unknown)} are not exported by "
                         f"remediator/metrics.py (expr: {expr})")
    return names


# ---------------------------------------------------------------------------
# PrometheusRule
# ---------------------------------------------------------------------------

def _rule_doc() -> dict[str, Any]:
    return yaml.safe_load(RULE_FILE.read_text(encoding="utf-8"))


def _alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in _rule_doc()["spec"]["groups"] for r in g["rules"]}


def test_prometheus_rule_structure() -> None:
    doc = _rule_doc()
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["kind"] == "PrometheusRule"
    assert doc["metadata"] == {"name": "remediator", "namespace": "remediator",
                               "labels": {"app.kubernetes.io/name": "remediator"}}
    assert set(doc["spec"]) == {"groups"}
    names = [g["name"] for g in doc["spec"]["groups"]]
    assert len(names) == len(set(names))
    for group in doc["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["alert"].startswith("Remediator")
            assert rule["labels"]["severity"] in {"critical", "warning"}
            assert rule["labels"]["remediator_self"] == "true", (
                "self-alerts must be routable away from remediator")
            assert {"summary", "description", "runbook"} <= set(rule["annotations"])
            anchor = rule["annotations"]["runbook"].partition("#")[2]
            assert anchor == f"runbook-{rule['alert'].lower()}"


def test_the_required_alerts_exist() -> None:
    alerts = _alerts()
    assert 'absent(up{job="remediator"}' in alerts["RemediatorDown"]["expr"]
    assert "remediator_automation_paused" in alerts["RemediatorAutomationPaused"]["expr"]
    assert "== 1" in alerts["RemediatorAutomationPaused"]["expr"]
    assert 'code=~"5.."' in alerts["RemediatorWebhookErrors"]["expr"]
    assert "remediator_escalations_total" in alerts["RemediatorEscalationsRising"]["expr"]
    assert "remediator_notifications_failed_total" in (
        alerts["RemediatorNotificationFailures"]["expr"])


def test_rule_expressions_use_only_exported_metrics() -> None:
    for name, rule in _alerts().items():
        _assert_known(rule["expr"], f"alert {name}")


def test_readme_has_every_runbook_anchor() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    headings = {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip()).lower().replace(" ", "-")
                for line in readme.splitlines() if line.startswith("#")}
    for name, rule in _alerts().items():
        anchor = rule["annotations"]["runbook"].partition("#")[2]
        assert anchor in headings, f"{name}: no heading for #{anchor} in deploy/README.md"


def _promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool is not installed")
    return exe


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                          cwd=cwd)


def test_promtool_checks_the_rule_groups(tmp_path: Path) -> None:
    promtool = _promtool()
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(_rule_doc()["spec"]), encoding="utf-8")
    proc = _run([promtool, "check", "rules", str(rules)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_of_the_alerts(tmp_path: Path) -> None:
    promtool = _promtool()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rule_doc()["spec"]), encoding="utf-8")
    shutil.copy(RULES_TEST, tmp_path / "test.yaml")
    proc = _run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_service_monitor_scrapes_the_service_as_job_remediator() -> None:
    monitor = yaml.safe_load(SERVICE_MONITOR.read_text(encoding="utf-8"))
    service = yaml.safe_load(
        (DEPLOY / "kustomize" / "base" / "service.yaml").read_text(encoding="utf-8"))
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert "jobLabel" not in spec, "job must stay the Service name, which the alerts use"
    assert service["metadata"]["name"] == "remediator"
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"


# ---------------------------------------------------------------------------
# Grafana
# ---------------------------------------------------------------------------

def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    exprs = [(f"panel {p['title']!r}", t["expr"])
             for p in _panels(dashboard) for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            exprs.append((f"variable {var['name']}", query))
    return exprs


def test_dashboard_structure() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "remediator"
    assert dashboard["title"]
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(pos["x"] + dx, pos["y"] + dy)
                for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not (cells & mine), f"panel {panel['title']!r} overlaps another"
        cells |= mine
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_dashboard_uses_only_exported_metrics_and_shows_them_all() -> None:
    seen: set[str] = set()
    for where, expr in _dashboard_exprs(_dashboard()):
        seen |= _assert_known(expr, where)
    families = {n.rsplit("_", 1)[0] if n.endswith(("_total", "_bucket")) else n for n in seen}
    for family in Metrics(CollectorRegistry()).registry.collect():
        assert family.name in families, f"the dashboard does not show {family.name}"


def test_promtool_parses_every_dashboard_expression(tmp_path: Path) -> None:
    promtool = _promtool()
    rules = []
    for i, (_where, expr) in enumerate(_dashboard_exprs(_dashboard())):
        if expr.startswith("label_values("):
            continue  # Grafana syntax, not PromQL
        text = expr
        for var, value in GRAFANA_VARIABLES.items():
            text = text.replace(var, value)
        assert "$" not in text, f"unhandled Grafana variable in {expr}"
        rules.append({"record": f"dashboard:expr_{i}:check", "expr": text})
    path = tmp_path / "dashboard_rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}),
                    encoding="utf-8")
    proc = _run([promtool, "check", "rules", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------
# Alertmanager
# ---------------------------------------------------------------------------

def _remediator_webhook(receivers: list[dict[str, Any]]) -> dict[str, Any]:
    receiver = next(r for r in receivers if r["name"] == "remediator")
    assert len(receiver["webhook_configs"]) == 1
    return receiver["webhook_configs"][0]


@pytest.mark.parametrize("path", [RECEIVER, ROUTING], ids=lambda p: p.name)
def test_receiver_posts_everything_to_remediator(path: Path) -> None:
    hook = _remediator_webhook(yaml.safe_load(path.read_text(encoding="utf-8"))["receivers"])
    assert hook["url"] == "http://remediator.remediator.svc:8080/api/v1/alerts"
    assert hook["send_resolved"] is True
    assert hook["max_alerts"] == 0
    auth = hook["http_config"]["authorization"]
    assert auth["credentials_file"].startswith("/etc/alertmanager/secrets/")
    assert "credentials" not in auth, "no inline secrets"


def test_routing_keeps_self_alerts_away_from_remediator() -> None:
    route = yaml.safe_load(ROUTING.read_text(encoding="utf-8"))["route"]
    receivers = [r["receiver"] for r in route["routes"]]
    self_route = next(r for r in route["routes"] if 'remediator_self="true"' in r["matchers"])
    assert self_route["receiver"] != "remediator"
    assert not self_route.get("continue"), "self-alerts must stop before the remediator route"
    assert receivers.index(self_route["receiver"]) < receivers.index("remediator")
    remediator_route = route["routes"][receivers.index("remediator")]
    assert remediator_route["continue"] is True, "humans still get the normal notification"


def _amtool() -> str:
    exe = shutil.which("amtool")
    if exe is None:
        pytest.skip("amtool is not installed")
    return exe


def test_amtool_accepts_the_routing_example() -> None:
    proc = _run([_amtool(), "check-config", str(ROUTING)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_amtool_accepts_the_receiver_snippet(tmp_path: Path) -> None:
    snippet = yaml.safe_load(RECEIVER.read_text(encoding="utf-8"))
    config = {"route": {"receiver": "remediator"}, **snippet}
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    proc = _run([_amtool(), "check-config", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
