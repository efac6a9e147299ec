"""Migration 0005: the incident list's pages, indexed.

``incident_page`` reads incidents newest first by ``(created_at, id)`` from a key
(keyset pagination), optionally of one state or one playbook: one index per way in,
each ending in ``(created_at, id)`` so that a page is a range scan of ``limit`` rows.
``incidents_state`` is dropped: ``incidents_state_created`` starts with ``state`` and
serves what it served (the open incidents, their count), so intake and state changes
keep paying for the same number of indexes on ``state``. PostgreSQL has had
``incidents_created`` since 0001.
"""

NAME = "incident_pages"

SQLITE = """
CREATE INDEX IF NOT EXISTS incidents_created ON incidents(created_at, id);
CREATE INDEX IF NOT EXISTS incidents_state_created ON incidents(state, created_at, id);
CREATE INDEX IF NOT EXISTS incidents_playbook_created ON incidents(playbook, created_at, id);
DROP INDEX IF EXISTS incidents_state;
"""

POSTGRES = """
CREATE INDEX IF NOT EXISTS incidents_state_created ON incidents(state, created_at, id);
CREATE INDEX IF NOT EXISTS incidents_playbook_created ON incidents(playbook, created_at, id);
DROP INDEX IF EXISTS incidents_state;
"""
