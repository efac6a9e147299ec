"""Migration 0010: a verification's polls are kept in 30 slots, overwritten in turn.

0009 kept the first poll and the latest 29 by inserting each poll under its number
and deleting the one that fell out. On SQLite, in a table clustered by incident
(WITHOUT ROWID), the insert split a full leaf every few polls and the delete dirtied
another page: ~31 KiB written per poll (WAL and checkpoint) once 30 polls were kept,
~24 KiB before, with 5,000 incidents verifying every 5 s. Now the first poll has slot 1
and the others take slots 2-30 in turn (``records.poll_slot``): a poll overwrites one
row in place, nothing is deleted. On SQLite the rows are in a rowid table (a new row
is appended, next to the other incidents' new rows) with a unique index on the slot:
~16 KiB per poll, 8 of them the incident's ``updated_at``. The number ``n`` stays a
column and still orders the polls.

The rows there are keep their numbers; each gets the slot of its number, and where two
would share a slot the later one stays (0009 kept consecutive numbers: none do).
"""

NAME = "poll_slots"

SQLITE = """
CREATE TABLE verify_polls_slots (
    incident_id TEXT NOT NULL,
    phase       TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    slot        INTEGER NOT NULL,          -- 1: the first poll; 2-30: the latest, in turn
    n           INTEGER NOT NULL,          -- the poll's number in its verification
    record      TEXT NOT NULL              -- VerifyPoll as JSON
);
CREATE UNIQUE INDEX verify_polls_slot ON verify_polls_slots(incident_id, phase, idx, slot);
INSERT OR REPLACE INTO verify_polls_slots(incident_id, phase, idx, slot, n, record)
SELECT incident_id, phase, idx, CASE WHEN n = 1 THEN 1 ELSE 2 + (n - 2) % 29 END, n, record
FROM verify_polls ORDER BY incident_id, phase, idx, n;
DROP TABLE verify_polls;
ALTER TABLE verify_polls_slots RENAME TO verify_polls;
"""

POSTGRES = """
ALTER TABLE verify_polls ADD COLUMN slot INTEGER;
UPDATE verify_polls SET slot = CASE WHEN n = 1 THEN 1 ELSE 2 + (n - 2) % 29 END;
DELETE FROM verify_polls a USING verify_polls b
WHERE a.incident_id = b.incident_id AND a.phase = b.phase AND a.idx = b.idx
  AND a.slot = b.slot AND a.n < b.n;
ALTER TABLE verify_polls ALTER COLUMN slot SET NOT NULL;
ALTER TABLE verify_polls DROP CONSTRAINT verify_polls_pkey;
ALTER TABLE verify_polls ADD PRIMARY KEY (incident_id, phase, idx, slot);
"""
