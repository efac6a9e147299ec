"""API discovery documents (/version, /api, /apis, /api/v1, /apis/{group}/{version}).

Legacy (non-aggregated) discovery: kubectl asks for the aggregated form first and
falls back to these when the answer is plain ``application/json``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from remediator.simulator.store import RESOURCES, ResourceType

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-remediator-sim",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
           "platform": "linux/amd64"}


def groups() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rt in RESOURCES:
        if rt.group:
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
    return out


def core_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def api_group(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": gvs,
            "preferredVersion": gvs[0]}


def group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{k: v for k, v in api_group(name, versions).items()
                        if k not in ("kind", "apiVersion")}
                       for name, versions in groups().items()]}


def _entry(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": rt.plural, "singularName": rt.kind.lower(), "namespaced": rt.namespaced,
        "kind": rt.kind, "verbs": list(rt.verbs),
        "storageVersionHash": hashlib.sha256(rt.qualified.encode()).hexdigest()[:11]}
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Pod"):
        entry["categories"] = ["all"]
    return entry


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    resources: list[dict[str, Any]] = []
    for rt in RESOURCES:
        if rt.group != group or rt.version != version:
            continue
        resources.append(_entry(rt))
        for sub in rt.subresources:
            if sub == "scale":
                resources.append({"name": f"{rt.plural}/scale", "singularName": "",
                                  "namespaced": rt.namespaced, "group": "autoscaling",
                                  "version": "v1", "kind": "Scale",
                                  "verbs": ["get", "patch", "update"]})
            elif sub == "eviction":
                resources.append({"name": f"{rt.plural}/eviction", "singularName": "",
                                  "namespaced": True, "group": "policy", "version": "v1",
                                  "kind": "Eviction", "verbs": ["create"]})
            else:
                resources.append({"name": f"{rt.plural}/{sub}", "singularName": "",
                                  "namespaced": rt.namespaced, "kind": rt.kind,
                                  "verbs": ["get"] if sub == "log" else
                                  ["get", "patch", "update"]})
    if not resources:
        return None
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}
