"""What isolation leaves behind, undone when its incident closes.

``kubernetes.network_isolate`` leaves a NetworkPolicy and a quarantine label on the pod;
``kubernetes.isolate_pod`` leaves a pod out of its workload, kept for debugging. Both are
marked with ``remediator.io/incident=<id>`` in the cluster itself, so nothing here needs
a table: when an incident closes the policy and the label go, and each isolated pod is
deleted (uid precondition) once its ``remediator.io/delete-after`` time has passed
(a timer on the engine's clock until then). At start, the same is done for every
incident that closed while the daemon was down, and timers are set again.
"""

from __future__ import annotations

import logging
from datetime import datetime

from remediator.clock import Clock
from remediator.engine.contract import Catalogue
from remediator.engine.supervisor import Supervisor
from remediator.errors import PermanentError, TemporaryError
from remediator.ports.cluster import (
    DELETE_AFTER,
    INCIDENT_LABEL,
    ISOLATED_LABEL,
    QUARANTINE_LABEL,
    ClusterApi,
    KubeObject,
)
from remediator.ports.store import Store

log = logging.getLogger("remediator.engine")


def undone_on_close(catalogue: Catalogue, action: str) -> bool:
    """Whether ``action`` (a step's; escalations are named otherwise) leaves marks the
    engine undoes when the incident closes."""
    try:
        return catalogue.get(action).undone_on_close
    except KeyError:
        return False


class Quarantine:
    def __init__(self, clusters: list[ClusterApi], store: Store, clock: Clock,
                 tasks: Supervisor) -> None:
        self.clusters, self.store, self.clock, self.tasks = clusters, store, clock, tasks
        self._timers: set[str] = set()

    async def incident_closed(self, incident_id: str) -> None:
        """Lift the incident's network quarantine; delete (or time) its isolated pods."""
        for cluster in self.clusters:
            try:
                for pod in await cluster.list_all_pods(
                        f"{INCIDENT_LABEL}={incident_id},{ISOLATED_LABEL}"):
                    await self._expire(cluster, pod)
                await self._lift(cluster, incident_id)
            except (TemporaryError, PermanentError) as err:
                log.warning("could not undo the isolation of incident %s (retried at the next "
                            "start): %s", incident_id, err)

    async def sweep(self) -> None:
        """At start: undo what belongs to incidents that closed (or are gone)."""
        for cluster in self.clusters:
            try:
                found = list(await cluster.list_network_policies(QUARANTINE_LABEL))
                found += await cluster.list_all_pods(ISOLATED_LABEL)
            except (TemporaryError, PermanentError) as err:
                log.warning("could not look for isolation left by closed incidents: %s", err)
                continue
            incidents = {(o["metadata"].get("labels") or {}).get(INCIDENT_LABEL, "")
                         for o in found}
            for incident_id in sorted(incidents):
                view = await self.store.get_incident(incident_id) if incident_id else None
                if view is None or view.state.closed:
                    await self.incident_closed(incident_id)

    async def _lift(self, cluster: ClusterApi, incident_id: str) -> None:
        """Delete the incident's NetworkPolicies and their pods' quarantine label; a pod
        that is also isolated and kept for debugging stays cut off until it is deleted."""
        for policy in await cluster.list_network_policies(
                f"{INCIDENT_LABEL}={incident_id},{QUARANTINE_LABEL}"):
            meta = policy["metadata"]
            value = (meta.get("labels") or {}).get(QUARANTINE_LABEL, "")
            pods = await cluster.list_pods(meta["namespace"], f"{QUARANTINE_LABEL}={value}")
            if any(p["metadata"]["uid"] in self._timers for p in pods):
                continue
            for pod in pods:
                await cluster.patch_pod(meta["namespace"], pod["metadata"]["name"],
                                        {"metadata": {"labels": {QUARANTINE_LABEL: None}}})
            await cluster.delete_network_policy(meta["namespace"], meta["name"])
            log.info("lifted network quarantine %s/%s", meta["namespace"], meta["name"])

    async def _expire(self, cluster: ClusterApi, pod: KubeObject) -> None:
        meta = pod["metadata"]
        raw = (meta.get("annotations") or {}).get(DELETE_AFTER, "")
        try:
            due = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            wait = (due - self.clock.now()).total_seconds()
        except ValueError:
            wait = 0.0                                  # no valid time: due now
        if wait <= 0:
            await self._delete(cluster, pod)
        elif meta["uid"] not in self._timers and not self.tasks.closed:
            self._timers.add(meta["uid"])
            self.tasks.start(self._later(cluster, pod, wait), name=f"expire-{meta['name']}")

    async def _later(self, cluster: ClusterApi, pod: KubeObject, wait: float) -> None:
        try:
            await self.clock.sleep(wait)
            await self._delete(cluster, pod)
            self._timers.discard(pod["metadata"]["uid"])
            incident = (pod["metadata"].get("labels") or {}).get(INCIDENT_LABEL, "")
            await self._lift(cluster, incident)
        except (TemporaryError, PermanentError) as err:
            log.warning("could not delete isolated pod %s/%s (retried at the next start): %s",
                        pod["metadata"]["namespace"], pod["metadata"]["name"], err)
        finally:
            self._timers.discard(pod["metadata"]["uid"])

    async def _delete(self, cluster: ClusterApi, pod: KubeObject) -> None:
        meta = pod["metadata"]
        if await cluster.delete_pod(meta["namespace"], meta["name"], uid=meta["uid"]):
            log.info("deleted isolated pod %s/%s (kept for debugging until %s)",
                     meta["namespace"], meta["name"],
                     (meta.get("annotations") or {}).get(DELETE_AFTER))
