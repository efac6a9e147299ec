"""The kinds of finding the deterministic analyzers (``remediator.diagnosis``) produce.

Here, below the playbook model, so that a playbook's ``when: {finding: …}`` and
``skip_if: {finding: …}`` are checked against this list when it is loaded.
"""

from __future__ import annotations

#: kind → what it means (shown by ``remediator check`` errors and the README)
FINDING_KINDS: dict[str, str] = {
    "recent_rollout": "a new revision of the target rolled out shortly before the first alert",
    "config_changed": "a ConfigMap/Secret hash in the pod template changed in that rollout",
    "oom_killed": "a container was OOMKilled (its memory limit named)",
    "crash_loop": "a container is in CrashLoopBackOff (exit code, last log line)",
    "image_pull_failed": "a container cannot pull its image (ErrImagePull/ImagePullBackOff)",
    "readiness_failing": "a running pod is not ready",
    "pod_pending": "a pod is Pending (the scheduler's reason)",
    "node_not_ready": "a node running the target's pods is NotReady",
    "node_pressure": "a node running the target's pods has memory, disk or PID pressure",
    "hpa_at_max": "the target's HorizontalPodAutoscaler is at its maxReplicas",
    "pdb_blocking": "a PodDisruptionBudget covering the target allows no disruption",
    "replicas_below_desired": "fewer replicas are ready than the target wants",
}
