"""``when`` / ``skip_if`` on a step: checked when the playbook is loaded."""

from __future__ import annotations

import pytest

from remediator.errors import ConfigError
from remediator.loader import load

PLAYBOOK = """\
apiVersion: remediator/v1
kind: Playbook
metadata: {name: steer}
spec:
  match: ['alertname="A"']
%(target)s
  steps:
    - name: roll back
      action: kubernetes.rollback
      %(field)s
"""
TARGET = "  target: {kind: Deployment, namespace: prod, name: api}"


def test_known_kinds_load() -> None:
    [pb] = load(PLAYBOOK % {"target": TARGET, "field": "when: {finding: recent_rollout}"})
    assert pb.spec.steps[0].when is not None
    assert pb.spec.steps[0].when.finding == "recent_rollout"
    [pb] = load(PLAYBOOK % {"target": TARGET, "field": "skip_if: {finding: oom_killed}"})
    assert pb.spec.steps[0].skip_if is not None


@pytest.mark.parametrize(("target", "field", "says"), [
    (TARGET, "when: {finding: recent_rolout}",
     "pb.yaml:10: steps[0].when.finding: unknown finding kind 'recent_rolout' (known: "
     "recent_rollout, config_changed,"),
    (TARGET, "skip_if: {finding: oom_killed, extra: 1}",
     "pb.yaml:10: steps[0].skip_if.extra: unknown field"),
    ("", "when: {finding: recent_rollout}",
     "pb.yaml:10: steps[0].when: 'when' steers the step by the diagnosis of the target: "
     "the playbook needs a target"),
])
def test_bad_steering_names_file_line_and_field(target: str, field: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(PLAYBOOK % {"target": target, "field": field}, source="pb.yaml")
    assert any(str(p).startswith(says) for p in info.value.problems), \
        [str(p) for p in info.value.problems]
