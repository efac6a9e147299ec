"""deploy/Dockerfile, linted by structure (no Docker engine is needed).

It must be multi-stage (a builder, then a slim runtime that copies only the venv),
run as the non-root uid 10001 that the Deployment also uses, keep Python from
writing bytecode (read-only root filesystem), have a HEALTHCHECK on /healthz that
needs no curl, and start ``remediator serve --config /etc/remediator/config.yaml``.
The BuildKit ignore file must keep the build context to what the wheel needs.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / "deploy" / "Dockerfile.dockerignore"
DEPLOYMENT = REPO / "deploy" / "kustomize" / "base" / "deployment.yaml"


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [args for o, args in self.instructions if o == op]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined."""
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "dangling line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, rest = line.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, flags=re.IGNORECASE)
            assert m, line
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda g: args[g.group(1) or g.group(2)],
                           m.group(1))
            stages.append(Stage(image, m.group(2)))
        elif not stages:
            assert op == "ARG", f"only ARG may precede the first FROM: {line}"
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((op, rest))
    return args, stages


def _stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))[1]


def _runtime() -> Stage:
    return _stages()[-1]


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec (JSON) form: {args}"
    return value


def test_multi_stage_build() -> None:
    stages = _stages()
    assert len(stages) >= 2
    builder, runtime = stages[0], stages[-1]
    assert builder.name == "builder"
    assert runtime.image == "python:3.11-slim"
    assert any("pip wheel" in r for r in builder.all("RUN"))
    assert any("venv" in r for r in builder.all("RUN"))
    copies = runtime.all("COPY")
    assert copies, "the runtime stage copies the venv from the builder"
    assert all(c.startswith("--from=builder ") for c in copies), (
        "the runtime stage takes only build outputs, never the source tree")
    assert not any("pip " in r for r in runtime.all("RUN")), "no installs in the runtime stage"


def test_runs_as_non_root_uid_10001() -> None:
    runtime = _runtime()
    users = runtime.all("USER")
    assert users, "the runtime stage must set USER"
    assert users[-1] in {"10001", "10001:10001"}, (
        "numeric uid so that runAsNonRoot can verify it")
    ops = [op for op, _ in runtime.instructions]
    assert ops.index("USER") < ops.index("ENTRYPOINT")
    assert any("--uid 10001" in r for r in runtime.all("RUN"))
    deployment = yaml.safe_load(DEPLOYMENT.read_text(encoding="utf-8"))
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


def test_read_only_root_filesystem_friendly() -> None:
    runtime = _runtime()
    env = " ".join(runtime.all("ENV"))
    assert re.search(r"\bPYTHONDONTWRITEBYTECODE=1\b", env)
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", env)
    assert runtime.all("VOLUME") == ['["/var/lib/remediator"]']
    assert any("-o 10001 -g 10001" in r and "/var/lib/remediator" in r
               for r in runtime.all("RUN")), "the state directory belongs to the app user"
    assert runtime.all("EXPOSE") == ["8080"]


def test_healthcheck_uses_python_not_curl() -> None:
    checks = _runtime().all("HEALTHCHECK")
    assert len(checks) == 1
    options, _, command = checks[0].partition("CMD ")
    assert "--interval=" in options
    assert "--timeout=" in options
    argv = _exec_form(command)
    assert argv[0] == "python"
    assert "urllib.request" in argv[-1]
    assert "http://127.0.0.1:8080/healthz" in argv[-1]
    assert not any(tool in checks[0] for tool in ("curl", "wget"))


def test_entrypoint_and_cmd() -> None:
    runtime = _runtime()
    assert [_exec_form(e) for e in runtime.all("ENTRYPOINT")] == [["remediator"]]
    assert [_exec_form(c) for c in runtime.all("CMD")] == [
        ["serve", "--config", "/etc/remediator/config.yaml"]]
    container = yaml.safe_load(DEPLOYMENT.read_text(encoding="utf-8"))[
        "spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["serve", "--config", "/etc/remediator/config.yaml"]
    assert "command" not in container, "keep the image's ENTRYPOINT"


def test_build_context_is_an_allow_list() -> None:
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "exclude everything, then re-include what the build needs"
    included = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "pyproject.toml" in included
    assert "remediator" in included
    assert pyproject["project"]["readme"] in included
    assert pyproject["project"]["scripts"]["remediator"] == "remediator.cli:main"
    assert not included & {".git", ".venv", "tests", "deploy"}
