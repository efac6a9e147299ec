"""README's quick start, run as written: the shell commands of its code blocks, from the
repository's root, in order. ``scripts/start`` runs in the background (on a free port
and a temporary store, through the environment, so it collides with nothing); every
other command runs to completion and must succeed. The one placeholder, ``ID``, becomes
the id of the incident waiting for approval. The simulated cluster's incidents must
close as recovered, all within a minute."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

pytestmark = pytest.mark.slow


def quick_start_commands(text: str) -> list[str]:
    """The commands of the ``sh`` blocks under README's "Quick start" heading, one a line
    (comments dropped)."""
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def incidents(env: dict[str, str]) -> list[dict[str, object]]:
    done = subprocess.run([str(ROOT / ".venv/bin/remediator"), "incidents", "--output",
                           "json"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=20, check=True)
    result: list[dict[str, object]] = json.loads(done.stdout)
    return result


def wait_for(env: dict[str, str], playbook: str, states: tuple[str, ...],
             deadline: float) -> dict[str, object]:
    while time.monotonic() < deadline:
        found = [i for i in incidents(env) if i["playbook"] == playbook]
        if found and found[0]["state"] in states:
            return found[0]
        time.sleep(0.3)
    raise AssertionError(f"no {playbook} incident reached {states}: {incidents(env)}")


def test_the_commands_are_what_a_reader_sees() -> None:
    commands = quick_start_commands(README.read_text(encoding="utf-8"))
    assert commands[0] == "scripts/start"
    assert ".venv/bin/remediator fire examples/alert.json --wait" in commands
    for command in commands:
        words = shlex.split(command)
        exe = words[0]
        assert (ROOT / exe).exists() or exe == "curl", f"{exe}: not in the repository"
        for word in words[1:]:
            if word.startswith(("examples/", "@examples/")):
                assert (ROOT / word.lstrip("@")).is_file(), f"{command}: {word} is missing"


def test_the_quick_start_closes_the_loop(tmp_path: Path) -> None:
    assert (ROOT / ".venv/bin/remediator").exists(), "scripts/test creates .venv"
    commands = quick_start_commands(README.read_text(encoding="utf-8"))
    port = free_port()
    env = {**os.environ, "REMEDIATOR_SERVER__LISTEN": f"127.0.0.1:{port}",
           "REMEDIATOR_STORE__PATH": str(tmp_path / "remediator.db"),
           "REMEDIATOR_URL": f"http://127.0.0.1:{port}", "NO_COLOR": "1"}
    started = time.monotonic()
    deadline = started + 60
    daemon_log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(shlex.split(commands[0]), cwd=ROOT, env=env, stdout=daemon_log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_listening(port, daemon, deadline)
        approval_id = ""
        for command in commands[1:]:
            if re.search(r"\bID\b", command):
                if not approval_id:
                    approval_id = str(wait_for(env, "api-error-rate", ("awaiting_approval",),
                                               deadline)["id"])
                command = re.sub(r"\bID\b", approval_id, command)
            command = command.replace("localhost:8080", f"127.0.0.1:{port}")
            done = subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=max(1.0, deadline - time.monotonic()),
                                  check=False)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            if "fire examples/alert.json --wait" in command:
                assert "recovered" in done.stdout.splitlines()[1]
        states = {str(i["playbook"]): str(i["state"]) for i in incidents(env)}
        assert states["replicas-mismatch"] == "recovered"
        wait_for(env, "api-error-rate", ("recovered",), deadline)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)
        daemon_log.close()
    log = (tmp_path / "daemon.log").read_text()
    assert daemon.returncode == 0, log
    assert time.monotonic() - started < 60
    kubeconfig = re.search(r"KUBECONFIG=(\S+)", log)
    assert kubeconfig, log
    assert not Path(kubeconfig.group(1)).parent.exists(), "the simulator's temp dir is left"


def _wait_until_listening(port: int, daemon: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        assert daemon.poll() is None, "scripts/start exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the daemon did not listen")
