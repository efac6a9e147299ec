"""``remediator approve|reject ID`` and ``remediator fire FILE`` against a running daemon's
API (the rig's real HTTP server): an approval decided without Slack, by incident id or
approval id, and one-line errors (nothing pending, a role that may not, no daemon)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from remediator.cli import main
from remediator.model.incident import IncidentView
from remediator.server.auth import Credential
from remediator.server.http import ServerConfig

from .rig import Rig, alert

VIEWER, OPERATOR, WEBHOOK = "viewer-token-1", "operator-token-2", "webhook-token-3"
USERS = (Credential("grafana", "viewer", VIEWER), Credential("alice", "operator", OPERATOR),
         Credential("alertmanager", "webhook", WEBHOOK))


def approval_playbook(hook: str) -> str:
    return f"""
apiVersion: remediator/v1
kind: Playbook
metadata: {{name: gated}}
spec:
  match: ['alertname="HighErrorRate"']
  target: {{kind: Deployment, namespace: "{{{{ labels.namespace }}}}",
           name: "{{{{ labels.deployment }}}}"}}
  steps:
    - name: tell
      action: http.post
      with: {{url: "{hook}", json: {{step: tell}}}}
      approval: {{slack: {{channel: "#oncall"}}, ttl: 15m}}
  escalate:
    - action: http.post
      with: {{url: "{hook}", json: {{escalated: true}}}}
"""


async def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def awaiting(rig: Rig) -> IncidentView:
    for _ in range(200):
        views = await rig.incidents()
        if views and views[0].state == "awaiting_approval":
            return views[0]
        await asyncio.sleep(0.02)
    raise AssertionError([v.state for v in await rig.incidents()])


async def started(rig: Rig, tmp_path: Path) -> tuple[str, Path, Path]:
    rig.clock.auto_advance = False       # the approval waits until the test decides it
    await rig.start(approval_playbook(rig.hooks.url),
                    server_config=ServerConfig(users=USERS))
    assert rig.client is not None
    viewer, operator = tmp_path / "viewer", tmp_path / "operator"
    viewer.write_text(VIEWER + "\n")
    operator.write_text(OPERATOR + "\n")
    (tmp_path / "webhook").write_text(WEBHOOK)
    return str(rig.client.make_url("/")).rstrip("/"), viewer, operator


async def test_approve_by_incident_id(rig: Rig, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    url, viewer, operator = await started(rig, tmp_path)
    fire = tmp_path / "alert.json"
    fire.write_text(json.dumps({"labels": alert()["labels"]}))
    code, out, err = await run(capsys, "fire", str(fire), "--url", url,
                               "--token-file", str(tmp_path / "webhook"))
    assert code == 0, err
    assert out.startswith(f"posted 1 firing alert to {url}")
    inc = await awaiting(rig)
    approval = inc.context["approval"]["id"]

    code, out, err = await run(capsys, "approve", inc.id, "--url", url,
                               "--token-file", str(viewer))
    assert code == 1
    assert err.count("\n") == 1
    assert "HTTP 403" in err
    assert "may not" in err

    code, out, err = await run(capsys, "approve", inc.id, "--url", url,
                               "--token-file", str(operator))
    assert code == 0, err
    assert out.strip() == f"{approval}: approved by alice (api)"
    rig.clock.auto_advance = True
    await rig.settle()
    assert rig.hooks.calls[0] == {"step": "tell"}          # the approved step ran

    code, _, err = await run(capsys, "approve", inc.id, "--url", url,
                             "--token-file", str(operator))
    assert code == 1
    assert err.strip() == f"remediator approve: incident {inc.id} has no pending approval " \
                          f"(it is {(await rig.only_incident()).state})"


async def test_reject_by_approval_id_with_a_reason(rig: Rig, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    url, _, operator = await started(rig, tmp_path)
    fire = tmp_path / "alert.json"
    fire.write_text(json.dumps({"labels": alert()["labels"]}))
    assert (await run(capsys, "fire", str(fire), "--url", url, "--token-file",
                      str(tmp_path / "webhook")))[0] == 0
    inc = await awaiting(rig)
    approval = inc.context["approval"]["id"]
    code, out, err = await run(capsys, "reject", approval, "--reason", "change freeze",
                               "--url", url, "--token-file", str(operator))
    assert code == 0, err
    assert out.strip() == f"{approval}: rejected by alice (api): change freeze"
    rig.clock.auto_advance = True
    await rig.settle()
    done = await rig.only_incident()
    assert done.state == "escalated"
    assert rig.hooks.calls == [{"escalated": True}]
    code, _, err = await run(capsys, "reject", approval, "--url", url, "--token-file",
                             str(operator))
    assert code == 1
    assert "is no longer pending: This request was already answered." in err


async def test_one_line_errors(rig: Rig, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    url, _, operator = await started(rig, tmp_path)
    code, _, err = await run(capsys, "approve", "inc-nope", "--url", url, "--token-file",
                             str(operator))
    assert (code, err) == (1, f"remediator approve: no incident 'inc-nope' at {url}\n")
    code, _, err = await run(capsys, "reject", "apr-nope", "--url", url, "--token-file",
                             str(operator))
    assert (code, err) == (1, f"remediator reject: no approval 'apr-nope' at {url}\n")
    code, _, err = await run(capsys, "approve", "inc-x", "--url", url)
    assert code == 1
    assert err == (f"remediator approve: {url}: HTTP 401: this daemon requires a credential: "
                   "pass --token-file FILE\n")
    code, _, err = await run(capsys, "approve", "inc-x", "--url", "http://127.0.0.1:9")
    assert code == 1
    assert err.startswith("remediator approve: cannot connect to remediator at "
                          "http://127.0.0.1:9: ")
    assert err.count("\n") == 1
