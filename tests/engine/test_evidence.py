"""Explainable verification through the whole engine: every poll is journaled on the
step record (the rendered query, the values, what it needs, how long it held), the
API returns it, and the escalation and the CLI say it in words."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from remediator.adapters.graphs import MatplotlibRenderer
from remediator.cli import main
from remediator.cli_views import incident_story
from remediator.engine.graphs import incident_graphs
from remediator.engine.run import Run
from remediator.engine.verification import poll_phase
from remediator.errors import TemporaryError
from remediator.model.incident import IncidentState, IncidentView, TimelineEntry
from remediator.ports.graphs import HEIGHT, WIDTH
from remediator.rendering import incident_report, page_message, postmortem

from .rig import AUTH, TOKEN, Rig, alert, resolved

QUERY = 'deployment:http_errors:ratio_rate1m{deployment="api"} < 0.05'
LHS = 'deployment:http_errors:ratio_rate1m{deployment="api"}'
WORDS = "error ratio 0.12 (needs < 0.05 for 2m; held 0s) — not verified after 10m"


def playbook(hook: str) -> str:
    return f"""
apiVersion: remediator/v1
kind: Playbook
metadata: {{name: evidence}}
spec:
  match: ['alertname="HighErrorRate"']
  target: {{kind: Deployment, namespace: "{{{{ labels.namespace }}}}",
           name: "{{{{ labels.deployment }}}}"}}
  steps:
    - name: restart
      action: kubernetes.restart
      verify:
        promql: 'deployment:http_errors:ratio_rate1m{{deployment="{{{{ target.name }}}}"}} < 0.05'
        name: error ratio
        for: 2m
        timeout: 10m
        interval: 1m
  escalate:
    - action: http.post
      with: {{url: "{hook}", json: {{incident: "{{{{ incident.id }}}}"}}}}
