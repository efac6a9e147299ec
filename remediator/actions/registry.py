"""The catalogue: action names → their params model, what they need, and (lazily)
their implementation. Loading a playbook checks names and params here."""

from __future__ import annotations

import functools
import importlib
from typing import Any

from remediator.actions import params as p
from remediator.engine.contract import Action, ActionSpec

_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")

CATALOGUE: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec("kubernetes.restart", p.RestartParams, "rollout restart (kubectl semantics)",
                   needs_target=True, target_kinds=_WORKLOADS, mutates_cluster=True,
                   ports=("cluster",),
                   implementation="remediator.actions.kubernetes:Restart"),
        ActionSpec("kubernetes.scale", p.ScaleParams, "scale through the scale subresource",
                   needs_target=True, target_kinds=("Deployment", "StatefulSet"),
                   mutates_cluster=True, ports=("cluster",),
                   implementation="remediator.actions.kubernetes:Scale"),
        ActionSpec("kubernetes.rollback", p.RollbackParams, "rollout undo (kubectl semantics)",
                   needs_target=True, target_kinds=_WORKLOADS, mutates_cluster=True,
                   ports=("cluster",),
                   implementation="remediator.actions.kubernetes:Rollback"),
        ActionSpec("kubernetes.delete_pod", p.DeletePodParams, "delete the alert's pod(s)",
                   needs_target=True, target_kinds=(*_WORKLOADS, "Pod"), mutates_cluster=True,
                   ports=("cluster",),
                   implementation="remediator.actions.kubernetes:DeletePod"),
        ActionSpec("kubernetes.cordon", p.CordonParams, "cordon the Node (kubectl cordon)",
                   needs_target=True, target_kinds=("Node",), mutates_cluster=True,
                   ports=("cluster",), implementation="remediator.actions.nodes:Cordon"),
        ActionSpec("kubernetes.uncordon", p.UncordonParams, "uncordon the Node (kubectl uncordon)",
                   needs_target=True, target_kinds=("Node",), mutates_cluster=True,
                   ports=("cluster",), implementation="remediator.actions.nodes:Uncordon"),
        ActionSpec("kubernetes.drain", p.DrainParams,
                   "drain the Node through the Eviction API (kubectl drain)",
                   needs_target=True, target_kinds=("Node",), mutates_cluster=True,
                   ports=("cluster",), implementation="remediator.actions.nodes:Drain"),
        ActionSpec("kubernetes.isolate_pod", p.IsolatePodParams,
                   "relabel the alert's pod out of its Deployment and Services",
                   needs_target=True, target_kinds=("Deployment",), mutates_cluster=True,
                   ports=("cluster",), undone_on_close=True,
                   why_not=(("StatefulSet", p.ISOLATE_STATEFULSET),),
                   implementation="remediator.actions.isolation:IsolatePod"),
        ActionSpec("kubernetes.network_isolate", p.NetworkIsolateParams,
                   "deny all traffic to the alert's pod until the incident closes",
                   needs_target=True, target_kinds=(*_WORKLOADS, "Pod"), mutates_cluster=True,
                   ports=("cluster",), undone_on_close=True,
                   implementation="remediator.actions.isolation:NetworkIsolate"),
        ActionSpec("jira.incident", p.JiraIncidentParams, "open the incident's Jira ticket",
                   ports=("tickets",), implementation="remediator.actions.humans:JiraIncident"),
        ActionSpec("slack.notify", p.SlackNotifyParams, "post to the incident's Slack thread",
                   ports=("chat",), implementation="remediator.actions.humans:SlackNotify"),
        ActionSpec("slack.page", p.SlackPageParams, "page the on-call group in Slack",
                   ports=("chat",), implementation="remediator.actions.humans:SlackPage"),
        ActionSpec("http.post", p.HttpPostParams, "POST JSON to a fixed URL",
                   ports=("http",), implementation="remediator.actions.generic:HttpPost"),
        ActionSpec("wait", p.WaitParams, "wait before the next step",
                   implementation="remediator.actions.generic:Wait"),
    )
}


def get(name: str) -> ActionSpec:
    try:
        return CATALOGUE[name]
    except KeyError:
        known = ", ".join(sorted(CATALOGUE))
        raise KeyError(f"unknown action {name!r} (known: {known})") from None


@functools.cache
def implementation(name: str) -> Action[Any]:
    """The action's implementation object (imported on first use, then shared, so that
    per-key locks inside an action hold across incidents)."""
    spec = get(name)
    module, _, cls = spec.implementation.partition(":")
    impl: Action[Any] = getattr(importlib.import_module(module), cls)()
    return impl
