"""``remediator diagnose NAMESPACE/KIND/NAME`` against the simulator (read-only), and
the incident story's findings section."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from remediator.cli import main
from remediator.cli_views import incident_story
from remediator.simulator import Simulator


async def test_diagnose_prints_findings_and_writes_nothing(
        sim: Simulator, tmp_path: Path, control: aiohttp.ClientSession,
        capsys: pytest.CaptureFixture[str]) -> None:
    async with control.post("/sim/v1/pod-states", json={
            "image": "example/api:1.2.0", "state": "CrashLoopBackOff", "exit_code": 4,
            "log": "boom: disk full"}) as r:
        assert r.status == 201
    kubeconfig = sim.write_kubeconfig(str(tmp_path / "kubeconfig"))
    sim.control.calls.clear()
    rc = await asyncio.to_thread(main, ["diagnose", "prod/Deployment/api",
                                        "--kubeconfig", kubeconfig])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.startswith("findings (Deployment prod/api, now):\n")
    assert ("in CrashLoopBackOff: exit code 4 (Error), 361 restarts; "
            "last log line: 'boom: disk full'") in out
    assert "evidence: Pod prod/api-" in out
    assert "has 0 of 3 replicas ready" in out
    assert sim.control.writes() == []                       # read-only
    rc = await asyncio.to_thread(main, ["diagnose", "prod/Deployment/api", "--kubeconfig",
                                        kubeconfig, "--output", "json"])
    record = json.loads(capsys.readouterr().out)
    assert {f["kind"] for f in record["findings"]} == {"crash_loop", "replicas_below_desired"}


@pytest.mark.parametrize(("target", "says"), [
    ("prod/api", "give NAMESPACE/KIND/NAME"),
    ("prod/Service/api", "kind 'Service': one of Deployment"),
])
def test_diagnose_bad_target_says_why(target: str, says: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", target]) == 2
    assert says in capsys.readouterr().err


def test_story_shows_findings_with_ids_and_evidence() -> None:
    inc = {"id": "inc-1", "state": "recovered", "playbook": "p", "created_at":
           "2026-08-01T10:00:00+00:00", "target": None,
           "context": {"diagnosis": {"moment": "incident opened", "problems": [
               "could not read Node node-1: HTTP 403"], "findings": [
               {"id": "recent_rollout:api-4", "kind": "recent_rollout",
                "summary": "rollout of api: image a:1 → a:2", "evidence": [
                    "ReplicaSet prod/api-3", "ReplicaSet prod/api-4"]}]}}}
    story = incident_story(inc, datetime(2026, 8, 1, 10, 5, tzinfo=UTC))
    assert "findings (incident opened):\n  [recent_rollout:api-4] rollout of api: image " \
           "a:1 → a:2\n      evidence: ReplicaSet prod/api-3, ReplicaSet prod/api-4\n" \
           "  (not read: could not read Node node-1: HTTP 403)" in story
