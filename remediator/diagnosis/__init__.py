"""Deterministic diagnosis: what changed and what the pods, nodes and autoscalers say.

``snapshot`` (the data, and how it is read out of the API's JSON), ``analyzers``
(small pure functions: Snapshot → Findings), ``collector`` (builds a Snapshot
through the cluster ports). No model is needed; ``summary`` optionally asks one.
"""

from remediator.diagnosis.analyzers import ANALYZERS, analyze
from remediator.diagnosis.snapshot import Finding, Snapshot

__all__ = ["ANALYZERS", "Finding", "Snapshot", "analyze"]
