"""Evidence end to end, with the real Prometheus and Alertmanager: a rollout that cannot
be fixed escalates; the verification journaled the values the real Prometheus returned;
the fake Slack thread gets a PNG that decodes at the expected size and the collected
logs with the simulator's panic line; the fake Jira ticket gets the same attachments;
the graph route draws from Prometheus' query_range."""

from __future__ import annotations

import asyncio
import io
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image

from remediator.adapters.prometheus import PrometheusMetrics
from remediator.ports.graphs import HEIGHT, WIDTH
from remediator.simulator.logs import PANIC, SECRETS

from .harness import WEBHOOK_TOKEN, Stack, describe, wait_for
from .test_flows import _closed, _issues, _slack_roots, _steps

NS = "e2e-escalate"
LHS = f'deployment:http_errors:ratio_rate1m{{namespace="{NS}",deployment="api"}}'


def _png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


def test_an_escalation_carries_its_evidence(stack: Stack) -> None:
    for image in ("example/esc:1.0.0", "example/esc:2.0.0"):     # every revision is bad
        stack.bad_image(image)
    inc = stack.wait_incident(NS, _closed, 120, "closed")
    report = describe(inc)
    assert inc["state"] == "escalated", report
    restart = _steps(inc)["restart"]
    # the verification's polls hold what the real Prometheus answered
    assert restart["poll_count"] >= 2, report
    seen = [p["promql"] for p in restart["polls"] if p["promql"]]
    assert all(s["query"] == f"{LHS} < 0.05" for s in seen), report
    values = [float(v["value"]) for s in seen for v in s["lhs_samples"]]
    assert values, report
    assert all(v >= 0.05 for v in values), report
    assert "(needs < 0.05 for 5s; held 0s) — not verified after 12s" in restart["verify"]

    root = wait_for(lambda: _slack_roots(stack, "ops-alerts", NS), 20, f"the {NS} root")[0]
    slack = stack.fakes.slack

    def shared() -> list[Any] | None:
        files = stack.fakes.inspect(lambda: slack.thread_files(root.channel, root.ts))
        return files if len(files) >= 3 else None

    files = wait_for(shared, 30, "the graph and the logs in the Slack thread")
    pngs = [f for f in files if f.filename.endswith(".png")]
    [logs] = [f for f in files if f.filename.endswith("-logs.txt")]
    # the verification's value, and the alert's own expression (its generatorURL g0.expr)
    assert [p.title for p in pngs] == ["verification of step 1 (restart)",
                                       "the alert's expression"]
    assert all(_png_size(p.data) == (WIDTH, HEIGHT) for p in pngs)
    png = pngs[0]
    text = logs.data.decode()
    assert PANIC in text
    assert not any(secret in text for secret in SECRETS)

    issue = wait_for(lambda: _issues(stack, NS), 20, f"a Jira ticket for {NS}")[0]
    attached = wait_for(lambda: stack.fakes.inspect(
        lambda: {a.filename: a.data for a in issue.attachments}
        if len(issue.attachments) >= 3 else None), 30, "the Jira attachments")
    assert _png_size(attached[png.filename]) == (WIDTH, HEIGHT)
    assert PANIC in attached[logs.filename].decode()

    # the graph route, and the range query it is drawn from, on the real Prometheus
    req = urllib.request.Request(f"{stack.rem_url}/api/v1/incidents/{inc['id']}/graph.png",
                                 headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.headers["Content-Type"] == "image/png"
        assert _png_size(resp.read()) == (WIDTH, HEIGHT)
    now = datetime.now(UTC)
    matrix = asyncio.run(PrometheusMetrics(stack.prom_url).query_range(
        LHS, now - timedelta(minutes=5), now, 2.0))
    assert matrix
    assert len(matrix[0]["values"]) >= 2
