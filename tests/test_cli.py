"""The operator's first commands: ``remediator check`` and ``remediator dry-run``, run
in-process through ``cli.main`` (and once through the installed console script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from remediator.cli import main

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
BROKEN = DATA / "playbooks" / "broken"
FIRING = DATA / "webhooks" / "am-0.25-firing.json"
API = ROOT / "playbooks" / "api-error-rate.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_the_shipped_playbooks(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", str(ROOT / "playbooks"))
    assert code == 0
    count = len(list((ROOT / "playbooks").glob("*.yaml")))
    assert out.strip() == f"OK: {count} playbooks"


def test_check_with_the_example_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--config", str(ROOT / "config" / "remediator.yaml"),
                       str(ROOT / "playbooks"))
    assert code == 0
    assert out.startswith("OK: ")


def test_check_a_broken_directory_gives_one_located_error_per_file(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", str(BROKEN))
    assert code == 1
    lines = out.strip().splitlines()
    files = sorted(BROKEN.glob("*.yaml"))
    assert len(lines) == len(files)
    for line, path in zip(sorted(lines), files, strict=True):
        assert line.startswith(f"{path}:")
        assert line.split(":")[1].isdigit()            # file:line: message
    assert f"{len(files)} problems found" in err


def test_check_a_missing_path_and_a_bad_config(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    code, out, _ = run(capsys, "check", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "cannot read" in out
    config = tmp_path / "config.yaml"
    config.write_text("engine:\n  action_budget: 0\n")
    code, out, _ = run(capsys, "check", "--config", str(config), str(ROOT / "playbooks"))
    assert code == 1
    assert "engine.action_budget" in out


def test_dry_run_renders_the_plan_for_a_real_alertmanager_payload(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "dry-run", str(API), "--alert", str(FIRING))
    assert code == 0, err
    assert "matches" in out
    assert "target: Deployment shop/api" in out
    assert ('deployment:http_errors:ratio_rate1m{namespace="shop",deployment="api"} < 0.05'
            in out)
    assert "step 3: roll back: kubernetes.rollback" in out
    assert "approval: Slack #oncall" in out
    assert "escalate: jira.incident" in out
    assert "incident key: api-error-rate/Deployment/shop/api" in out


def test_dry_run_shows_the_incident_key_of_a_grouped_playbook(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    alert = tmp_path / "disk.json"
    alert.write_text('{"labels": {"alertname": "NodeFilesystemSpaceFillingUp", '
                     '"instance": "node-7:9100", "mountpoint": "/var", '
                     '"severity": "warning"}}')
    code, out, err = run(capsys, "dry-run", str(ROOT / "playbooks" / "disk-space-jira.yaml"),
                         "--alert", str(alert))
    assert code == 0, err
    assert "incident key: disk-space-jira/group/{} (group_by: [], one incident for the " \
           "playbook)" in out


def test_dry_run_json_says_which_matcher_failed(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps({"labels": {"alertname": "HighErrorRate", "severity": "info",
                                            "namespace": "shop", "deployment": "api"}}))
    code, out, _ = run(capsys, "dry-run", str(API), "--alert", str(alert), "--output", "json")
    assert code == 0
    plan = json.loads(out)["plans"][0]
    assert plan["matches"] is False
    assert plan["failed_matcher"] == 'severity=~"critical|page"'
    assert "label 'severity' is 'info'" in plan["reason"]


def test_dry_run_without_an_alert_derives_one_from_the_matchers(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "dry-run", str(API), "--output", "json")
    assert code == 0
    [plan] = json.loads(out)["plans"]
    assert plan["source"] == "example alert derived from the matchers"
    assert plan["matches"] is True
    assert plan["steps"][1]["params"] == {"factor": 2.0, "max_replicas": 20}


def test_dry_run_refuses_an_unsafe_label_and_a_broken_file(capsys: pytest.CaptureFixture[str],
                                                           tmp_path: Path) -> None:
    evil = tmp_path / "evil.json"
    evil.write_text(json.dumps({"labels": {"alertname": "HighErrorRate", "severity": "page",
                                           "namespace": "shop", "deployment": "../../x"}}))
    code, out, _ = run(capsys, "dry-run", str(API), "--alert", str(evil))
    assert code == 1
    assert "not a valid DNS-1123" in out
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code, _, err = run(capsys, "dry-run", str(API), "--alert", str(broken))
    assert code == 1
    assert f"{broken}: body: malformed JSON" in err


def test_the_console_script_is_installed() -> None:
    exe = shutil.which("remediator", path=str(Path(sys.executable).parent))
    assert exe is not None, "pip install -e . installs the 'remediator' console script"
    done = subprocess.run([exe, "check", str(ROOT / "playbooks")], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: ")


def test_the_simulator_subcommand_takes_its_own_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["simulator", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--kubeconfig-out" in out
    assert main(["simulator", "--listen", "no-port"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_event_loop_setting_picks_the_loop() -> None:
    """``server.event_loop``: auto and uvloop run the daemon on uvloop (a dependency on
    Linux), asyncio on the standard library's loop."""
    import asyncio

    from remediator.cli import run_loop

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run_loop(loop_module(), "asyncio").startswith("asyncio")
    assert run_loop(loop_module(), "auto").startswith("uvloop")
    assert run_loop(loop_module(), "uvloop").startswith("uvloop")


