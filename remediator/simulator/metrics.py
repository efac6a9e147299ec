"""The simulator's Prometheus ``/metrics``: application traffic and kube-state-metrics.

Per pod ``http_requests_total{namespace,deployment,pod,code}`` grows by
``REQUESTS_PER_SECOND`` for each serving pod (ready, or crash-looping on a bad
image): ~90% code 500 on a bad template, ~0.1% otherwise. The gauges mirror the
kube-state-metrics names, read from the store at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterable

from remediator.simulator.controller import DEPLOY, POD, RS, Controller, controller_uid, is_ready
from remediator.simulator.store import Obj

REQUESTS_PER_SECOND = 10.0
BAD_ERROR_RATIO = 0.9
GOOD_ERROR_RATIO = 0.001


def _labels(**labels: str) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.requests: dict[tuple[str, str, str, str], float] = {}

    def _pods_by_deployment(self) -> Iterable[tuple[Obj, Obj]]:
        store = self.controller.store
        deployments = {d["metadata"]["uid"]: d for d in store.list(DEPLOY)}
        rs_owner = {rs["metadata"]["uid"]: deployments.get(controller_uid(rs) or "")
                    for rs in store.list(RS)}
        for pod in store.list(POD):
            d = rs_owner.get(controller_uid(pod) or "")
            if d is not None:
                yield d, pod

    def advance(self, seconds: float) -> None:
        """Count ``seconds`` of traffic (called on every controller tick)."""
        live = set()
        for d, pod in self._pods_by_deployment():
            ns, dep = d["metadata"]["namespace"], d["metadata"]["name"]
            name = pod["metadata"]["name"]
            live.add((ns, name))
            bad = self.controller.is_bad(pod)
            if not (bad or is_ready(pod)):
                continue
            total = REQUESTS_PER_SECOND * seconds
            errors = total * (BAD_ERROR_RATIO if bad else GOOD_ERROR_RATIO)
            for code, n in (("200", total - errors), ("500", errors)):
                key = (ns, dep, name, code)
                self.requests[key] = self.requests.get(key, 0.0) + n
        for key in [k for k in self.requests if (k[0], k[2]) not in live]:
            del self.requests[key]

    def render(self) -> str:
        lines = ["# HELP http_requests_total HTTP requests served by the pod.",
                 "# TYPE http_requests_total counter"]
        for (ns, dep, pod_name, code), value in sorted(self.requests.items()):
            lb = _labels(namespace=ns, deployment=dep, pod=pod_name, code=code)
            lines.append(f"http_requests_total{lb} {value:.3f}")
        store = self.controller.store
        gauges: dict[str, list[str]] = {
            "kube_deployment_spec_replicas": [], "kube_deployment_status_replicas_available": [],
            "kube_deployment_status_replicas_updated": [], "kube_deployment_status_replicas": [],
            "kube_deployment_spec_paused": [], "kube_deployment_metadata_generation": [],
            "kube_deployment_status_observed_generation": []}
        for d in store.list(DEPLOY):
            lb = _labels(namespace=d["metadata"]["namespace"], deployment=d["metadata"]["name"])
            st, spec = d.get("status") or {}, d["spec"]
            for metric, value in (
                    ("kube_deployment_spec_replicas", spec.get("replicas", 1)),
                    ("kube_deployment_status_replicas_available", st.get("availableReplicas", 0)),
                    ("kube_deployment_status_replicas_updated", st.get("updatedReplicas", 0)),
                    ("kube_deployment_status_replicas", st.get("replicas", 0)),
                    ("kube_deployment_spec_paused", int(bool(spec.get("paused")))),
                    ("kube_deployment_metadata_generation", d["metadata"]["generation"]),
                    ("kube_deployment_status_observed_generation",
                     st.get("observedGeneration", 0))):
                gauges[metric].append(f"{metric}{lb} {value}")
        restarts: list[str] = []
        waiting: list[str] = []
        for pod in store.list(POD):
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                lb = _labels(namespace=ns, pod=name, container=cs["name"])
                restarts.append(f"kube_pod_container_status_restarts_total{lb} "
                                f"{cs.get('restartCount', 0)}")
                reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
                if reason:
                    wl = _labels(namespace=ns, pod=name, container=cs["name"], reason=reason)
                    waiting.append(f"kube_pod_container_status_waiting_reason{wl} 1")
        for gauge, samples in gauges.items():
            lines += [f"# HELP {gauge} kube-state-metrics compatible gauge.",
                      f"# TYPE {gauge} gauge",
                      *samples]
        lines += ["# HELP kube_pod_container_status_restarts_total Container restarts.",
                  "# TYPE kube_pod_container_status_restarts_total counter", *restarts,
                  "# HELP kube_pod_container_status_waiting_reason Why a container is waiting.",
                  "# TYPE kube_pod_container_status_waiting_reason gauge", *waiting]
        return "\n".join(lines) + "\n"
