"""A simulated Kubernetes API server (plus Prometheus metrics) for demos and tests.

The real kubernetes_asyncio client and kubectl talk to it over HTTP. Modules:

* ``store``      objects, versions, selectors, watches (no HTTP)
* ``patching``   strategic-merge, merge and JSON patch
* ``objects``    builders of complete object shapes
* ``controller`` deployment/replica-set/pod loops on an injected clock; bad images;
                 the scheduler (Ready, uncordoned nodes), PDB status, ControllerRevisions
* ``disruption`` the ``pods/eviction`` subresource, honouring PodDisruptionBudgets
* ``api``        the REST handlers; ``discovery`` the discovery documents
* ``control``    ``/sim/v1/…`` fault injection, call log, bad images; auth middleware
* ``conditions`` what diagnosis reads: nodes, PDB status, pod states per image, pod logs
* ``metrics``    ``/metrics`` (http_requests_total and kube-state-metrics gauges)
* ``seed``       the seed format and the default example cluster
* ``server``     ``Simulator``: wires it together, start/stop, kubeconfig
* ``__main__``   ``main(argv)`` for ``remediator simulator``
"""

from remediator.simulator.seed import DEFAULT_SEED, Seed
from remediator.simulator.server import Simulator

__all__ = ["DEFAULT_SEED", "Seed", "Simulator"]
