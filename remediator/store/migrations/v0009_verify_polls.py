"""Migration 0009: a verification's polls get a table of their own.

A step record used to carry its polls (the first and the latest 29): every poll
rewrote the whole record, ~12 KB once 30 polls were kept, and with 5,000 incidents
verifying every 5 s that was 1,000 such rewrites a second. Now each poll is one row,
numbered ``n`` within its step's verification (1: the first); the store keeps the
first and the latest ``POLLS_KEPT - 1`` and hands them back on the step record.

The polls already journaled move here, numbered as the record kept them (the first
is 1, the latest is ``poll_count``), and leave the records.
"""

NAME = "verify_polls"

SQLITE = """
CREATE TABLE IF NOT EXISTS verify_polls (
    incident_id TEXT NOT NULL,
    phase       TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    record      TEXT NOT NULL,            -- VerifyPoll as JSON
    PRIMARY KEY (incident_id, phase, idx, n)
) WITHOUT ROWID;
INSERT OR IGNORE INTO verify_polls(incident_id, phase, idx, n, record)
SELECT s.incident_id, s.phase, s.idx,
       CASE WHEN p.key = 0 THEN 1
            ELSE coalesce(json_extract(s.record, '$.poll_count'), 0)
                 - json_array_length(s.record, '$.polls') + 1 + p.key END,
       p.value
FROM steps s, json_each(s.record, '$.polls') p
WHERE json_type(s.record, '$.polls') = 'array';
UPDATE steps SET record = json_remove(record, '$.polls')
WHERE json_type(record, '$.polls') IS NOT NULL;
"""

POSTGRES = """
CREATE TABLE IF NOT EXISTS verify_polls (
    incident_id TEXT NOT NULL,
    phase       TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    record      TEXT NOT NULL,
    PRIMARY KEY (incident_id, phase, idx, n)
);
INSERT INTO verify_polls(incident_id, phase, idx, n, record)
SELECT s.incident_id, s.phase, s.idx,
       CASE WHEN p.ord = 1 THEN 1
            ELSE coalesce((s.record::jsonb ->> 'poll_count')::int, 0)
                 - jsonb_array_length(s.record::jsonb -> 'polls') + p.ord::int END,
       p.value::text
FROM steps s
CROSS JOIN LATERAL jsonb_array_elements(s.record::jsonb -> 'polls') WITH ORDINALITY
    AS p(value, ord)
WHERE jsonb_typeof(s.record::jsonb -> 'polls') = 'array'
ON CONFLICT DO NOTHING;
UPDATE steps SET record = (record::jsonb - 'polls')::text WHERE record::jsonb ? 'polls';
"""
