"""The shipped playbooks in ``playbooks/``: they load, route the alerts they are written
for (and not their siblings'), render valid targets and templates, and refuse
label values that are not Kubernetes names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from remediator.engine.routing import render_target, select_playbooks, template_context
from remediator.errors import TemplateError
from remediator.loader import load, load_paths
from remediator.model.incident import TargetRef
from remediator.model.names import check_dns1123_label, check_dns1123_subdomain
from remediator.model.playbook import Playbook
from remediator.templating import render_value

PLAYBOOKS = Path(__file__).resolve().parent.parent / "playbooks"
FILES = sorted(PLAYBOOKS.glob("*.yaml"))

# A firing alert each playbook is written for (labels as kube-prometheus-stack
# or the service's own rules produce them) → (playbook, expected target).
SAMPLES: list[tuple[dict[str, str], str, TargetRef | None]] = [
    ({"alertname": "HighErrorRate", "severity": "critical", "namespace": "shop",
      "deployment": "checkout", "job": "checkout"},
     "api-error-rate", TargetRef(kind="Deployment", namespace="shop", name="checkout")),
    ({"alertname": "KubePodCrashLooping", "severity": "warning", "namespace": "shop",
      "pod": "checkout-7d9c8b6f5-x2x4q", "container": "app", "deployment": "checkout",
      "job": "kube-state-metrics", "reason": "CrashLoopBackOff"},
     "crashloop-restart", TargetRef(kind="Deployment", namespace="shop", name="checkout")),
    ({"alertname": "KubePodCrashLooping", "severity": "warning", "namespace": "shop",
      "pod": "checkout-7d9c8b6f5-x2x4q", "container": "app", "job": "kube-state-metrics",
      "reason": "CrashLoopBackOff"},
     "crashloop-delete-pod",
     TargetRef(kind="Pod", namespace="shop", name="checkout-7d9c8b6f5-x2x4q")),
    ({"alertname": "KubeDeploymentReplicasMismatch", "severity": "warning",
      "namespace": "payments", "deployment": "ledger", "job": "kube-state-metrics"},
     "replicas-mismatch", TargetRef(kind="Deployment", namespace="payments", name="ledger")),
    ({"alertname": "HighLatencyP99", "severity": "warning", "namespace": "shop",
      "deployment": "search"},
     "latency-scale-out", TargetRef(kind="Deployment", namespace="shop", name="search")),
    ({"alertname": "NodeFilesystemSpaceFillingUp", "severity": "critical",
      "instance": "10.0.3.14:9100", "device": "/dev/nvme0n1p1", "mountpoint": "/var",
      "fstype": "ext4", "job": "node-exporter"},
     "disk-space-jira", None),
    ({"alertname": "NodeFilesystemAlmostOutOfSpace", "severity": "warning",
      "instance": "10.0.3.15:9100", "mountpoint": "/"},
     "disk-space-jira", None),
    ({"alertname": "KubePodStuckTerminating", "severity": "warning", "namespace": "batch",
      "pod": "report-28391-abcde"},
     "pod-stuck-terminating",
     TargetRef(kind="Pod", namespace="batch", name="report-28391-abcde")),
    ({"alertname": "KubeNodePressure", "severity": "info", "node": "worker-3",
      "condition": "MemoryPressure", "job": "kube-state-metrics"},
     "node-pressure-drain", TargetRef(kind="Node", namespace="", name="worker-3")),
    ({"alertname": "NodeCordonedButHealthy", "severity": "info", "node": "worker-3"},
     "node-uncordon", TargetRef(kind="Node", namespace="", name="worker-3")),
    ({"alertname": "PodUnexpectedEgress", "severity": "critical", "namespace": "shop",
      "deployment": "checkout", "pod": "checkout-7d9c8b6f5-x2x4q"},
     "pod-quarantine", TargetRef(kind="Deployment", namespace="shop", name="checkout")),
    ({"alertname": "KubeStatefulSetUpdateNotRolledOut", "severity": "warning",
      "namespace": "data", "statefulset": "postgres", "cluster": "eu-west",
      "job": "kube-state-metrics"},
     "statefulset-rollback",
     TargetRef(kind="StatefulSet", namespace="data", name="postgres", cluster="eu-west")),
]

# Alerts no shipped playbook may act on.
UNMATCHED: list[dict[str, str]] = [
    {"alertname": "HighErrorRate", "severity": "warning", "namespace": "shop",
     "deployment": "checkout"},                                  # not critical
    {"alertname": "HighErrorRate", "severity": "critical", "namespace": "kube-system",
     "deployment": "coredns"},                                   # kube-* namespace
    {"alertname": "KubePodCrashLooping", "namespace": "kube-system",
     "pod": "kube-proxy-abcde"},                                 # kube-* namespace
    {"alertname": "Watchdog", "severity": "none"},
]


@pytest.fixture(scope="module")
def playbooks() -> list[Playbook]:
    return load_paths([PLAYBOOKS])


def alert_for(labels: dict[str, str]) -> dict[str, Any]:
    return {"status": "firing", "labels": labels,
            "annotations": {"summary": f"{labels['alertname']} is firing"},
            "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "0123456789abcdef"}


def context_for(labels: dict[str, str], target: TargetRef | None = None) -> dict[str, Any]:
    alert = alert_for(labels)
    return template_context(labels, alert["annotations"], alert,
                            incident={"id": "inc-1", "key": "k"}, target=target)


def test_there_are_at_least_six_playbooks() -> None:
    assert len(FILES) >= 6


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_each_file_loads_and_is_documented(path: Path) -> None:
    [pb] = load(path.read_text(), source=str(path))
    assert pb.name == path.stem, "one playbook per file, named after the file"
    assert len(pb.metadata.description.split()) >= 20, "explain when it fires and why"
    assert pb.spec.notify.slack is not None
    assert pb.spec.notify.slack.channel.startswith("#")
    assert pb.spec.guards.cooldown > 0
    assert pb.spec.guards.max_runs_per_hour is not None
    assert pb.spec.escalate, "every ladder ends with a human"
    assert not pb.spec.guards.dry_run


def test_every_playbook_has_a_sample(playbooks: list[Playbook]) -> None:
    assert {pb.name for pb in playbooks} == {name for _, name, _ in SAMPLES}


@pytest.mark.parametrize(("labels", "name", "target"), SAMPLES,
                         ids=[f"{n}-{i}" for i, (_, n, _) in enumerate(SAMPLES)])
def test_sample_alert_routes_and_renders(playbooks: list[Playbook], labels: dict[str, str],
                                         name: str, target: TargetRef | None) -> None:
    chosen = select_playbooks(playbooks, labels)
    assert [pb.name for pb in chosen] == [name]
    [pb] = chosen
    rendered = render_target(pb, context_for(labels))
    assert rendered == target
    if rendered is not None and rendered.kind != "Node":      # a Node has no namespace
        check_dns1123_label(rendered.namespace)
        check_dns1123_subdomain(rendered.name)


@pytest.mark.parametrize(("labels", "name", "target"), SAMPLES,
                         ids=[f"{n}-{i}" for i, (_, n, _) in enumerate(SAMPLES)])
def test_every_template_renders_for_the_sample(playbooks: list[Playbook],
                                               labels: dict[str, str], name: str,
                                               target: TargetRef | None) -> None:
    # What the runner renders at 3 a.m.: step params, PromQL and escalation params.
    [pb] = [p for p in playbooks if p.name == name]
    ctx = context_for(labels, target)
    for step in pb.spec.steps:
        params = render_value(step.params, ctx)
        assert "{{" not in str(params)
        if step.verify and step.verify.promql:
            promql = render_value(step.verify.promql, ctx)
            assert "{{" not in promql
            if target is not None:
                assert f'namespace="{target.namespace}"' in promql
                assert f'deployment="{target.name}"' in promql
    for esc in pb.spec.escalate:
        params = render_value(esc.params, ctx)
        assert "{{" not in str(params)


def test_api_error_rate_promql(playbooks: list[Playbook]) -> None:
    [pb] = [p for p in playbooks if p.name == "api-error-rate"]
    target = TargetRef(kind="Deployment", namespace="shop", name="checkout")
    ctx = context_for(SAMPLES[0][0], target)
    restart = pb.spec.steps[0]
    assert restart.verify is not None
    assert restart.verify.promql is not None
    assert render_value(restart.verify.promql, ctx) == (
        'deployment:http_errors:ratio_rate1m{namespace="shop",deployment="checkout"} < 0.05')
    assert restart.verify.hold_for < restart.verify.timeout
    assert [s.action for s in pb.spec.steps] == [
        "kubernetes.restart", "kubernetes.scale", "kubernetes.rollback"]
    assert pb.spec.steps[1].params == {"factor": 2, "max_replicas": 20}
    assert pb.spec.steps[2].approval is not None
    assert [e.action for e in pb.spec.escalate] == ["jira.incident", "slack.page"]


def test_disk_space_priority_follows_severity(playbooks: list[Playbook]) -> None:
    [pb] = [p for p in playbooks if p.name == "disk-space-jira"]
    assert pb.spec.steps == []
    jira = pb.spec.escalate[0]
    for severity, priority in (("critical", "High"), ("warning", "Medium")):
        labels = {**SAMPLES[5][0], "severity": severity}
        assert render_value(jira.params, context_for(labels))["priority"] == priority


@pytest.mark.parametrize("labels", UNMATCHED, ids=lambda labels: labels["alertname"])
def test_alerts_no_playbook_acts_on(playbooks: list[Playbook], labels: dict[str, str]) -> None:
    assert select_playbooks(playbooks, labels) == []


@pytest.mark.parametrize("bad", ["../../x", "checkout/../../secrets", "Checkout", "a b",
                                 "", "-x", "x" * 254, "{{ labels.namespace }}"])
def test_unsafe_deployment_label_is_refused(playbooks: list[Playbook], bad: str) -> None:
    labels = {**SAMPLES[0][0], "deployment": bad}
    [pb] = [p for p in playbooks if p.name == "api-error-rate"]
    with pytest.raises(TemplateError, match="DNS-1123"):
        render_target(pb, context_for(labels))


def test_unsafe_namespace_label_is_refused(playbooks: list[Playbook]) -> None:
    labels = {**SAMPLES[3][0], "namespace": "../../etc"}
    [pb] = [p for p in playbooks if p.name == "replicas-mismatch"]
    with pytest.raises(TemplateError, match="not a valid DNS-1123 label"):
        render_target(pb, context_for(labels))


def test_missing_label_is_a_template_error(playbooks: list[Playbook]) -> None:
    # replicas-mismatch does not require the label in its matchers: rendering names it.
    labels = {k: v for k, v in SAMPLES[3][0].items() if k != "deployment"}
    [pb] = [p for p in playbooks if p.name == "replicas-mismatch"]
    assert select_playbooks([pb], labels) == [pb]
    with pytest.raises(TemplateError, match="label 'deployment' is not set on the alert"):
        render_target(pb, context_for(labels))
