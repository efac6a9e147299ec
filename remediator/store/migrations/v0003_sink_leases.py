"""Migration 0003: sink leases, so that one replica at a time delivers each sink's
notifications (no double chat posts). Nothing on SQLite: its one process delivers all.
Nothing else belongs here.
"""

NAME = "sink_leases"

SQLITE = None

POSTGRES = """
CREATE TABLE IF NOT EXISTS sink_leases (
    sink        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL
);
"""
