"""The ``ha`` overlay (deploy/kustomize/overlays/ha): rendered with ``kubectl
kustomize`` (skipped without kubectl, like the other overlays), every object
valid against the Kubernetes schemas in strict mode, and the properties the
PostgreSQL deployment depends on: three replicas rolled one at a time, a PDB
keeping two, anti-affinity, the database URL from a Secret, no PVC, egress to
PostgreSQL; and the pod's config plus that environment selects the PostgreSQL store.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HA = REPO / "deploy" / "kustomize" / "overlays" / "ha"
K8S_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
CRD_KINDS = {"PrometheusRule", "ServiceMonitor"}

Doc = dict[str, Any]


def _find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [d for d in docs
            if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]


def _one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = _find(docs, kind, name)
    assert len(found) == 1, f"expected exactly one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def ha(kustomize_render: Callable[[Path], list[Doc]]) -> list[Doc]:
    return kustomize_render(HA)


def test_rendered_objects_validate(ha: list[Doc]) -> None:
    assert ha
    for doc in ha:
        if doc["kind"] in CRD_KINDS:
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"overlay ha: {doc['kind']}/{doc['metadata']['name']} is invalid "
                            f"for Kubernetes {version}: {exc.message} at {list(exc.path)}")
    for doc in ha:
        if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"].get("namespace") == "remediator", doc["metadata"]


def test_three_replicas_rolled_one_at_a_time_on_different_nodes(ha: list[Doc]) -> None:
    spec = _one(ha, "Deployment", "remediator")["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = spec["template"]["spec"]
    terms = pod["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"]
    by_node = [t for t in terms if t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"]
    assert by_node
    assert by_node[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == \
        spec["selector"]["matchLabels"]
    pdb = _one(ha, "PodDisruptionBudget", "remediator")["spec"]
    assert pdb["minAvailable"] == 2
    assert pdb["selector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_database_url_from_a_secret_and_no_volume_claim(ha: list[Doc]) -> None:
    pod = _one(ha, "Deployment", "remediator")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    ref = env["REMEDIATOR_STORE__PATH"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "remediator-postgres", "key": "url"}
    assert "value" not in env["REMEDIATOR_STORE__PATH"], "never the URL (a password) inline"
    assert not _find(ha, "PersistentVolumeClaim")
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/lib/remediator" not in mounts
    names = {v["name"] for v in pod["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= names
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_network_policy_lets_the_pods_reach_postgresql(ha: list[Doc]) -> None:
    egress = _one(ha, "NetworkPolicy", "remediator")["spec"]["egress"]
    ports = {(p["port"], p["protocol"]) for rule in egress for p in rule.get("ports", [])}
    assert (5432, "TCP") in ports


def test_config_with_the_secret_env_selects_postgresql(ha: list[Doc], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings_module = pytest.importorskip("remediator.settings")
    for key in [k for k in os.environ if k.startswith("REMEDIATOR_")]:
        monkeypatch.delenv(key)
    [config_map] = [d for d in _find(ha, "ConfigMap") if "config.yaml" in d.get("data", {})]
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"], encoding="utf-8")
    url = "postgresql://remediator:secret@postgres.db.svc:5432/remediator"
    monkeypatch.setenv("REMEDIATOR_STORE__PATH", url)
    s = settings_module.load_settings(path)
    assert s.store.path == url
    from remediator.store.postgres import is_postgres_url
    assert is_postgres_url(s.store.path)
    assert yaml.safe_load(config_map["data"]["config.yaml"])["kubernetes"]["mode"] == \
        "in-cluster"
