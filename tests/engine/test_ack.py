"""Acknowledge and release through the API (operator role) and the CLI: an ack is
journaled with who and when (MTTA), stops the paging, and keeps automation off the
target until the incident is resolved or released; a hold survives a restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from remediator.cli import main
from remediator.model.incident import IncidentState, IncidentView, StepStatus
from remediator.server.http import ServerConfig

from .rig import TOKEN, Rig, alert, resolved
from .test_cli_approvals import OPERATOR, USERS, VIEWER, approval_playbook, awaiting

OP = {"Authorization": f"Bearer {OPERATOR}"}


async def call(rig: Rig, path: str, headers: dict[str, str] | None = None
               ) -> tuple[int, dict[str, Any]]:
    assert rig.client is not None
    resp = await rig.client.post(path, headers=OP if headers is None else headers)
    return resp.status, await resp.json()


def second_playbook(hook: str) -> str:
    """Another playbook on the same target (Deployment prod/api)."""
    return f"""
---
apiVersion: remediator/v1
kind: Playbook
metadata: {{name: other}}
spec:
  match: ['alertname="PodsCrashing"']
  target: {{kind: Deployment, namespace: "{{{{ labels.namespace }}}}",
           name: "{{{{ labels.deployment }}}}"}}
  steps:
    - name: restart
      action: kubernetes.restart
  escalate:
    - action: http.post
      with: {{url: "{hook}", json: {{other: true}}}}
"""


async def start(rig: Rig) -> str:
    rig.clock.auto_advance = False           # the approval waits until the test acts
    books = approval_playbook(rig.hooks.url) + second_playbook(rig.hooks.url)
    await rig.start(books, server_config=ServerConfig(bearer_token=TOKEN, users=USERS))
    return books


async def test_ack_stops_automation_on_the_target_until_released(rig: Rig) -> None:
    books = await start(rig)
    await rig.post([alert()])
    inc = await awaiting(rig)
    assert (await call(rig, f"/api/v1/incidents/{inc.id}/ack", {}))[0] == 401
    status, body = await call(rig, f"/api/v1/incidents/{inc.id}/ack",
                              {"Authorization": f"Bearer {VIEWER}"})
    assert status == 403, body
    status, body = await call(rig, f"/api/v1/incidents/{inc.id}/ack")
    assert status == 200, body
    assert body["acknowledged"] is True
    assert body["by"] == "alice"
    assert body["already"] is False
    assert body["mtta_seconds"] == pytest.approx(
        (rig.clock.now() - inc.first_alert_at).total_seconds())      # type: ignore[operator]
    again = (await call(rig, f"/api/v1/incidents/{inc.id}/ack"))[1]
    assert again["already"] is True
    assert again["by"] == "alice"
    # the approval comes too late: the step is refused, the incident handed over, unpaged
    approval = (await rig.only_incident()).context["approval"]["id"]
    assert (await call(rig, f"/api/v1/approvals/{approval}/approve"))[0] == 200
    rig.clock.auto_advance = True
    await rig.settle()
    done = await rig.only_incident()
    assert done.state == IncidentState.ESCALATED
    assert "in human hands" in done.summary
    assert "acknowledged by alice" in done.summary
    assert done.steps[0].status == StepStatus.SKIPPED
    assert rig.hooks.calls == []                     # no step ran, nobody paged again
    acks = [e for e in done.timeline if e.kind == "ack"]
    assert acks[0].data["by"] == "alice"
    assert acks[0].data["via"] == "api"
    assert done.context["ack"]["by"] == "alice"
    await held_after_restart_until_released(rig, books, inc.id)


async def held_after_restart_until_released(rig: Rig, books: str, acked: str) -> None:
    """Another playbook's incident on the same target: refused at start, after a restart;
    once released, the next one acts."""
    await rig.stop()
    await rig.start(books, server_config=ServerConfig(bearer_token=TOKEN, users=USERS))
    await rig.post([alert("PodsCrashing")])
    await rig.settle()
    other = await by_playbook(rig, "other")
    assert other.state == IncidentState.ESCALATED
    assert f"incident {acked} was acknowledged by alice" in other.summary
    assert rig.writes() == []
    # released: the next incident on the target is remediated again
    status, body = await call(rig, f"/api/v1/incidents/{acked}/release")
    assert status == 200, body
    assert body["released"] is True
    assert (await call(rig, f"/api/v1/incidents/{acked}/release"))[0] == 409
    await rig.post([resolved(alert("PodsCrashing"))])
    await rig.settle()
    await rig.post([alert("PodsCrashing", starts_at=rig.clock.now())])
    await rig.settle()
    third = [v for v in await rig.incidents() if v.playbook == "other" and v.id != other.id]
    assert third
    assert third[0].steps
    assert third[0].steps[0].status == StepStatus.SUCCEEDED
    assert rig.writes()


async def by_playbook(rig: Rig, name: str) -> IncidentView:
    views = [v for v in await rig.incidents() if v.playbook == name]
    assert len(views) == 1, views
    return views[0]


async def test_a_hold_ends_when_its_incident_closes(rig: Rig) -> None:
    await start(rig)
    await rig.post([alert()])
    inc = await awaiting(rig)
    assert (await call(rig, f"/api/v1/incidents/{inc.id}/ack"))[0] == 200
    rig.clock.auto_advance = True
    await rig.post([resolved(alert())])
    await rig.settle()
    closed = await rig.only_incident()
    assert closed.state.closed
    status, body = await call(rig, f"/api/v1/incidents/{closed.id}/ack")
    assert status == 409
    assert body["code"] == "closed"
    assert (await call(rig, "/api/v1/incidents/inc-nope/ack"))[0] == 404
    # the hold went with it: a new incident on the target acts
    await rig.post([alert("PodsCrashing", starts_at=rig.clock.now())])
    await rig.settle()
    other = await by_playbook(rig, "other")
    assert other.steps[0].status == StepStatus.SUCCEEDED, other.summary


async def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_cli_ack_and_release(rig: Rig, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    await start(rig)
    assert rig.client is not None
    url = str(rig.client.make_url("/")).rstrip("/")
    op, viewer = tmp_path / "op", tmp_path / "viewer"
    op.write_text(OPERATOR)
    viewer.write_text(VIEWER)
    await rig.post([alert()])
    inc = await awaiting(rig)
    code, _, err = await run(capsys, "ack", inc.id, "--url", url, "--token-file", str(viewer))
    assert code == 1
    assert "HTTP 403" in err
    assert err.count("\n") == 1
    code, out, err = await run(capsys, "ack", inc.id, "--url", url, "--token-file", str(op))
    assert code == 0, err
    assert out.startswith(f"{inc.id}: acknowledged by alice at ")
    code, out, err = await run(capsys, "release", inc.id, "--url", url, "--token-file", str(op))
    assert code == 0, err
    assert out.startswith(f"{inc.id}: released by alice at ")
    code, _, err = await run(capsys, "release", inc.id, "--url", url, "--token-file", str(op))
    assert code == 1
    assert "not acknowledged" in err
    code, _, err = await run(capsys, "ack", "inc-nope", "--url", url, "--token-file", str(op))
    assert (code, err) == (1, f"remediator ack: no incident 'inc-nope' at {url}\n")
    view = await rig.only_incident()
    assert [e.message.split(" (via")[0] for e in view.timeline if e.kind == "ack"] == [
        "acknowledged by alice", "released by alice"]
    assert view.context["ack"] is None
    assert view.context["released"]["by"] == "alice"
    assert json.dumps(view.context)          # the context stays JSON
