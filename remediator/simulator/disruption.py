"""The ``pods/eviction`` subresource, as the API server's eviction REST handler answers it.

An Eviction for a pod selected by no PodDisruptionBudget deletes it (201). With one
PDB: when its ``status.disruptionsAllowed`` is 0 the answer is 429
("Cannot evict pod as it would violate the pod's disruption budget."), otherwise the
budget is charged (``disruptionsAllowed - 1``, the pod under ``disruptedPods``) and the
pod deleted. A pod that is not Ready is evicted without charging the budget while the
budget is met (``unhealthyPodEvictionPolicy: IfHealthyBudget``, the default). More
than one PDB selecting the pod is a 500, as the real server answers.
"""

from __future__ import annotations

from typing import Any

from remediator.simulator.controller import PDB, POD, Controller, is_ready
from remediator.simulator.store import (
    ApiError,
    Obj,
    Store,
    parse_label_selector,
    rfc3339,
    selector_string,
)

SUCCESS: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "code": 201}


def _check_body(body: Any, namespace: str, name: str) -> None:
    if not isinstance(body, dict) or body.get("kind") != "Eviction":
        raise ApiError(400, "the body of an eviction must be an Eviction (policy/v1)")
    meta = body.get("metadata") or {}
    if meta.get("name") != name:
        raise ApiError(400, f"name in URL does not match name in Eviction object: "
                       f"{name} != {meta.get('name')}")
    if meta.get("namespace", namespace) != namespace:
        raise ApiError(400, "namespace in URL does not match namespace in Eviction object")


def evict(store: Store, controller: Controller, namespace: str, name: str, body: Any) -> Obj:
    _check_body(body, namespace, name)
    pod = store.get(POD, namespace, name)
    phase = (pod.get("status") or {}).get("phase")
    labels = pod["metadata"].get("labels") or {}
    pdbs = [b for b in store.list(PDB, namespace)
            if parse_label_selector(selector_string((b.get("spec") or {}).get("selector")
                                                    or {}))(labels)]
    if phase in ("Succeeded", "Failed", "Pending") or not pdbs:
        return _delete(store, controller, namespace, name)
    if len(pdbs) > 1:
        raise ApiError(500, "This pod has more than one PodDisruptionBudget, which the eviction "
                       "subresource does not support.")
    pdb = pdbs[0]
    status = pdb.get("status") or {}
    healthy, desired = status.get("currentHealthy", 0), status.get("desiredHealthy", 0)
    if not is_ready(pod) and healthy >= desired:
        return _delete(store, controller, namespace, name)
    if status.get("observedGeneration", 0) < pdb["metadata"].get("generation", 1) \
            or status.get("disruptionsAllowed", 0) <= 0:
        err = ApiError(429, "Cannot evict pod as it would violate the pod's disruption budget.",
                       details={"causes": [{"reason": "DisruptionBudget", "message":
                                            f"The disruption budget {pdb['metadata']['name']} "
                                            f"needs {desired} healthy pods and has {healthy} "
                                            "currently"}]})
        raise err
    status["disruptionsAllowed"] = status["disruptionsAllowed"] - 1
    status.setdefault("disruptedPods", {})[name] = rfc3339(store.clock)
    pdb["status"] = status
    store.update(PDB, pdb, subresource="status", check_version=False)
    return _delete(store, controller, namespace, name)


def _delete(store: Store, controller: Controller, namespace: str, name: str) -> Obj:
    store.delete(POD, namespace, name)
    controller.reconcile()
    return dict(SUCCESS)
