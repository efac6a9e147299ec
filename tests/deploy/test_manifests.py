"""The Kubernetes manifests in deploy/kustomize: schema-valid, and safe by construction.

What is checked:
- every YAML file parses; every core-API object (base files, the Secret template,
  the component, and the rendered overlays) validates against the Kubernetes
  OpenAPI schemas with ``kubernetes-validate`` in strict mode (unknown fields are
  errors), for the oldest and the newest Kubernetes minor we support;
- the rendered overlays keep the properties the daemon depends on: one replica,
  Recreate, the security context, probe paths, resources, the volumes and paths
  that config.yaml names, the NetworkPolicy's single port, the PDB choice;
- config.yaml agrees with the Deployment (port, store path, playbooks directory,
  secret files that the Secret template provides).

The CRD kinds (PrometheusRule, ServiceMonitor) have no schema in
kubernetes-validate; tests/deploy/test_observability.py checks them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUSTOMIZE = REPO / "deploy" / "kustomize"
BASE = KUSTOMIZE / "base"
NAMESPACE = "remediator"
# Oldest minor we support (unhealthyPodEvictionPolicy is GA from 1.31) and the
# newest schema set kubernetes-validate ships.
K8S_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
CRD_KINDS = {"PrometheusRule", "ServiceMonitor"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}

Doc = dict[str, Any]


def _load(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def _find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [d for d in docs
            if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]


def _one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = _find(docs, kind, name)
    assert len(found) == 1, f"expected exactly one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _validate(doc: Doc, where: str) -> None:
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']} is invalid for "
                        f"Kubernetes {version}: {exc.message} at {list(exc.path)}")


def _container(docs: list[Doc]) -> Doc:
    pod = _one(docs, "Deployment", "remediator")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return pod["containers"][0]


ALL_YAML = sorted(p for p in (REPO / "deploy").rglob("*.y*ml"))


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = _load(path)
    assert docs, f"{path} holds no YAML document"


# Plain manifests outside the rendered overlays: the base's files (including the
# Secret template that kustomization.yaml deliberately does not list), the
# component's RoleBindings, the production Ingress.
STANDALONE = [
    *sorted(BASE.glob("*.yaml")),
    *sorted((KUSTOMIZE / "components").rglob("rolebindings.yaml")),
    KUSTOMIZE / "overlays" / "production" / "ingress.yaml",
]
NOT_MANIFESTS = {"kustomization.yaml", "config.yaml"}


@pytest.mark.parametrize(
    "path", [p for p in STANDALONE if p.name not in NOT_MANIFESTS],
    ids=lambda p: str(p.relative_to(REPO)))
def test_manifest_file_validates_against_the_kubernetes_schema(path: Path) -> None:
    for doc in _load(path):
        if doc["kind"] in CRD_KINDS:
            continue  # no schema shipped; checked in test_observability.py
        _validate(doc, str(path.relative_to(REPO)))


def test_secret_template_is_not_applied_by_default() -> None:
    kustomization = _load(BASE / "kustomization.yaml")[0]
    assert "secret.example.yaml" not in kustomization["resources"]
    assert not kustomization.get("secretGenerator"), "the base must not generate real secrets"


@pytest.mark.parametrize("overlay", ["base", "dev", "production"])
def test_rendered_objects_validate(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
            "PersistentVolumeClaim", "NetworkPolicy", "ConfigMap", "Namespace",
            "PrometheusRule", "ServiceMonitor"} <= kinds
    for doc in docs:
        if doc["kind"] not in CRD_KINDS:
            _validate(doc, f"overlay {overlay}")


@pytest.mark.parametrize("overlay", ["base", "dev", "production"])
def test_everything_namespaced_lives_in_the_remediator_namespace(
        rendered: dict[str, list[Doc]], overlay: str) -> None:
    for doc in rendered[overlay]:
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in doc["metadata"]
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_deployment_is_a_single_recreated_replica(
        rendered: dict[str, list[Doc]], overlay: str) -> None:
    spec = _one(rendered[overlay], "Deployment", "remediator")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pvc = _one(rendered[overlay], "PersistentVolumeClaim", "remediator-data")["spec"]
    assert pvc["accessModes"] == ["ReadWriteOnce"]
    assert pvc["resources"]["requests"]["storage"] == "1Gi"


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_pod_security_is_restricted(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    pod = _one(docs, "Deployment", "remediator")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "remediator"
    assert pod["automountServiceAccountToken"] is True
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == 10001
    assert psc["fsGroup"] == 10001
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(forbidden), forbidden
    assert not any("hostPath" in v for v in pod["volumes"])
    csc = _container(docs)["securityContext"]
    assert csc["runAsNonRoot"] is True
    assert csc["runAsUser"] == 10001
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc.get("privileged", False) is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert csc["seccompProfile"] == {"type": "RuntimeDefault"}
    namespace = _one(docs, "Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_probes_ports_and_resources(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    c = _container(docs)
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"},
                              "limits": {"cpu": "500m", "memory": "256Mi"}}
    svc = _one(docs, "Service", "remediator")["spec"]
    assert svc["ports"] == [{"name": "http", "port": 8080, "targetPort": "http",
                             "protocol": "TCP"}]
    pod_labels = _one(docs, "Deployment", "remediator")["spec"]["template"]["metadata"]["labels"]
    assert svc["selector"].items() <= pod_labels.items()


def _mounts(docs: list[Doc]) -> dict[str, Doc]:
    return {m["mountPath"]: m for m in _container(docs)["volumeMounts"]}


def _volumes(docs: list[Doc]) -> dict[str, Doc]:
    pod = _one(docs, "Deployment", "remediator")["spec"]["template"]["spec"]
    return {v["name"]: v for v in pod["volumes"]}


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_volumes_match_the_runtime_contract(
        rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    mounts, volumes = _mounts(docs), _volumes(docs)
    assert set(mounts) == {"/var/lib/remediator", "/etc/remediator/config.yaml",
                           "/etc/remediator/playbooks", "/etc/remediator/secrets", "/tmp"}
    assert volumes[mounts["/var/lib/remediator"]["name"]]["persistentVolumeClaim"] == {
        "claimName": "remediator-data"}
    assert not mounts["/var/lib/remediator"].get("readOnly")
    for path in ("/etc/remediator/config.yaml", "/etc/remediator/playbooks",
                 "/etc/remediator/secrets"):
        assert mounts[path]["readOnly"] is True, path
    # Every ConfigMap the pod mounts is rendered (with its generated hash name).
    config_maps = {d["metadata"]["name"]: d for d in _find(docs, "ConfigMap")}
    config = volumes[mounts["/etc/remediator/config.yaml"]["name"]]["configMap"]["name"]
    assert mounts["/etc/remediator/config.yaml"]["subPath"] == "config.yaml"
    assert "config.yaml" in config_maps[config]["data"]
    playbooks = volumes[mounts["/etc/remediator/playbooks"]["name"]]["configMap"]["name"]
    assert playbooks.startswith("remediator-playbooks-"), "playbooks ConfigMap not generated"
    assert config_maps[playbooks]["data"], "no playbooks shipped"
    for name, text in config_maps[playbooks]["data"].items():
        assert name.endswith((".yaml", ".yml"))
        assert yaml.safe_load(text)["kind"] == "Playbook"
    secret = volumes[mounts["/etc/remediator/secrets"]["name"]]["secret"]
    assert secret["optional"] is False
    if overlay == "production":
        # created out of band; never rendered
        assert secret["secretName"] == "remediator-secrets"
        assert not _find(docs, "Secret")
    else:
        assert _one(docs, "Secret")["metadata"]["name"] == secret["secretName"]


def _secret_files(node: Any) -> list[str]:
    """Every ``*_file`` value in a config document, in document order."""
    if isinstance(node, dict):
        out = []
        for key, value in node.items():
            if key.endswith("_file") and isinstance(value, str):
                out.append(value)
            else:
                out.extend(_secret_files(value))
        return out
    if isinstance(node, list):
        return [f for item in node for f in _secret_files(item)]
    return []


def _config_map_data(docs: list[Doc], mount_path: str) -> dict[str, str]:
    volume = _volumes(docs)[_mounts(docs)[mount_path]["name"]]
    data: dict[str, str] = _one(docs, "ConfigMap", volume["configMap"]["name"])["data"]
    return data


def _mount_config_map(data: dict[str, str], target: Path) -> Path:
    """Lay the ConfigMap out as the kubelet does: ``..<timestamp>/`` holds the files,
    ``..data`` links to it, and each key is a symlink through ``..data``."""
    target.mkdir()
    stamp = target / "..2026_01_01_00_00_00.000000000"
    stamp.mkdir()
    for key, text in data.items():
        (stamp / key).write_text(text, encoding="utf-8")
    (target / "..data").symlink_to(stamp.name)
    for key in data:
        (target / key).symlink_to(Path("..data") / key)
    return target


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_config_loads_and_agrees_with_the_deployment(
        rendered: dict[str, list[Doc]], overlay: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """config.yaml loads with remediator's own settings loader, and its paths are
    the ones the Deployment mounts and the Secret template provides."""
    settings_module = pytest.importorskip("remediator.settings")
    for key in [k for k in os.environ if k.startswith("REMEDIATOR_")]:
        monkeypatch.delenv(key)
    docs = rendered[overlay]
    text = _config_map_data(docs, "/etc/remediator/config.yaml")["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    s = settings_module.load_settings(path)
    host, _, port = s.server.listen.rpartition(":")
    assert host == "0.0.0.0", "listen on all interfaces, or probes and the Service fail"
    assert int(port) == _container(docs)["ports"][0]["containerPort"] == 8080
    assert s.store.path == "/var/lib/remediator/remediator.db"
    assert Path(s.store.path).parent.as_posix() in _mounts(docs)
    assert s.playbooks == ["/etc/remediator/playbooks"]
    assert s.kubernetes.mode == "in-cluster"
    assert s.engine.dry_run is (overlay == "dev")
    assert s.prometheus.url
    assert s.alertmanager_url
    users = {u.name: u for u in s.server.auth.users}
    assert (users["alertmanager"].role, users["operator"].role) == ("webhook", "operator")
    assert s.server.auth.token_file is None         # no full-rights token in a cluster
    required = [users["alertmanager"].token_file, users["operator"].token_file]
    optional = [s.slack.token_file, s.slack.signing_secret_file, s.jira.api_token_file]
    # Slack and Jira are opt-in: the base and production configs name no secret of
    # theirs (a Secret without those keys must still start the pod); dev names them all
    assert all(f is None for f in optional) is (overlay == "production")
    files = [f for f in required + optional if f is not None]
    secret_keys = set(_load(BASE / "secret.example.yaml")[0]["stringData"])
    for file in files:
        assert file.parent.as_posix() == "/etc/remediator/secrets", file
    assert {f.name for f in files} <= secret_keys, "config files vs Secret keys"
    assert {"webhook-token", "operator-token"} <= {f.name for f in files}
    assert _secret_files(yaml.safe_load(text)) == [str(f) for f in files], (
        "every *_file in config.yaml is one the test knows")
    if overlay == "dev":
        assert set(_one(docs, "Secret")["data"]) == secret_keys


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_shipped_playbooks_load_from_a_configmap_mount(
        rendered: dict[str, list[Doc]], overlay: str, tmp_path: Path) -> None:
    """The playbooks ConfigMap, laid out as the kubelet mounts it (``..data``
    symlinks), loads with remediator's own loader; every action is in the catalogue."""
    loader = pytest.importorskip("remediator.loader")
    data = _config_map_data(rendered[overlay], "/etc/remediator/playbooks")
    mount = _mount_config_map(data, tmp_path / "playbooks")
    playbooks = loader.load_paths([mount])
    assert sorted(p.name for p in playbooks) == sorted(
        yaml.safe_load(t)["metadata"]["name"] for t in data.values())


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_network_policy_admits_only_port_8080(
        rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    policy = _one(docs, "NetworkPolicy", "remediator")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    pod_labels = _one(docs, "Deployment", "remediator")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    for rule in policy["ingress"]:
        assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
        assert rule["from"], "an ingress rule without 'from' admits every source"
    monitoring = policy["ingress"][0]["from"][0]
    assert monitoring["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"}
    assert monitoring["podSelector"]["matchExpressions"][0]["values"] == [
        "alertmanager", "prometheus"]
    egress_ports = {(p["port"], p["protocol"]) for r in policy["egress"] for p in r["ports"]}
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (9090, "TCP"), (9093, "TCP"),
                            (443, "TCP"), (6443, "TCP")}


