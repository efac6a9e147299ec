"""Migration 0007: the timers of on-call escalation chains.

One row per incident whose escalation policy is running: what fires next (``level``,
``round``: how many times the chain started over, ``step``: 0 the page, k the k-th
reminder), when (``due_at``), and since when the level runs (``level_at``, from which
reminders and ``ack_within`` count). A replica takes a due row with a lease
(``owner``, ``lease_until``) and moves it on with a compare-and-set, so each timer
fires on exactly one replica and a restart neither skips nor repeats a level.
"""

NAME = "chain_timers"

SQLITE = """
CREATE TABLE IF NOT EXISTS chain_timers (
    incident_id TEXT PRIMARY KEY,
    policy      TEXT NOT NULL,
    level       INTEGER NOT NULL,
    round       INTEGER NOT NULL,
    step        INTEGER NOT NULL,
    level_at    TEXT NOT NULL,
    due_at      TEXT NOT NULL,
    owner       TEXT,
    lease_until TEXT
);
CREATE INDEX IF NOT EXISTS chain_timers_due ON chain_timers(due_at);
"""

POSTGRES = """
CREATE TABLE IF NOT EXISTS chain_timers (
    incident_id TEXT PRIMARY KEY,
    policy      TEXT NOT NULL,
    level       INTEGER NOT NULL,
    round       INTEGER NOT NULL,
    step        INTEGER NOT NULL,
    level_at    TIMESTAMPTZ NOT NULL,
    due_at      TIMESTAMPTZ NOT NULL,
    owner       TEXT,
    lease_until TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS chain_timers_due ON chain_timers(due_at);
"""
