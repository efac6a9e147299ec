"""Migration 0002: incident leases (``owner``, ``lease_until``), for claiming incidents.

SQLite files made before it get the two columns added; on PostgreSQL, databases made
before versions were recorded already have them (``IF NOT EXISTS``). Nothing else belongs here.
"""

NAME = "incident_leases"

SQLITE = """
ALTER TABLE incidents ADD COLUMN owner TEXT;           -- the replica working on it
ALTER TABLE incidents ADD COLUMN lease_until TEXT;     -- until when its claim holds
"""

POSTGRES = """
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS owner TEXT;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS lease_until TIMESTAMPTZ;
"""
