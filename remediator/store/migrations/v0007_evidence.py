"""Migration 0007: what was collected for an incident (pod logs, events).

One row per collected item (an ``EvidenceItem`` as JSON in ``record``), in the
order collected; ``add_evidence`` keeps the latest ``keep`` of an incident. Pruned
with the incident.
"""

NAME = "evidence"

SQLITE = """
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_incident ON evidence(incident_id, id);
"""

POSTGRES = """
CREATE TABLE IF NOT EXISTS evidence (
    id BIGSERIAL PRIMARY KEY,
    incident_id TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    kind TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_incident ON evidence(incident_id, id);
"""
