-- The append-only consent log and the current status it implies.
-- Indexes are only those today's queries use: each one costs every webhook write
-- (benchmarks/README.md). Add one with the query that needs it.
CREATE TABLE IF NOT EXISTS consent_events (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('opt_out', 'opt_in')),
    source TEXT NOT NULL,
    keyword TEXT,
    language TEXT,
    match_kind TEXT,
    raw_text TEXT,
    message_id TEXT UNIQUE,
    config_version TEXT,
    reason TEXT,
    occurred_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS consent_events_by_address
    ON consent_events (channel, address, occurred_at);

CREATE TABLE IF NOT EXISTS subscriptions (
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('subscribed', 'unsubscribed')),
    updated_at TEXT NOT NULL,
    event_id INTEGER NOT NULL REFERENCES consent_events (id),
    PRIMARY KEY (channel, address)
) WITHOUT ROWID;

-- The log is evidence: rows are never changed or removed.
CREATE TRIGGER IF NOT EXISTS consent_events_no_update
BEFORE UPDATE ON consent_events
BEGIN
    SELECT RAISE(ABORT, 'consent_events is append-only');
END;

CREATE TRIGGER IF NOT EXISTS consent_events_no_delete
BEFORE DELETE ON consent_events
BEGIN
    SELECT RAISE(ABORT, 'consent_events is append-only');
END;
