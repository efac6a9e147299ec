"""Fixtures for the deploy/ tests: the base's resources, the overlays rendered once
per session with ``kubectl kustomize``, and a render function for ad-hoc overlays.

Test modules do not import from here (conftest is not a module to import): they
use these fixtures, and keep their own two-line helpers. Only the render
fixtures need kubectl; they skip when it is absent. Nothing here talks to a
cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUSTOMIZE = DEPLOY / "kustomize"
BASE = KUSTOMIZE / "base"
OVERLAYS = ("dev", "production")
NAMESPACE = "remediator"

Doc = dict[str, Any]


def load_docs(path: Path) -> list[Doc]:
    """Every non-empty YAML document in a file."""
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render(directory: Path) -> list[Doc]:
    """``kubectl kustomize DIR`` parsed into documents (the caller checks kubectl)."""
    exe = kubectl()
    assert exe is not None
    proc = subprocess.run(
        [exe, "kustomize", str(directory)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d is not None]


@pytest.fixture(scope="session")
def base_resources() -> list[Doc]:
    """The documents of every file the base kustomization lists under resources."""
    kustomization = load_docs(BASE / "kustomization.yaml")[0]
    docs: list[Doc] = []
    for name in kustomization["resources"]:
        docs.extend(load_docs(BASE / name))
    return docs


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Doc]]:
    """Each overlay (and the base) rendered by kubectl kustomize."""
    if kubectl() is None:
        pytest.skip("kubectl is not installed: cannot render the Kustomize overlays")
    out = {name: render(KUSTOMIZE / "overlays" / name) for name in OVERLAYS}
    out["base"] = render(BASE)
    return out


@pytest.fixture(scope="session")
def kustomize_render() -> Callable[[Path], list[Doc]]:
    """``render`` itself, for tests that build their own overlay."""
    if kubectl() is None:
        pytest.skip("kubectl is not installed: cannot render Kustomize overlays")
    return render


@pytest.fixture
def overlay_with_component(tmp_path: Path) -> Path:
    """A throwaway overlay: production plus the namespaced-rbac component.

    Kustomize rejects absolute paths to other kustomizations, so the overlay
    refers to the repository through a relative path from tmp_path.
    """
    rel = Path(os.path.relpath(KUSTOMIZE, tmp_path))
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {rel / 'overlays' / 'production'}\n"
        f"components:\n  - {rel / 'components' / 'namespaced-rbac'}\n",
        encoding="utf-8",
    )
    return tmp_path