def test_pdb_never_lets_a_drain_take_a_healthy_remediator_silently(
        rendered: dict[str, list[Doc]]) -> None:
    pdb = _one(rendered["production"], "PodDisruptionBudget", "remediator")["spec"]
    assert pdb == {
        "minAvailable": 1,
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
        "selector": {"matchLabels": {"app.kubernetes.io/name": "remediator",
                                     "app.kubernetes.io/component": "daemon"}},
    }
    assert not _find(rendered["dev"], "PodDisruptionBudget"), "dev drains must never block"


def test_production_pins_the_image_and_exposes_only_slack_interactions(
        rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["production"]
    image = _container(docs)["image"]
    assert not image.endswith(":latest"), image
    assert ":" in image.rsplit("/", 1)[-1] or "@sha256:" in image, image
    ingress = _one(docs, "Ingress", "remediator-slack")["spec"]
    paths = [p for rule in ingress["rules"] for p in rule["http"]["paths"]]
    assert [(p["path"], p["pathType"]) for p in paths] == [
        ("/api/v1/slack/interactions", "Exact")]
    assert ingress["tls"], "Slack only calls HTTPS endpoints"
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert _one(docs, kind, "remediator")["metadata"]["labels"]["release"]


def test_namespaced_rbac_component_replaces_the_cluster_binding(
        kustomize_render: Any, overlay_with_component: Path) -> None:
    docs = kustomize_render(overlay_with_component)
    assert not _find(docs, "ClusterRoleBinding")
    bindings = _find(docs, "RoleBinding")
    assert len(bindings) >= 1
    for binding in bindings:
        assert binding["metadata"]["namespace"] != NAMESPACE
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                      "kind": "ClusterRole", "name": "remediator"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "remediator",
                                        "namespace": NAMESPACE}]
        _validate(binding, "namespaced-rbac component")


def test_the_base_ships_the_repository_playbooks_unchanged() -> None:
    """deploy/'s playbooks are copies of playbooks/ (a crashloop-restart that differed
    from the one `check` and the README describe confused a new user)."""
    shipped = sorted((BASE / "playbooks").glob("*.yaml"))
    assert shipped
    for path in shipped:
        assert path.read_text() == (REPO / "playbooks" / path.name).read_text(), path.name