"""


class RatioMetrics:
    """Prometheus answering like a real one: the filter drops the series at 0.12."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.queries: list[str] = []
        self.ranges: list[tuple[str, datetime, datetime, float]] = []

    async def query_range(self, promql: str, start: datetime, end: datetime,
                          step: float) -> list[dict[str, Any]]:
        self.ranges.append((promql, start, end, step))
        if self.down:
            raise TemporaryError("Prometheus query failed: connection refused")
        n = int((end - start).total_seconds() // step)
        return [{"metric": {"deployment": "api"},
                 "values": [[start.timestamp() + i * step, "0.12"] for i in range(n)]}]

    async def query(self, promql: str, *, max_age: float | None = None
                    ) -> list[dict[str, Any]]:
        self.queries.append(promql)
        if self.down:
            raise TemporaryError("Prometheus query failed: connection refused")
        if promql == LHS:
            return [{"metric": {"deployment": "api"}, "value": [0, "0.12"]}]
        return []


def poll_count(inc: IncidentView) -> int:
    """The polls of the playbook's 10 m verification every minute: at once, every minute
    on the incident's phase, and at the timeout."""
    phase = poll_phase(f"{inc.id}/0")
    return 2 + sum(1 for k in range(1, 11) if (k + phase) * 60 < 600)


async def test_an_escalation_says_what_verification_saw(rig: Rig) -> None:
    rig.metrics = RatioMetrics()      # type: ignore[assignment]
    await rig.start(playbook(rig.hooks.url))
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert inc.state == IncidentState.ESCALATED
    step = inc.steps[0]
    assert step.verify == WORDS
    polls = poll_count(inc)
    assert step.poll_count == len(step.polls) == polls
    poll = step.polls[0]
    assert poll.verdict == "not_met"
    assert poll.held_for == 0
    assert poll.needs_for == 120
    assert poll.promql is not None
    assert poll.promql.query == QUERY
    assert poll.promql.lhs == LHS
    assert poll.promql.lhs_samples[0].value == "0.12"
    assert poll.promql.lhs_samples[0].labels == {"deployment": "api"}
    assert [p.at for p in step.polls] == sorted(p.at for p in step.polls)

    # the API: in the incident, and on its own route
    assert rig.client is not None
    resp = await rig.client.get(f"/api/v1/incidents/{inc.id}", headers=AUTH)
    body = await resp.json()
    assert body["steps"][0]["polls"][0]["promql"]["lhs_samples"][0]["value"] == "0.12"
    resp = await rig.client.get(f"/api/v1/incidents/{inc.id}/evidence", headers=AUTH)
    evidence = await resp.json()
    assert resp.status == 200
    [verification] = evidence["verification"]
    assert verification["summary"] == WORDS
    assert verification["poll_count"] == polls
    assert verification["polls"][-1]["text"] == "error ratio 0.12 (needs < 0.05 for 2m; " \
                                                "held 0s)"
    resp = await rig.client.get("/api/v1/incidents/nope/evidence", headers=AUTH)
    assert resp.status == 404
    resp = await rig.client.get(f"/api/v1/incidents/{inc.id}/evidence")
    assert resp.status == 401

    # in words: the page, the Jira report and the CLI's story
    text, _ = page_message(inc, "@oncall")
    assert WORDS.replace("<", "&lt;") in text                  # Slack's escaping
    assert WORDS in incident_report(inc)
    assert WORDS in incident_story(body, datetime.now(UTC))


async def test_a_verifying_run_holds_its_latest_poll_only(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """5,000 incidents verifying must not each hold 30 polls: between polls the run's
    step record keeps the latest one (and the count); the store has the first and the
    latest POLLS_KEPT - 1 and gives them back on read."""
    rig.metrics = RatioMetrics()      # type: ignore[assignment]
    held: list[tuple[int, int]] = []
    real_sleep = Run._sleep_or_wake

    async def sleep(self: Run, seconds: float) -> None:
        held.extend((len(s.polls), s.poll_count) for s in self.view.steps if s.poll_count)
        await real_sleep(self, seconds)
    monkeypatch.setattr(Run, "_sleep_or_wake", sleep)
    await rig.start(playbook(rig.hooks.url))
    await rig.post([alert()])
    await rig.settle()
    monkeypatch.undo()
    inc = await rig.only_incident()
    assert max(count for _, count in held) >= poll_count(inc) - 1
    assert {kept for kept, _ in held} == {1}
    step = inc.steps[0]
    assert step.poll_count == len(step.polls) == poll_count(inc) > 2
    assert step.polls[0].at < step.polls[1].at


async def test_prometheus_down_is_journaled_as_such(rig: Rig) -> None:
    rig.metrics = RatioMetrics(down=True)      # type: ignore[assignment]
    await rig.start(playbook(rig.hooks.url))
    await rig.post([alert()])
    await rig.settle()
    step = (await rig.only_incident()).steps[0]
    assert {p.verdict for p in step.polls} == {"unavailable"}
    assert all(p.promql is not None and p.promql.samples == [] and p.promql.lhs_samples == []
               for p in step.polls)
    assert step.verify == ("error ratio: Prometheus unavailable, no value (Prometheus query "
                           "failed: connection refused) — not verified after 10m")


def _png_size(png: bytes) -> tuple[int, int]:
    from PIL import Image
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
        return image.size


async def test_the_graph_of_an_incident(rig: Rig) -> None:
    metrics = RatioMetrics()
    rig.metrics = metrics      # type: ignore[assignment]
    await rig.start(playbook(rig.hooks.url))
    a = alert()
    a["generatorURL"] = ("http://prom:9090/graph?g0.expr=" + quote(
        'deployment:http_errors:ratio_rate1m{deployment="api"} > 0.05') + "&g0.tab=1")
    await rig.post([a])
    await rig.settle()
    inc = await rig.only_incident()
    assert rig.client is not None
    resp = await rig.client.get(f"/api/v1/incidents/{inc.id}/graph.png", headers=AUTH)
    assert resp.status == 200
    assert resp.content_type == "image/png"
    assert _png_size(await resp.read()) == (WIDTH, HEIGHT)
    # the verification's value over [first alert − 30m, now]
    [(_, start, end, step)] = [r for r in metrics.ranges if r[0] == LHS]
    assert start == inc.first_alert_at - timedelta(minutes=30)
    assert end == rig.clock.now()
    assert step >= 15
    resp = await rig.client.get(f"/api/v1/incidents/{inc.id}/graph.png?of=alert",
                                headers=AUTH)
    assert resp.status == 200
    assert metrics.ranges[-1][0] == ('deployment:http_errors:ratio_rate1m{deployment="api"} '
                                     '> 0.05')
    resp = await rig.client.get(f"/api/v1/incidents/{inc.id}/graph.png?of=x", headers=AUTH)
    assert resp.status == 400
    resp = await rig.client.get(f"/api/v1/incidents/{inc.id}/graph.png")
    assert resp.status == 401

    specs = await incident_graphs(inc, metrics, rig.clock.now())
    assert [g.threshold for g in specs] == [0.05, None]
    assert [m[1] for m in specs[0].marks] == ["1. restart"]
    assert specs[0].series[0].label == "deployment=api"


async def test_without_prometheus_the_graph_draws_the_journaled_polls(rig: Rig) -> None:
    rig.metrics = RatioMetrics()      # type: ignore[assignment]
    await rig.start(playbook(rig.hooks.url))
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    down = RatioMetrics(down=True)
    [spec] = await incident_graphs(inc, down, rig.clock.now())     # no g0.expr: one graph
    assert "the journaled values" in spec.note
    assert [v for _, v in spec.series[0].points] == [0.12] * poll_count(inc)   # one a poll
    [spec] = await incident_graphs(inc, None, rig.clock.now())
    assert spec.note.startswith("Prometheus not configured")
    renderer = MatplotlibRenderer()
    try:
        assert _png_size(await renderer.render(spec)) == (WIDTH, HEIGHT)
    finally:
        await renderer.close()


async def test_a_postmortem_draft(rig: Rig, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    rig.metrics = RatioMetrics()      # type: ignore[assignment]
    await rig.start(playbook(rig.hooks.url))
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert rig.client is not None
    resp = await rig.client.get(f"/api/v1/incidents/{inc.id}/postmortem", headers=AUTH)
    assert resp.status == 200
    assert resp.content_type == "text/markdown"
    text = await resp.text()
    for needle in ("# Postmortem (draft): HighErrorRate on Deployment prod/api",
                   "## Summary", "## Impact", "- Alerts: 1 (HighErrorRate); 1 still firing",
                   "- MTTD (first alert → incident opened): 1m00s",
                   "- MTTR (first alert → resolved): not resolved yet",
                   "## Timeline", "## What was tried",
                   "1. **restart** (`kubernetes.restart`): failed",
                   f"   - verification: {WORDS}",
                   f"   - {poll_count(inc)} polls; the last: error ratio 0.12",
                   "## Evidence", f"/api/v1/incidents/{inc.id}/graph.png",
                   "## Contributing factors", "## Action items", "- [ ] _To be written._"):
        assert needle in text, f"{needle!r} not in:\n{text}"
    assert "MTTA" not in text                      # no human acted
    resp = await rig.client.get("/api/v1/incidents/nope/postmortem", headers=AUTH)
    assert resp.status == 404

    # resolved: the MTTR is there
    await rig.post([resolved(alert())])
    await rig.settle()
    resp = await rig.client.get(f"/api/v1/incidents/{inc.id}/postmortem", headers=AUTH)
    assert "- MTTR (first alert → resolved): 1" in await resp.text()

    # the CLI prints it, or writes it to a file
    token = tmp_path / "token"
    token.write_text(TOKEN)
    url = str(rig.client.make_url("/")).rstrip("/")
    code = await asyncio.to_thread(main, ["postmortem", inc.id, "--url", url,
                                          "--token-file", str(token)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.startswith("# Postmortem (draft)")
    assert WORDS in out.out
    target = tmp_path / "pm.md"
    code = await asyncio.to_thread(main, ["postmortem", inc.id, "--url", url, "--token-file",
                                          str(token), "--output", str(target)])
    assert code == 0
    assert target.read_text().startswith("# Postmortem (draft)")
    code = await asyncio.to_thread(main, ["postmortem", "nope", "--url", url,
                                          "--token-file", str(token)])
    assert code == 1
    assert "no incident 'nope'" in capsys.readouterr().err


def test_mtta_is_the_first_human_decision() -> None:
    t0 = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)
    view = IncidentView(id="inc-1", key="k", playbook="pb", target=None,
                        state=IncidentState.RECOVERED, created_at=t0 + timedelta(seconds=30),
                        updated_at=t0, first_alert_at=t0,
                        closed_at=t0 + timedelta(minutes=9), timeline=[
                            TimelineEntry(at=t0 + timedelta(minutes=1), kind="approval",
                                          message="step 'x' waits for approval"),
                            TimelineEntry(at=t0 + timedelta(minutes=4), kind="approval",
                                          message="step 'x' approved by alice",
                                          data={"by": "alice (U0ALICE)"})])
    text = postmortem(view)
    assert "- MTTD (first alert → incident opened): 30s" in text
    assert "- MTTA (first alert → first human ack or decision): 4m00s" in text
    assert "- MTTR (first alert → resolved): 9m00s" in text
    # an acknowledgement (the handoff's timeline entry) before it counts first
    view.timeline.insert(1, TimelineEntry(at=t0 + timedelta(minutes=2), kind="ack",
                                          message="acknowledged by bob",
                                          data={"by": "bob", "mtta_seconds": 120.0}))
    assert "- MTTA (first alert → first human ack or decision): 2m00s" in postmortem(view)
