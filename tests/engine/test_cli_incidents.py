"""``remediator incidents`` against a running daemon's API (the rig's real HTTP server):
a table for people, one incident's story, filters, JSON, --watch, one-line errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from remediator.cli import main

from .rig import TOKEN, Rig, alert, ladder_playbook


async def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_incidents_for_people(rig: Rig, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    rig.metrics.holding = {"step1_ok"}
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    assert rig.client is not None
    url = str(rig.client.make_url("/")).rstrip("/")
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    base = ("incidents", "--url", url, "--token-file", str(token))

    code, out, _ = await run(capsys, *base)
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:6] == ["ID", "STATE", "PLAYBOOK", "TARGET", "AGE", "ALERTS"]
    assert row.split()[:5] == [inc.id, "recovered", "ladder", "Deployment", "prod/api"]
    assert "recovered at step 'restart'" in row
    assert "\x1b[" not in out                          # not a terminal: no colour

    for extra in (("--state", "escalated"), ("--playbook", "other")):
        code, out, _ = await run(capsys, *base, *extra)
        assert (code, out.strip()) == (0, "no incidents")

    code, out, _ = await run(capsys, *base, inc.id)
    assert code == 0
    assert out.startswith(f"incident {inc.id}  recovered  playbook ladder  Deployment prod/api")
    assert "restart (kubernetes.restart): succeeded" in out
    assert "timeline:" in out
    assert "+0s" in out or "+" in out.split("timeline:")[1]

    code, out, _ = await run(capsys, *base, "--output", "json")
    assert [i["id"] for i in json.loads(out)] == [inc.id]

    code, out, _ = await run(capsys, *base, "--watch", "--interval", "0", "--iterations", "2")
    assert code == 0
    assert out.count("ID  ") == 2

    code, out, err = await run(capsys, "incidents", "--url", "http://127.0.0.1:9")
    assert code == 1
    assert err.count("\n") == 1
    assert "cannot connect" in err
