"""Settings: defaults ← file ← environment ← flags, and every bad value reported with
the file, line and field (or the environment variable) it came from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from remediator.errors import ConfigError
from remediator.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_example_config_loads_with_its_documented_defaults() -> None:
    s = load_settings(ROOT / "config" / "remediator.yaml")
    assert s.server.listen == "127.0.0.1:8080"
    assert s.engine.action_budget == 20
    assert s.engine.action_budget_window == 600.0
    assert s.store.synchronous == "FULL"


def test_precedence_file_then_environment_then_flags(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("engine:\n  action_budget: 5\n  max_parallel: 4\n")
    assert load_settings(config).engine.action_budget == 5
    monkeypatch.setenv("REMEDIATOR_ENGINE__ACTION_BUDGET", "7")
    s = load_settings(config)
    assert (s.engine.action_budget, s.engine.max_parallel) == (7, 4)
    s = load_settings(config, {"engine": {"action_budget": 9}})
    assert s.engine.action_budget == 9


def test_bad_values_name_file_line_and_field(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("server:\n  listen: '127.0.0.1:8080'\nengine:\n  dry_run: true\n"
                      "  action_budget: 0\n  retires: 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert [str(p) for p in info.value.problems] == [
        f"{config}:5: engine.action_budget: Input should be greater than or equal to 1",
        f"{config}:6: engine.retires: unknown field; allowed here: " +
        ", ".join(["dry_run", "max_parallel", "allow_namespaces", "deny_namespaces",
                   "action_budget", "action_budget_window", "retry_base", "retry_max",
                   "call_timeout", "lock_retry_interval", "escalation_retries",
                   "escalation_retry_for", "intake_priority", "lease", "scan_interval",
                   "owner", "diagnosis", "evidence"]),
    ]


def test_a_bad_environment_value_names_the_variable(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATOR_ENGINE__ACTION_BUDGET", "lots")
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    [problem] = info.value.problems
    assert str(problem).startswith("environment: REMEDIATOR_ENGINE__ACTION_BUDGET: ")


@pytest.mark.parametrize(("text", "expected"), [
    ("[1, 2]\n", ":1: the config must be a mapping"),
    ("engine: {dry_run: [\n", ":2: invalid YAML: "),
    ("server:\n  listen: nowhere\n", ":2: server.listen: 'nowhere' is not HOST:PORT"),
])
def test_broken_files(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert expected in str(info.value.problems[0])


def _keys(model: type[Any], prefix: str = "") -> list[str]:
    from pydantic import BaseModel
    out = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += _keys(annotation, f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_the_example_config_names_every_setting() -> None:
    """config/remediator.yaml is where operators look for what can be set: every field
    of the settings model is there, with its default (a secret by its ``_file`` form)."""
    import yaml

    from remediator.settings import Settings
    config = yaml.safe_load((ROOT / "config" / "remediator.yaml").read_text())
    missing = []
    keys = _keys(Settings)
    for key in keys:
        if f"{key}_file" in keys:
            key = f"{key}_file"             # secrets are documented as files
        node: Any = config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(key)
                break
            node = node[part]
    assert missing == []


@pytest.mark.parametrize(("clusters", "message"), [
    ("  clusters:\n    east: {kubeconfig: /k, in_cluster: true}\n",
     "give either 'kubeconfig' (and optionally 'context') or 'in_cluster: true'"),
    ("  clusters:\n    east: {}\n", "give either 'kubeconfig'"),
    ("  clusters:\n    East_1: {in_cluster: true}\n",
     "cluster name 'East_1' is not a valid DNS-1123 label"),
])
def test_named_clusters_are_checked(tmp_path: Path, clusters: str, message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("kubernetes:\n" + clusters)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(config)
    config.write_text("kubernetes:\n  clusters:\n    east: {kubeconfig: /k, context: e}\n"
                      "    here: {in_cluster: true}\n")
    s = load_settings(config)
    assert sorted(s.kubernetes.clusters) == ["east", "here"]
    assert s.kubernetes.clusters["east"].context == "e"
