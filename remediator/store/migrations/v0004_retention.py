"""Migration 0004: what the retention pass reads, indexed.

The pass looks for closed incidents by ``closed_at`` (a partial index: open ones have
none) and for the approvals of the incidents it deletes. Nothing is indexed on
``alerts``: its indexes are paid by every intake commit, and the pass finds alerts
through the incidents it deletes and the existing ``alerts_outcome`` index. Nothing
else belongs here (SQLite's ``auto_vacuum`` cannot be changed inside a transaction:
``SqliteBase.open`` sets it on new files).
"""

NAME = "retention"

SQLITE = """
CREATE INDEX IF NOT EXISTS incidents_closed ON incidents(closed_at) WHERE closed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS approvals_incident ON approvals(incident_id, step_index);
"""

POSTGRES = """
CREATE INDEX IF NOT EXISTS incidents_closed ON incidents(closed_at) WHERE closed_at IS NOT NULL;
"""
