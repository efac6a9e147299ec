"""What ``serve`` says at start: one line per playbook that needs what is not configured
(promql → Prometheus, cluster actions and rollout checks → Kubernetes, approvals and
slack.* → Slack, jira.incident → Jira); the simulator's kubeconfig and its cleanup."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.app import log_missing_needs
from remediator.engine.ports import Ports
from remediator.loader import load_paths, playbook_needs
from remediator.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent


def test_what_the_readme_playbook_needs() -> None:
    [pb] = load_paths([ROOT / "playbooks" / "api-error-rate.yaml"])
    assert playbook_needs(pb) == {
        "kubernetes": ["step 'restart'", "step 'scale out'", "step 'scale out' (rollout)",
                       "step 'roll back'", "step 'roll back' (rollout)"],
        "prometheus": ["step 'restart' (promql)", "step 'scale out' (promql)"],
        "slack": ["step 'roll back' (approval)", "escalation slack.page"],
        "jira": ["escalation jira.incident"]}


def test_one_warning_per_playbook_that_needs_what_is_missing(
        caplog: pytest.LogCaptureFixture) -> None:
    playbooks = load_paths([ROOT / "playbooks"])
    caplog.set_level("WARNING", logger="remediator")
    log_missing_needs(playbooks, Ports(cluster=object(), chat=object()))
    lines = {r.getMessage().split()[1]: r.getMessage() for r in caplog.records}
    assert len(caplog.records) == len(lines)                     # one line per playbook
    assert lines["api-error-rate"] == (
        "playbook api-error-rate needs what is not configured: prometheus (prometheus.url) "
        "for step 'restart' (promql), step 'scale out' (promql); jira (jira.url) for "
        "escalation jira.incident")
    assert "crashloop-restart" in lines                          # jira.incident
    caplog.clear()
    log_missing_needs(playbooks, Ports(cluster=object()))
    api = next(r.getMessage() for r in caplog.records if "api-error-rate" in r.getMessage())
    assert "slack (slack.token_file) for step 'roll back' (approval), escalation slack.page" \
        in api
    assert api.endswith("approve or reject with 'remediator approve|reject ID'")
    caplog.clear()
    log_missing_needs(playbooks, Ports(cluster=object(), chat=object(), metrics=object(),
                                       tickets=object()))
    assert caplog.records == []


async def test_the_simulator_removes_its_temporary_kubeconfig() -> None:
    sim = Simulator()
    await sim.start()
    path = Path(sim.write_temp_kubeconfig())
    assert path.name == "kubeconfig"
    assert path.parent.name.startswith("remediator-sim-")
    assert path.is_file()  # noqa: ASYNC240
    await sim.stop()
    assert not path.parent.exists()
