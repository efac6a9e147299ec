"""End-to-end flows: simulator metrics → real Prometheus rules → real Alertmanager →
remediator → simulated cluster, fake Jira and fake Slack.

Each scenario owns one namespace of the simulated cluster (see ``harness.SEED``), so
they share one stack and do not see each other's alerts.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .harness import BAD_IMAGE, Stack, describe, http, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CLOSED = ("recovered", "resolved", "escalated")


def _closed(inc: dict[str, Any]) -> bool:
    return inc["state"] in CLOSED


def _steps(inc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in inc["steps"]}


def _slack_roots(stack: Stack, channel: str, needle: str) -> list[Any]:
    slack = stack.fakes.slack
    return stack.fakes.inspect(lambda: [
        m for m in slack.roots(channel)
        if needle in m.text or needle in json.dumps(m.blocks)])


def _text(message: Any) -> str:
    return f"{message.text} {json.dumps(message.blocks)}".lower()


def _issues(stack: Stack, needle: str) -> list[Any]:
    jira = stack.fakes.jira
    return stack.fakes.inspect(lambda: [i for i in jira.issues.values()
                                        if needle in i.fields.get("summary", "")])


def _rollbacks(writes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in writes if c["method"] == "PATCH" and isinstance(c["body"], list)
            and any(op.get("path") == "/spec/template" for op in c["body"])]


def test_webhook_without_the_bearer_token_is_refused(stack: Stack) -> None:
    status, _ = http("POST", stack.rem_url + "/api/v1/alerts",
                     {"version": "4", "status": "firing", "alerts": []})
    assert status == 401


def test_bad_rollout_is_rolled_back_and_closed_as_recovered(stack: Stack) -> None:
    ns = "e2e-rollback"
    started = time.monotonic()
    stack.set_image(ns, BAD_IMAGE)

    wait_for(lambda: stack.alert_state(ns) == "firing", 45, f"HighErrorRate firing on {ns}")
    stack.wait_incident(ns, lambda i: True, 20, "created from the webhook")
    inc = stack.wait_incident(ns, _closed, 120, "closed")
    report = describe(inc)
    steps = _steps(inc)

    assert inc["state"] == "recovered", report
    assert steps["open ticket"]["status"] == "succeeded", report
    assert steps["restart"]["status"] == "failed", report           # restart did not help
    assert steps["roll back"]["status"] == "succeeded", report       # the rollback did
    assert "resolved" in (steps["roll back"]["verify"] or ""), report

    # The cluster runs the last good template again, and saw exactly one rollback.
    image = stack.deployment(ns)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "example/api:1.2.0"
    writes = stack.writes(ns)
    assert len(_rollbacks(writes)) == 1, writes

    # Prometheus resolved the alert, Alertmanager sent the resolved notification (the
    # incident's alert is stored as resolved, with its endsAt) and no longer lists it.
    assert stack.alert_state(ns) is None
    alerts = [a for a in inc["alerts"] if a["labels"].get("alertname") == "HighErrorRate"]
    assert len(alerts) == 1, inc["alerts"]
    assert alerts[0]["status"] == "resolved", alerts
    assert not alerts[0]["endsAt"].startswith("0001"), alerts
    wait_for(lambda: not [a for a in stack.am_alerts(ns) if a["status"]["state"] == "active"],
             10, "Alertmanager to drop the resolved alert")

    # One ticket, transitioned on recovery; the Slack root message says "recovered".
    issues = wait_for(lambda: [i for i in _issues(stack, ns) if i.status == "Done"] or None,
                      20, f"the {ns} ticket to be transitioned to Done")
    assert len(_issues(stack, ns)) == 1, [i.key for i in _issues(stack, ns)]
    assert len(issues) == 1
    roots = wait_for(lambda: [m for m in _slack_roots(stack, "ops-alerts", ns)
                              if "recovered" in _text(m)], 20,
                     f"the {ns} Slack root message to show 'recovered'")
    assert len(_slack_roots(stack, "ops-alerts", ns)) == 1, "one root message per incident"
    assert roots[0].edits >= 1, "the root message is edited, not reposted"
    assert time.monotonic() - started < 120


def test_nothing_helps_escalates_to_jira_and_a_slack_page(stack: Stack) -> None:
    ns = "e2e-escalate"
    for image in ("example/esc:1.0.0", "example/esc:2.0.0"):   # every revision is bad
        stack.bad_image(image)

    inc = stack.wait_incident(ns, _closed, 120, "closed")
    report = describe(inc)
    steps = _steps(inc)
    assert inc["state"] == "escalated", report
    assert steps["restart"]["status"] == "failed", report
    assert steps["roll back"]["status"] == "failed", report
    assert stack.alert_state(ns) == "firing"

    issues = wait_for(lambda: _issues(stack, ns), 20, f"a Jira ticket for {ns}")
    assert len(issues) == 1, [i.key for i in issues]
    issue = issues[0]
    assert issue.status == "Open"
    description = issue.fields.get("description") or ""
    for needle in ("restart", "roll back", ns):
        assert needle in description, f"{needle!r} missing from the report:\n{description}"
    assert "e2e" in issue.fields["labels"]

    pages = wait_for(lambda: [m for m in stack.fakes.inspect(
        lambda: stack.fakes.slack.messages)
        if m.channel == stack.fakes.slack.channel_id("oncall")
        and "<!subteam^S0ONCALL>" in m.text and ns in _text(m)], 20,
        f"a Slack page in #oncall for {ns}")
    assert len(pages) == 1
    roots = wait_for(lambda: [m for m in _slack_roots(stack, "ops-alerts", ns)
                              if "escalated" in _text(m)], 20,
                     f"the {ns} Slack root message to show 'escalated'")
    assert len(roots) == 1

    # The same stuck rollout also trips the operators' replicas-mismatch rule
    # (kube-state-metrics gauges from the simulator), which no e2e playbook handles.
    wait_for(lambda: stack.query('ALERTS{alertname="KubeDeploymentReplicasMismatch",'
                                 f'namespace="{ns}",alertstate="firing"}}'), 40,
             f"KubeDeploymentReplicasMismatch firing on {ns}")


def test_escalation_keeps_every_ladder_reply_in_the_slack_thread(stack: Stack) -> None:
    """Escalation replies get their own thread slots (they once reused the ladder's
    step indices and overwrote the '1. restart' reply)."""
    ns = "e2e-escalate"                  # the incident of the previous scenario
    for image in ("example/esc:1.0.0", "example/esc:2.0.0"):
        stack.bad_image(image)           # idempotent: lets this test run on its own
    stack.wait_incident(ns, _closed, 120, "closed")
    root = wait_for(lambda: _slack_roots(stack, "ops-alerts", ns), 20, f"the {ns} root")[0]
    replies = wait_for(lambda: stack.fakes.inspect(
        lambda: stack.fakes.slack.replies(root.channel, root.ts)), 20, "thread replies")
    texts = [m.text for m in replies]
    for needle in ("restart (kubernetes.restart)", "roll back (kubernetes.rollback)",
                   "escalate:jira.incident", "escalate:slack.page"):
        assert any(needle in t for t in texts), f"{needle!r} not in the thread: {texts}"


def test_alert_resolving_during_verification_stops_the_ladder(stack: Stack) -> None:
    ns = "e2e-selfheal"
    stack.bad_image("example/heal:1.0.0")
    stack.wait_incident(ns, lambda i: _steps(i).get("restart", {}).get("status") == "verifying",
                        60, "the restart being verified")
    stack.bad_image("example/heal:1.0.0", bad=False)        # it heals by itself

    inc = stack.wait_incident(ns, _closed, 90, "closed")
    report = describe(inc)
    steps = _steps(inc)
    assert inc["state"] in ("recovered", "resolved"), report
    assert "resolved" in (steps["restart"]["verify"] or ""), report
    # Steps the ladder never reached have no record (or a skipped/pending one).
    assert steps.get("roll back", {}).get("status", "pending") in ("pending", "skipped"), report
    assert not _rollbacks(stack.writes(ns)), "the ladder went on after the alert resolved"
    assert stack.alert_state(ns) is None


def test_dry_run_goes_through_the_flow_without_a_single_write(stack: Stack) -> None:
    ns = "e2e-dry"
    for image in ("example/dry:1.0.0", "example/dry:2.0.0"):
        stack.bad_image(image)

    inc = stack.wait_incident(ns, _closed, 120, "closed", dry=True)
    report = describe(inc)
    assert inc["dry_run"] is True, report
    assert inc["state"] == "escalated", report
    ladder = [s for s in inc["steps"] if not s["action"].startswith("escalate:")]
    assert [s["name"] for s in ladder] == ["restart", "scale out", "roll back"], report
    assert all(s["status"] == "dry_run" for s in ladder), report
    assert all((s.get("result") or "").startswith("dry-run: would") for s in ladder), report

    assert stack.writes(ns) == [], "dry-run wrote to the cluster"
    assert not _issues(stack, ns), "dry-run opened a Jira ticket"
    assert stack.incident_for(ns) is None, "the normal daemon saw the dry-run namespace"
