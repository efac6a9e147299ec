"""The playbook loader: every broken fixture yields one precise ``file:line: field: message``.

Each file in ``tests/data/playbooks/broken/`` holds exactly one operator mistake,
on the line marked ``<- mistake``; the expected line is computed from that
marker, so the fixtures can be edited without renumbering the tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.errors import ConfigError, Problem
from remediator.loader import load, load_paths, playbook_files
from remediator.matching import Matcher

DATA = Path(__file__).parent / "data" / "playbooks"
BROKEN = DATA / "broken"
GOOD = DATA / "good"
DUPLICATES = DATA / "duplicate-names"
MARKER = "<- mistake"

_KNOWN_ACTIONS = ("http.post, jira.incident, kubernetes.cordon, kubernetes.delete_pod, "
                  "kubernetes.drain, kubernetes.isolate_pod, kubernetes.network_isolate, "
                  "kubernetes.restart, kubernetes.rollback, kubernetes.scale, "
                  "kubernetes.uncordon, slack.notify, slack.page, wait")

# file name → the message expected after "file:line: ".
EXPECTED: dict[str, str] = {
    "yaml-syntax-error.yaml":
        "invalid YAML: expected <block end>, but found '<block mapping start>'",
    "unquoted-template.yaml":
        "invalid YAML: found unhashable key",
    "unknown-top-level-field.yaml":
        "description: unknown field; allowed here: apiVersion, kind, metadata, spec",
    "typo-retires.yaml":
        "steps[0].retires: unknown field (did you mean 'retries'?); "
        "allowed here: name, action, with, verify, approval, retries, collect, timeout, "
        "when, skip_if",
    "unknown-action.yaml":
        f"steps[0].action: unknown action 'kubernetes.restrat' (known: {_KNOWN_ACTIONS}) "
        "(did you mean 'kubernetes.restart'?)",
    "params-factor-one.yaml":
        "steps[0].with.factor: must be > 1",
    "params-to-and-by.yaml":
        "steps[0].with: give exactly one of 'to', 'by' or 'factor'",
    "params-factor-without-max-replicas.yaml":
        "steps[0].with: 'max_replicas' is required when scaling up by 'by' or 'factor'",
    "bad-duration.yaml":
        "steps[0].verify.timeout: bad duration '5 minutes': expected e.g. 30s, 5m, 1h30m",
    "bad-matcher-regex.yaml":
        "match[1]: bad matcher 'namespace=~\"prod-(api|web\"': column 12: invalid regular "
        "expression in namespace=~\"prod-(api|web\": missing ), unterminated subpattern",
    "bad-matcher-operator.yaml":
        "match[1]: bad matcher 'severity==\"critical\"': column 9: unknown operator '==': "
        "use =, !=, =~ or !~ (Alertmanager has no '==', use '=')",
    "undefined-template-variable.yaml":
        "target.name: template '{{ lables.deployment }}': undefined variable 'lables' "
        "(known: alert, annotations, incident, labels, target; did you mean 'labels'?)",
    "sandbox-escape.yaml":
        "escalate[0].with.text: template '{{ labels.__class__.__mro__ }}': "
        "line 1: access to '__mro__' is not allowed; line 1: access to '__class__' is not allowed",
    "target-namespace-not-dns1123.yaml":
        "target.namespace: namespace 'Prod_API' is not a valid DNS-1123 label (lowercase "
        "letters, digits and '-', starting and ending with a letter or digit, at most 63 "
        "characters)",
    "action-needs-target.yaml":
        "steps[0].action: kubernetes.restart acts on 'spec.target', which this playbook lacks",
    "rollout-on-pod-target.yaml":
        "steps[0].verify.rollout: 'rollout: complete' needs a Deployment, StatefulSet or "
        "DaemonSet target",
    "duplicate-step-names.yaml":
        "steps[1].name: step name 'restart' is used twice (first at steps[0])",
    "for-longer-than-timeout.yaml":
        "steps[0].verify.for: 'for' must be shorter than 'timeout' (600s >= 300s)",
    "step-timeout-shorter-than-verify.yaml":
        "steps[0].timeout: the step's timeout (120s) is shorter than its verify.timeout "
        "(900s): it bounds the action, its retries and the verification together, so the "
        "verification could never finish; raise it, or leave it out (2m plus verify.timeout)",
    "no-steps-no-escalate.yaml":
        "spec: a playbook needs at least one step or one escalation",
    "group-by-bad-label.yaml":
        "group_by[1]: 'node-name' is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*), "
        "nor '...' (every label)",
    "group-by-with-target.yaml":
        "group_by: group_by applies to playbooks without a target (with a target, the "
        "incident is the target's: one per target); remove one of them",
    "wrong-api-version.yaml":
        "apiVersion: must be 'remediator/v1', got 'remediator/v1beta1'",
}

def marker_line(path: Path) -> int:
    lines = [i for i, text in enumerate(path.read_text().splitlines(), 1) if MARKER in text]
    assert len(lines) == 1, f"{path.name} must mark exactly one line with {MARKER!r}"
    return lines[0]


def only_problem(path: Path) -> Problem:
    with pytest.raises(ConfigError) as info:
        load(path.read_text(), source=str(path))
    problems = info.value.problems
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def test_every_broken_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in BROKEN.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file_message(name: str) -> None:
    path = BROKEN / name
    problem = only_problem(path)
    assert problem.source == str(path)
    assert problem.message == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file_points_at_the_offending_line(name: str) -> None:
    path = BROKEN / name
    problem = only_problem(path)
    assert str(problem) == f"{path}:{marker_line(path)}: {EXPECTED[name]}"


def test_load_paths_reports_every_broken_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_paths([BROKEN])
    problems = info.value.problems
    assert sorted(Path(p.source).name for p in problems) == sorted(EXPECTED)
    by_file = {Path(p.source).name: p for p in problems}
    for name, message in EXPECTED.items():
        assert by_file[name].message == message
    # The error text lists them all, one per line, in file order.
    text = str(info.value).splitlines()
    assert len(text) == len(EXPECTED)
    files = sorted(BROKEN.glob("*.yaml"))
    assert [line.split(":", 1)[0] for line in text] == [str(p) for p in files]


def test_one_bad_file_does_not_hide_good_ones_or_other_bad_ones(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text((BROKEN / "unknown-action.yaml").read_text())
    (tmp_path / "b.yaml").write_text((GOOD / "20-wait-and-post.yaml").read_text())
    (tmp_path / "c.yml").write_text((BROKEN / "bad-duration.yaml").read_text())
    (tmp_path / "notes.txt").write_text("not a playbook: ignored")
    with pytest.raises(ConfigError) as info:
        load_paths([tmp_path])
    assert [Path(p.source).name for p in info.value.problems] == ["a.yaml", "c.yml"]


def test_good_playbooks_load_in_file_order() -> None:
    files = playbook_files([GOOD])
    assert [f.name for f in files] == ["05-statefulset.yaml", "10-multi.yaml",
                                       "20-wait-and-post.yaml"]
    playbooks = load_paths([GOOD])
    assert [pb.name for pb in playbooks] == [
        "statefulset-restart", "notify-errors", "restart-on-errors", "cache-warmup"]
    assert [Path(pb.source).name for pb in playbooks] == [
        "05-statefulset.yaml", "10-multi.yaml", "10-multi.yaml", "20-wait-and-post.yaml"]


def test_paths_are_taken_in_the_order_given() -> None:
    playbooks = load_paths([GOOD / "20-wait-and-post.yaml", GOOD / "05-statefulset.yaml"])
    assert [pb.name for pb in playbooks] == ["cache-warmup", "statefulset-restart"]


def test_multi_document_file_records_each_documents_first_line() -> None:
    path = GOOD / "10-multi.yaml"
    first, second = load_paths([path])
    lines = path.read_text().splitlines()
    api_lines = [i for i, text in enumerate(lines, 1) if text.startswith("apiVersion:")]
    assert (first.line, second.line) == tuple(api_lines)
    assert first.spec.continue_ is True
    assert second.spec.continue_ is False
    assert second.spec.steps[0].verify is not None
    assert second.spec.steps[0].verify.hold_for == 120.0
    assert second.spec.steps[0].verify.timeout == 600.0


def test_empty_documents_are_skipped() -> None:
    text = "---\n---\n" + (GOOD / "05-statefulset.yaml").read_text() + "---\n"
    [pb] = load(text, source="x.yaml")
    assert pb.name == "statefulset-restart"
    assert load("", source="empty.yaml") == []


def test_a_document_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError) as info:
        load("# comment\n- a\n- b\n", source="list.yaml")
    assert [str(p) for p in info.value.problems] == [
        "list.yaml:2: a playbook must be a mapping, not list"]


def test_problems_in_several_documents_of_one_file_are_all_reported() -> None:
    good = (GOOD / "05-statefulset.yaml").read_text()
    bad_version = good.replace("remediator/v1", "remediator/v2")
    text = bad_version + "---\n" + good.replace("restart\n", "restrat\n", 1) \
        .replace("kubernetes.restart", "kubernetes.restrat")
    with pytest.raises(ConfigError) as info:
        load(text, source="multi.yaml")
    messages = [p.message.split(" (known")[0] for p in info.value.problems]
    assert messages == ["apiVersion: must be 'remediator/v1', got 'remediator/v2'",
                        "steps[0].action: unknown action 'kubernetes.restrat'"]
    second_start = len(bad_version.splitlines()) + 2
    assert info.value.problems[1].line is not None
    assert info.value.problems[1].line > second_start


def test_duplicate_names_point_at_the_name_lines() -> None:
    with pytest.raises(ConfigError) as info:
        load_paths([DUPLICATES])
    first, second = DUPLICATES / "a-first.yaml", DUPLICATES / "b-second.yaml"

    def name_line(path: Path) -> int:
        return next(i for i, t in enumerate(path.read_text().splitlines(), 1)
                if t == "  name: restart-api")
    assert [str(p) for p in info.value.problems] == [
        f"{second}:{name_line(second)}: metadata.name: playbook 'restart-api' is already "
        f"defined at {first}:{name_line(first)}"]


def test_the_same_file_twice_is_a_duplicate() -> None:
    path = GOOD / "05-statefulset.yaml"
    with pytest.raises(ConfigError, match="'statefulset-restart' is already defined"):
        load_paths([path, path])


def test_matchers_are_parsed_and_attached() -> None:
    notify, restart = load_paths([GOOD / "10-multi.yaml"])
    assert notify.matchers == [Matcher("alertname", "=", "HighErrorRate"),
                               Matcher("severity", "=~", "critical|page")]
    assert [str(m) for m in restart.matchers] == ['alertname="HighErrorRate"',
                                                  'namespace!~"kube-.*"']
    assert restart.matchers[1].matches({"namespace": "prod"})
    assert not restart.matchers[1].matches({"namespace": "kube-system"})


def test_unknown_param_in_with_suggests_the_right_one() -> None:
    text = (GOOD / "05-statefulset.yaml").read_text().replace(
        "      action: kubernetes.restart\n",
        "      action: kubernetes.restart\n      with: {reasn: deploy}\n")
    with pytest.raises(ConfigError) as info:
        load(text, source="p.yaml")
    [problem] = info.value.problems
    assert problem.message == ("steps[0].with.reasn: unknown field (did you mean 'reason'?); "
                               "allowed here: reason")
    assert text.splitlines()[problem.line - 1 if problem.line else 0].strip().startswith("with:")


def test_action_kind_mismatch() -> None:
    text = (GOOD / "05-statefulset.yaml").read_text().replace(
        "kubernetes.restart", "kubernetes.cordon")
    with pytest.raises(ConfigError) as info:
        load(text, source="p.yaml")
    assert [p.message for p in info.value.problems] == [
        "steps[0].with: give exactly one of 'min_ready_nodes' or 'min_ready_percent' (the "
        "healthy-node floor cordoning must not break)",
        "steps[0].action: kubernetes.cordon cannot act on a StatefulSet "
        "(it acts on: Node)"]


def test_isolate_pod_on_a_statefulset_says_why_not() -> None:
    text = (GOOD / "05-statefulset.yaml").read_text().replace(
        "kubernetes.restart", "kubernetes.isolate_pod").replace(
        "verify: {rollout: complete, timeout: 15m}", "with: {pod: db-0}")
    with pytest.raises(ConfigError) as info:
        load(text, source="p.yaml")
    [problem] = info.value.problems
    assert problem.message.startswith(
        "steps[0].action: kubernetes.isolate_pod cannot act on a StatefulSet (it acts on: "
        "Deployment): a StatefulSet's pods have fixed names (db-0, db-1, …): relabelled "
        "out, the isolated pod keeps its name, so the StatefulSet cannot start a "
        "replacement (it needs that same name"), problem.message
    assert "kubernetes.delete_pod" in problem.message
    assert "kubernetes.network_isolate" in problem.message


def test_load_is_pure_and_names_its_source() -> None:
    text = (GOOD / "05-statefulset.yaml").read_text()
    [pb] = load(text)
    assert pb.source == "<string>"
    [pb] = load(text, source="somewhere.yaml")
    assert (pb.source, pb.line) == ("somewhere.yaml", 2)


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_paths([missing])
    [problem] = info.value.problems
    assert problem.source == str(missing)
    assert problem.line is None
    assert problem.message.startswith("cannot read: ")


def test_schema_and_semantic_errors_are_reported_in_one_run() -> None:
    text = """\
apiVersion: remediator/v1
kind: Playbook
metadata: {name: many}
spec:
  match: ['severity=="critical"']
  steps:
    - name: restart
      action: kubernetes.restrat
      retires: 3
    - name: scale
      action: kubernetes.scale
      with: {factor: 1, max_replicas: 4}
      verify: {timeout: 5 minutes}
  escalate:
    - action: slack.notify
      with: {text: "{{ lables.x }}"}
"""
    with pytest.raises(ConfigError) as err:
        load(text, source="many.yaml")
    got = sorted(str(p) for p in err.value.problems)
    assert len(got) == 6, got
    assert any("steps[0].retires: unknown field" in p for p in got)
    assert any("steps[1].verify.timeout: bad duration" in p for p in got)
    assert any("match[0]: bad matcher" in p for p in got)
    assert any("steps[0].action: unknown action 'kubernetes.restrat'" in p for p in got)
    assert any("steps[1].with.factor: must be > 1" in p for p in got)
    assert any("escalate[0].with.text: template" in p and "'lables'" in p for p in got)