def test_settle_heap_freezes_what_start_up_loaded() -> None:
    code = ("import gc; from remediator.app import settle_heap; settle_heap(); "
            "print(gc.get_freeze_count() > 1000, gc.get_threshold())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split(None, 1)
    assert out[0] == "True"
    assert out[1].strip() == "(50000, 20, 20)"


def test_dry_run_a_directory_routes_each_alert_as_the_daemon_would(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``dry-run playbooks/`` crashed with IsADirectoryError; it now routes each alert to
    its owner among the directory's playbooks, and says when none matches."""
    code, out, err = run(capsys, "dry-run", str(ROOT / "playbooks"), "--alert", str(FIRING))
    assert code == 0, err
    assert "api-error-rate" in out
    assert "target: Deployment shop/api" in out
    stray = tmp_path / "stray.json"
    stray.write_text(json.dumps({"labels": {"alertname": "NobodyOwnsThis"}}))
    code, out, _ = run(capsys, "dry-run", str(ROOT / "playbooks"), "--alert", str(stray))
    assert code == 0
    assert "no playbook in" in out
    assert "unmatched" in out
    code, _, err = run(capsys, "dry-run", str(ROOT / "playbooks"))
    assert code == 1
    assert "a directory needs --alert FILE" in err


def test_serve_on_a_port_in_use_says_so_in_one_line(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "serve", "--listen", f"127.0.0.1:{port}",
                             "--store", str(tmp_path / "r.db"),
                             "--playbooks", str(ROOT / "playbooks"))
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in err


@pytest.mark.parametrize(("auth", "warned"), [
    ("{token_file: /run/secrets/t}", True),
    ("{basic_user: am, basic_password: pw}", True),
    ("{token_file: /run/secrets/t, users: [{name: am, role: webhook, token_file: /t2}]}",
     False),
    ("{users: [{name: am, role: webhook, token_file: /t}, "
     "{name: alice, role: operator, token_file: /t3}]}", False),
])
def test_check_config_warns_when_one_full_rights_token_is_all(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, auth: str, warned: bool) -> None:
    config = tmp_path / "remediator.yaml"
    for name in ("t", "t2", "t3"):                 # the secret files exist
        (tmp_path / name).write_text("secret\n")
    auth = auth.replace("/run/secrets/t", "/t").replace("/t", f"{tmp_path}/t")
    config.write_text(f"server: {{auth: {auth}}}\n", encoding="utf-8")
    code, out, err = run(capsys, "check", "--config", str(config), str(ROOT / "playbooks"))
    assert code == 0, out
    assert ("single full-rights credential" in err) is warned, err


def test_check_warns_about_nested_loops_without_failing(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text("""\
apiVersion: remediator/v1
kind: Playbook
metadata: {name: bomb}
spec:
  match: ['alertname="X"']
  escalate:
    - action: slack.notify
      with:
        text: "{% for i in range(60000) %}{% for j in range(60000) %}{% endfor %}{% endfor %}"
""")
    code, out, _ = run(capsys, "check", str(tmp_path))
    assert code == 0
    assert f"warning: {tmp_path / 'bomb.yaml'}:9: escalate[0].with.text: template: line 1: " \
           "a loop inside the loop of line 1" in out
    assert "OK: 1 playbook" in out


def test_check_config_names_a_missing_secret_file_and_its_field(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    token = tmp_path / "webhook-token"
    token.write_text("s3cret\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"server:\n  auth:\n    token_file: {token}\n"
                      f"slack:\n  token_file: {tmp_path / 'slack-bot-token'}\n")
    code, out, _ = run(capsys, "check", "--config", str(config), str(ROOT / "playbooks"))
    assert code == 1
    assert out.strip() == (f"{config}: slack.token_file: cannot read the secret file "
                           f"{tmp_path / 'slack-bot-token'}: No such file or directory")
    config.write_text(f"server:\n  auth:\n    token_file: {token}\n")   # Slack, Jira unset
    code, out, _ = run(capsys, "check", "--config", str(config), str(ROOT / "playbooks"))
    assert code == 0
    assert out.startswith("OK: ")
