"""Migration 0008: the action budget is counted per cluster.

``budget.cluster`` names the target's cluster (a key of ``kubernetes.clusters``);
``''`` is the default cluster, so reservations made before this step keep counting
against the default cluster's budget. The index serves ``reserve_action``'s count.
"""

NAME = "budget_clusters"

SQLITE = """
ALTER TABLE budget ADD COLUMN cluster TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS budget_cluster_at ON budget(cluster, at);
"""

POSTGRES = """
ALTER TABLE budget ADD COLUMN IF NOT EXISTS cluster TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS budget_cluster_at ON budget(cluster, at);
"""
