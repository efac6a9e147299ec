"""``remediator incidents`` against a running daemon's API (the rig's real HTTP server):
a table for people, one incident's story, filters, JSON, --watch, one-line errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from remediator.cli import main
from remediator.model.incident import TargetRef
from remediator.ports.store import AlertRecord, IngestItem, Routing

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


async def test_incidents_limit_and_all_follow_the_pages(rig: Rig, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    target = TargetRef(kind="Deployment", namespace="prod", name="api")
    for n in range(7):                  # incidents of a playbook nobody runs: they stay open
        fp = f"{n:016x}"
        await rig.store.ingest([IngestItem(
            AlertRecord(fp, rig.clock.now(), None, "firing", {"alertname": "A", "n": fp}, {}),
            (Routing("quiet", f"quiet/{n}", target),))], rig.clock.now())
    assert rig.client is not None
    url = str(rig.client.make_url("/")).rstrip("/")
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    base = ("incidents", "--url", url, "--token-file", str(token), "--playbook", "quiet")

    code, out, _ = await run(capsys, *base, "--limit", "3")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1 + 3 + 1
    assert lines[-1] == "(newest 3 shown; --all for every one)"
    code, out, _ = await run(capsys, *base, "--limit", "3", "--all", "--output", "json")
    rows = json.loads(out)
    assert len({r["id"] for r in rows}) == len(rows) == 7
    assert [r["created_at"] for r in rows] == sorted((r["created_at"] for r in rows),
                                                     reverse=True)
    assert {(r["alert_count"], r["firing_count"]) for r in rows} == {(1, 1)}
    assert "alerts" not in rows[0]
    code, out, _ = await run(capsys, *base, "--state", "open", "--all")
    assert len(out.strip().splitlines()) == 1 + 7


async def test_fire_finds_its_incident_and_firing_starts_through_the_full_views(
        rig: Rig) -> None:
    from datetime import datetime

    from remediator.cli_client import Client, _stamp, firing_starts, incident_of
    await rig.start(ladder_playbook(hook=rig.hooks.url))
    rig.metrics.holding = {"step1_ok"}
    await rig.post([alert()])
    await rig.settle()
    inc = await rig.only_incident()
    [held] = inc.alerts
    assert rig.client is not None
    client = Client(str(rig.client.make_url("/")).rstrip("/"), TOKEN)
    stamp = _stamp(datetime.fromisoformat(held["startsAt"].replace("Z", "+00:00")))
    payload = {"alerts": [{"fingerprint": held["fingerprint"], "startsAt": stamp}]}
    found = await asyncio.to_thread(incident_of, client, payload)
    assert found is not None
    assert found["id"] == inc.id
    assert await asyncio.to_thread(
        incident_of, client, {"alerts": [{"fingerprint": "0" * 16, "startsAt": stamp}]}) is None
    starts = await asyncio.to_thread(firing_starts, client, {held["fingerprint"]})
    assert held["status"] == "firing"
    assert starts == {held["fingerprint"]: stamp}
