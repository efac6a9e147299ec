"""The PostgreSQL schema, as numbered migrations run on every start.

``PostgresStore.open`` takes ``pg_advisory_xact_lock(MIGRATION_LOCK)`` and, in that
transaction, applies the migrations not yet recorded in ``schema_migrations``:
replicas starting at once wait for each other instead of racing on the catalog.
Every statement is idempotent (``IF NOT EXISTS``) as well. Append new
migrations; never edit a released one.

Same tables and semantics as the SQLite schema (``schema.py``); times are
``timestamptz``, JSON is ``jsonb``.
"""

from __future__ import annotations

MIGRATION_LOCK = 0x72656D6564690001     # "remedi" + 1: serializes migrations
BUDGET_LOCK = 0x72656D6564690002        # serializes reserve_action (the global budget)

# States an incident can be attached to by a new alert (a partial unique index keeps
# one per key): the active ones and escalated. Must match IncidentState.
OPEN_STATES = ("open", "remediating", "awaiting_approval", "escalated")
_OPEN = "(" + ",".join(f"'{s}'" for s in OPEN_STATES) + ")"

MIGRATIONS: list[tuple[int, str]] = [
    (1, f"""
CREATE TABLE IF NOT EXISTS alerts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint   TEXT NOT NULL,
    starts_at     TIMESTAMPTZ NOT NULL,
    ends_at       TIMESTAMPTZ,
    status        TEXT NOT NULL,
    labels        JSONB NOT NULL,
    annotations   JSONB NOT NULL,
    generator_url TEXT NOT NULL DEFAULT '',
    received_at   TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    outcome       TEXT NOT NULL,
    UNIQUE (fingerprint, starts_at)
);
CREATE INDEX IF NOT EXISTS alerts_outcome ON alerts(outcome, id);

CREATE TABLE IF NOT EXISTS incidents (
    id             TEXT PRIMARY KEY,
    key            TEXT NOT NULL,
    playbook       TEXT NOT NULL,
    target         TEXT,
    state          TEXT NOT NULL,
    dry_run        BOOLEAN NOT NULL DEFAULT false,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    closed_at      TIMESTAMPTZ,
    first_alert_at TIMESTAMPTZ,
    context        JSONB NOT NULL DEFAULT '{{}}',
    notify         JSONB NOT NULL DEFAULT '{{}}',
    summary        TEXT NOT NULL DEFAULT '',
    owner          TEXT,
    lease_until    TIMESTAMPTZ
);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_open_key ON incidents(key)
    WHERE state IN {_OPEN};
CREATE INDEX IF NOT EXISTS incidents_state ON incidents(state);
CREATE INDEX IF NOT EXISTS incidents_key_closed ON incidents(key, closed_at);
CREATE INDEX IF NOT EXISTS incidents_created ON incidents(created_at, id);

CREATE TABLE IF NOT EXISTS incident_alerts (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    alert_id    BIGINT NOT NULL REFERENCES alerts(id),
    PRIMARY KEY (incident_id, alert_id)
);
CREATE INDEX IF NOT EXISTS incident_alerts_alert ON incident_alerts(alert_id);

CREATE TABLE IF NOT EXISTS steps (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    phase       TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    status      TEXT NOT NULL,
    record      TEXT NOT NULL,
    mutating    BOOLEAN NOT NULL DEFAULT false,
    intent_at   TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (incident_id, phase, idx)
);
CREATE INDEX IF NOT EXISTS steps_mutating ON steps(mutating, intent_at);

CREATE TABLE IF NOT EXISTS timeline (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    at          TIMESTAMPTZ NOT NULL,
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    data        JSONB NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS timeline_incident ON timeline(incident_id, id);

CREATE TABLE IF NOT EXISTS target_locks (
    target      TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS target_locks_incident ON target_locks(incident_id);

CREATE TABLE IF NOT EXISTS budget (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    incident_id TEXT NOT NULL,
    step        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS budget_at ON budget(at);

CREATE TABLE IF NOT EXISTS flags (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS outbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    event_id BIGINT NOT NULL,
    sink     TEXT NOT NULL,
    PRIMARY KEY (event_id, sink)
);
CREATE TABLE IF NOT EXISTS sink_state (
    incident_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (incident_id, key)
);

CREATE TABLE IF NOT EXISTS approvals (
    id           TEXT PRIMARY KEY,
    incident_id  TEXT NOT NULL,
    step_index   INTEGER NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    approvers    JSONB NOT NULL,
    decision     TEXT,
    decided_by   TEXT,
    decided_at   TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS approvals_incident ON approvals(incident_id, step_index);
"""),
    (2, """
-- One replica at a time delivers each sink's notifications (no double Slack posts).
CREATE TABLE IF NOT EXISTS sink_leases (
    sink        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL
);
"""),
]

BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""
