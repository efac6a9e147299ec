"""``/playbooks`` shows what ``remediator check`` reports for the daemon's playbook
paths, read from disk at page time (the daemon loads them only at start, and refuses to
start when one fails: so what can fail is a file edited since)."""

from __future__ import annotations

import html
import os
from pathlib import Path

import pytest

from remediator.cli import main as cli
from remediator.console.checks import PlaybookCheck

from .conftest import PLAYBOOK, VIEWER, Make

BROKEN = PLAYBOOK.replace("action: wait,", "action: no_such_action,").replace(
    "cooldown", "x")
SECOND = PLAYBOOK.replace("{name: waits}", "{name: waits-too}")


def check_output(capsys: pytest.CaptureFixture[str], path: Path) -> list[str]:
    """The problem lines ``remediator check PATH`` prints."""
    cli(["check", str(path)])
    out = capsys.readouterr().out
    return [line for line in out.splitlines() if line and not line.startswith("OK")]


def touch(path: Path, text: str) -> None:
    """Write and move the mtime on (a rewrite within the same tick changes it too)."""
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


async def test_playbooks_page_reports_the_check_of_the_files(
        make_console: Make, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    books = tmp_path / "playbooks"
    books.mkdir()
    touch(books / "waits.yaml", PLAYBOOK)
    c = await make_console(check=PlaybookCheck([str(books)], []))
    await c.login(VIEWER)
    page = html.unescape(await (await c.client.get("/playbooks")).text())
    assert "OK: 1 playbook loads." in page
    assert "problem" not in page
    assert "Changed on disk" not in page

    touch(books / "waits.yaml", BROKEN)              # edited after start: would not load
    expected = check_output(capsys, books)
    assert expected                                   # the CLI finds problems, and …
    page = html.unescape(await (await c.client.get("/playbooks")).text())
    assert f"{len(expected)} problem" in page
    for line in expected:                             # … the page shows each of them
        assert f"<code>{line}</code>" in page
    assert "a restart would fail" in page
    assert 'id="waits"' in page                       # the running playbook still shown

    touch(books / "waits.yaml", PLAYBOOK)             # fixed, and one added on disk
    touch(books / "second.yaml", SECOND)
    page = html.unescape(await (await c.client.get("/playbooks")).text())
    assert "OK: 2 playbooks load." in page
    assert "<code>+waits-too</code>" in page


async def test_an_unknown_escalation_policy_is_a_problem(
        make_console: Make, tmp_path: Path) -> None:
    books = tmp_path / "pb.yaml"
    touch(books, PLAYBOOK.replace("  steps:", "  escalate: [{policy: platfrom}]\n  steps:"))
    c = await make_console(check=PlaybookCheck([str(books)], ["platform"]))
    await c.login(VIEWER)
    page = html.unescape(await (await c.client.get("/playbooks")).text())
    assert "unknown escalation policy 'platfrom' (did you mean 'platform'?)" in page


async def test_no_paths_no_check_section(make_console: Make) -> None:
    c = await make_console()
    await c.login(VIEWER)
    page = await (await c.client.get("/playbooks")).text()
    assert 'id="check"' not in page
    assert 'id="waits"' in page
