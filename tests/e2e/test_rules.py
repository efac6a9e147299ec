"""The operators' Prometheus rules, and the e2e copy of them, pass promtool; the copy
differs from the original in range windows and ``for`` durations only."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .harness import (
    E2E_FOR,
    E2E_WINDOW,
    RULES,
    _alertmanager_config,
    render_e2e_rules,
    require_binaries,
)

pytestmark = pytest.mark.e2e


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = require_binaries("promtool")["promtool"]
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)


def test_operator_rules_pass_promtool() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 3 rules found" in result.stdout


def test_rules_name_what_the_playbooks_use() -> None:
    rules = {r.get("record") or r.get("alert"): r
             for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert set(rules) == {"deployment:http_errors:ratio_rate1m", "HighErrorRate",
                          "KubeDeploymentReplicasMismatch"}
    assert "by (namespace, deployment)" in rules["deployment:http_errors:ratio_rate1m"]["expr"]
    assert 'code=~"5.."' in rules["deployment:http_errors:ratio_rate1m"]["expr"]
    for alert in ("HighErrorRate", "KubeDeploymentReplicasMismatch"):
        assert "severity" in rules[alert]["labels"]
    # The playbooks verify against the recording rule and match on these labels.
    playbook = (RULES.parents[2] / "playbooks" / "api-error-rate.yaml").read_text()
    assert "deployment:http_errors:ratio_rate1m" in playbook
    assert 'alertname="HighErrorRate"' in playbook


def test_e2e_copy_changes_only_windows_and_for(tmp_path: Path) -> None:
    original = yaml.safe_load(RULES.read_text())
    rendered_text = render_e2e_rules(RULES.read_text())
    rendered = yaml.safe_load(rendered_text)
    for g_orig, g_new in zip(original["groups"], rendered["groups"], strict=True):
        for r_orig, r_new in zip(g_orig["rules"], g_new["rules"], strict=True):
            assert set(r_orig) == set(r_new)
            for key in r_orig:
                if key == "for":
                    assert r_new["for"] == E2E_FOR
                elif key == "expr":
                    assert "[1m]" not in r_new["expr"]
                    assert "[10m]" not in r_new["expr"]
                    assert r_new["expr"].replace(f"[{E2E_WINDOW}]", "[W]") == \
                        r_orig["expr"].replace("[1m]", "[W]").replace("[10m]", "[W]")
                else:
                    assert r_new[key] == r_orig[key], key
    path = tmp_path / "rules.yaml"
    path.write_text(rendered_text)
    result = _promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_e2e_alertmanager_config_passes_amtool(tmp_path: Path) -> None:
    tool = require_binaries("amtool")["amtool"]
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(_alertmanager_config(1111, 2222)))
    result = subprocess.run([tool, "check-config", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


_RECORDED = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]*)")


def _promql_in(path: Path) -> list[str]:
    out = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not isinstance(doc, dict) or doc.get("kind") != "Playbook":
            continue
        for step in doc["spec"].get("steps", []):
            expr = (step.get("verify") or {}).get("promql")
            if expr:
                out.append(expr)
    return out


@pytest.mark.parametrize("folder", [
    "playbooks",
    "tests/e2e/playbooks",
    "deploy/kustomize/base/playbooks",
])
def test_playbooks_verify_only_with_recorded_series(folder: str) -> None:
    """A verification on a recording rule nobody records never holds: every step
    escalates. Each recorded series a playbook queries must be in rules.yaml."""
    recorded = {r["record"] for g in yaml.safe_load(RULES.read_text())["groups"]
                for r in g["rules"] if "record" in r}
    root = RULES.parents[2] / folder
    missing = {f"{path.name}: {name}"
               for path in sorted(root.glob("*.yaml"))
               for expr in _promql_in(path) for name in _RECORDED.findall(expr)
               if name not in recorded}
    assert not missing, f"not recorded by {RULES.name}: {sorted(missing)}"
