"""The ClusterRole grants exactly what remediator's Kubernetes actions use.

``remediator.actions.kubernetes.API_PERMISSIONS`` lists every (api_group,
resource, verb) the actions call. The ClusterRole in
deploy/kustomize/base/clusterrole.yaml must grant that set, in both directions:

- a permission an action uses but the Role lacks fails here, not as a 403 at 3 a.m.;
- a permission the Role grants but no action uses fails here too (least privilege).

If the module or the constant is missing, the test fails (it does not skip):
the Role cannot be checked against nothing.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTERROLE = REPO / "deploy" / "kustomize" / "base" / "clusterrole.yaml"

Permission = tuple[str, str, str]


def _rules_to_permissions(rules: list[dict[str, Any]]) -> set[Permission]:
    out: set[Permission] = set()
    for rule in rules:
        assert "nonResourceURLs" not in rule, "remediator needs no non-resource URLs"
        assert "resourceNames" not in rule, "resourceNames would not fit per-incident targets"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb))
    return out


def _granted(doc: dict[str, Any]) -> set[Permission]:
    assert doc["kind"] == "ClusterRole"
    assert "aggregationRule" not in doc, "an aggregated role grants whatever others add"
    return _rules_to_permissions(doc["rules"])


def _used() -> set[Permission]:
    try:
        module = importlib.import_module("remediator.actions.kubernetes")
    except ImportError as exc:
        error = exc
    else:
        error = None
    if error is not None:
        pytest.fail(
            "cannot import remediator.actions.kubernetes "
            f"({error}); the ClusterRole is checked against its API_PERMISSIONS constant",
            pytrace=False)
    permissions = getattr(module, "API_PERMISSIONS", None)
    if permissions is None:
        pytest.fail("remediator.actions.kubernetes has no API_PERMISSIONS: a tuple of "
                    "(api_group, resource, verb) tuples, e.g. ('apps', 'deployments', 'patch')",
                    pytrace=False)
    used = set()
    for entry in permissions:
        assert isinstance(entry, tuple), f"API_PERMISSIONS entry {entry!r} is not a tuple"
        assert len(entry) == 3, f"API_PERMISSIONS entry {entry!r}: want (group, resource, verb)"
        assert all(isinstance(part, str) for part in entry), entry
        used.add(entry)
    # diagnosis's extra reads (remediator.ports.inspect)
    return used | set(importlib.import_module("remediator.ports.inspect").API_PERMISSIONS)


def _base_role() -> dict[str, Any]:
    with CLUSTERROLE.open(encoding="utf-8") as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d]
    assert len(docs) == 1
    return docs[0]


def test_no_wildcards_or_dangerous_grants() -> None:
    granted = _granted(_base_role())
    for group, resource, verb in granted:
        assert "*" not in (group, resource, verb), (group, resource, verb)
        assert verb not in {"escalate", "bind", "impersonate", "deletecollection"}, (
            group, resource, verb)
        assert resource not in {"secrets", "configmaps", "pods/exec", "pods/attach",
                                "nodes/proxy", "serviceaccounts/token"}, (group, resource, verb)
        # cordon and drain patch spec.unschedulable; nothing may create, replace or
        # delete a Node; what is created is an Eviction or a quarantine NetworkPolicy
        if resource == "nodes":
            assert verb in {"get", "list", "patch"}, (group, resource, verb)
        if verb == "create":
            assert (group, resource) in {("", "pods/eviction"),
                                         ("networking.k8s.io", "networkpolicies")}, (
                group, resource, verb)


def test_every_permission_the_actions_use_is_granted() -> None:
    missing = _used() - _granted(_base_role())
    assert not missing, (
        "actions use API calls the ClusterRole does not grant (they would fail with 403): "
        f"{sorted(missing)}; add them to {CLUSTERROLE.relative_to(REPO)}")


def test_nothing_is_granted_that_no_action_uses() -> None:
    extra = _granted(_base_role()) - _used()
    assert not extra, (
        f"the ClusterRole grants permissions no action uses: {sorted(extra)}; remove them "
        f"from {CLUSTERROLE.relative_to(REPO)} (or list them in API_PERMISSIONS if used)")


@pytest.mark.parametrize("overlay", ["base", "dev", "production"])
def test_overlays_do_not_change_the_role(rendered: dict[str, list[dict[str, Any]]],
                                         overlay: str) -> None:
    roles = [d for d in rendered[overlay] if d["kind"] in {"ClusterRole", "Role"}]
    assert len(roles) == 1
    assert _granted(roles[0]) == _granted(_base_role())
    binding = next(d for d in rendered[overlay] if d["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == roles[0]["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "remediator", "namespace": "remediator"}]
