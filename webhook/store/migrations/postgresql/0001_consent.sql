-- The append-only consent log and the current status it implies (PostgreSQL).
-- Idempotent: safe to run again on a database that already has it.
CREATE TABLE IF NOT EXISTS consent_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('opt_out', 'opt_in')),
    source TEXT NOT NULL,
    keyword TEXT,
    language TEXT,
    match_kind TEXT,
    raw_text TEXT,
    -- UNIQUE lets NULLs repeat: events without a message id never conflict.
    message_id TEXT UNIQUE,
    config_version TEXT,
    reason TEXT,
    occurred_at TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS consent_events_by_address
    ON consent_events (channel, address, occurred_at);

CREATE TABLE IF NOT EXISTS subscriptions (
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('subscribed', 'unsubscribed')),
    updated_at TIMESTAMPTZ NOT NULL,
    event_id BIGINT NOT NULL REFERENCES consent_events (id),
    PRIMARY KEY (channel, address)
);

-- The log is evidence: rows are never changed or removed.
CREATE OR REPLACE FUNCTION consent_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

DROP TRIGGER IF EXISTS consent_events_no_update ON consent_events;
CREATE TRIGGER consent_events_no_update
    BEFORE UPDATE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION consent_events_append_only();

DROP TRIGGER IF EXISTS consent_events_no_delete ON consent_events;
CREATE TRIGGER consent_events_no_delete
    BEFORE DELETE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION consent_events_append_only();

-- TRUNCATE skips row triggers; refuse it too (SQLite has no TRUNCATE to guard).
DROP TRIGGER IF EXISTS consent_events_no_truncate ON consent_events;
CREATE TRIGGER consent_events_no_truncate
    BEFORE TRUNCATE ON consent_events
    FOR EACH STATEMENT EXECUTE FUNCTION consent_events_append_only();
