"""Escalation policies are checked where they are written: ``remediator check`` names
the file, line and field of a playbook that references an unknown policy, and of a
policy with no levels, a level with no target, or a reminder not within ack_within;
the chain's timer arithmetic (``next_timer``) is a pure function, tested here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediator.cli import main
from remediator.engine.chain import next_timer
from remediator.loader import load
from remediator.model.records import ChainTimer
from remediator.settings import EscalationPolicy

PLAYBOOK = """apiVersion: remediator/v1
kind: Playbook
metadata: {name: paged}
spec:
  match: ['alertname="X"']
  escalate:
    - action: slack.notify
      with: {text: hi, channel: "#ops"}
    - policy: primray
"""

CONFIG = """escalation:
  policies:
    primary:
      levels:
        - targets: {slack_users: [U1]}
          ack_within: 10m
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_an_unknown_policy_is_named_with_its_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pb, config = tmp_path / "pb.yaml", tmp_path / "c.yaml"
    pb.write_text(PLAYBOOK)
    config.write_text(CONFIG)
    code, out, _ = run(capsys, "check", "--config", str(config), str(pb))
    assert code == 1
    assert out.splitlines()[0] == (f"{pb}:9: spec.escalate[1].policy: unknown escalation "
                                   "policy 'primray' (did you mean 'primary'?)")
    code, out, _ = run(capsys, "check", str(pb))            # no --config: none configured
    assert code == 1
    assert "(no escalation.policies are configured)" in out
    pb.write_text(PLAYBOOK.replace("primray", "primary"))
    code, out, _ = run(capsys, "check", "--config", str(config), str(pb))
    assert (code, out.strip()) == (0, "OK: 1 playbook")


@pytest.mark.parametrize(("policy", "line", "expected"), [
    ("      levels: []\n", 4, "escalation.policies.primary.levels: "),
    ("      levels:\n        - ack_within: 10m\n", 5,
     "a level needs at least one target"),
    ("      levels:\n        - targets: {slack_users: [U1]}\n          ack_within: 5m\n"
     "          reminders: [5m]\n", 5, "reminders must fall within ack_within (300s): 300s"),
    ("      levels:\n        - targets: {slack_groups: [U1]}\n          ack_within: 5m\n", 5,
     "not Slack user group ids (S…): U1"),
])
def test_bad_policies_are_named_with_file_line_and_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str, line: int,
        expected: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("escalation:\n  policies:\n    primary:\n" + policy)
    code, out, _ = run(capsys, "check", "--config", str(config), str(tmp_path))
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith(f"{config}:"), first
    assert expected in first, first
    assert int(first.split(":")[1]) == line, first


def test_a_policy_entry_is_either_a_policy_or_an_action() -> None:
    with pytest.raises(Exception, match="either an action"):
        load(PLAYBOOK.replace("- policy: primray", "- {policy: p, action: slack.notify}"))


T = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)
POLICY = EscalationPolicy.model_validate({"repeat": 1, "levels": [
    {"targets": {"slack_users": ["U1"]}, "ack_within": "5m", "reminders": ["3m", "1m"]},
    {"targets": {"slack_groups": ["S1"]}, "ack_within": "10m"}]})


def test_next_timer_walks_reminders_levels_and_rounds() -> None:
    t: ChainTimer | None = ChainTimer("i", "p", 0, 0, 0, T, T)
    seen = []
    while t is not None:
        seen.append((t.round, t.level, t.step, (t.due_at - T) / timedelta(minutes=1)))
        t = next_timer(POLICY, t)
    assert seen == [(0, 0, 0, 0), (0, 0, 1, 1), (0, 0, 2, 3), (0, 1, 0, 5),
                    (1, 0, 0, 15), (1, 0, 1, 16), (1, 0, 2, 18), (1, 1, 0, 20)]


def test_a_webhook_without_a_secret_or_with_an_unknown_event_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("notify:\n  webhooks:\n    - {name: itsm, url: 'http://x/h'}\n")
    code, out, _ = run(capsys, "check", "--config", str(config), str(tmp_path))
    assert code == 1
    assert out.splitlines()[0] == (f"{config}:3: notify.webhooks.0: a webhook needs "
                                   "secret_file (its HMAC signing secret)")
    config.write_text("notify:\n  webhooks:\n    - {name: itsm, url: 'http://x/h',\n"
                      "       secret_file: /s, events: [opend]}\n")
    code, out, _ = run(capsys, "check", "--config", str(config), str(tmp_path))
    assert code == 1
    assert "notify.webhooks.0.events.0" in out.splitlines()[0]
