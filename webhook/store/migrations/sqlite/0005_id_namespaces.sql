-- Provider ids live in per-source namespaces (issue 11): `message_id` keeps the id as the
-- provider sent it (shown by the API and exports); `dedupe_key` ("twilio:SM...",
-- "mail:<Message-Id>", "review:7", "import:...") is the internal idempotency key, unique.
-- A mail whose Message-Id is "review:2" can no longer swallow review item 2's
-- confirmation, and the same text sent by two providers never collides.
-- SQLite cannot drop a UNIQUE constraint: the three tables are rebuilt (the runner turns
-- foreign keys off around migrations and checks them before committing).

CREATE TABLE consent_events_new (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('opt_out', 'opt_in')),
    source TEXT NOT NULL,
    keyword TEXT,
    language TEXT,
    match_kind TEXT,
    raw_text TEXT,
    message_id TEXT,
    config_version TEXT,
    reason TEXT,
    occurred_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    dedupe_key TEXT UNIQUE
);

INSERT INTO consent_events_new (id, channel, address, action, source, keyword, language, match_kind, raw_text,
                                message_id, config_version, reason, occurred_at, recorded_at, dedupe_key)
SELECT id, channel, address, action, source, keyword, language, match_kind, raw_text,
       message_id, config_version, reason, occurred_at, recorded_at,
       CASE
           WHEN message_id IS NULL THEN NULL
           WHEN source = 'keyword' THEN 'twilio:' || message_id
           WHEN source = 'carrier' THEN 'twilio-status:' || message_id
           WHEN source = 'inbound_mail' THEN 'mail:' || message_id
           WHEN source = 'import' THEN message_id
           WHEN source = 'admin' AND match_kind = 'review' THEN message_id
           ELSE source || ':' || message_id
       END
FROM consent_events;

DROP TABLE consent_events;
ALTER TABLE consent_events_new RENAME TO consent_events;

CREATE INDEX IF NOT EXISTS consent_events_by_address
    ON consent_events (channel, address, occurred_at);
-- The events page and exports list the log in event time (ties by id).
CREATE INDEX IF NOT EXISTS consent_events_by_time
    ON consent_events (occurred_at, id);

CREATE TRIGGER IF NOT EXISTS consent_events_no_update
BEFORE UPDATE ON consent_events
BEGIN
    SELECT RAISE(ABORT, 'consent_events is append-only');
END;

CREATE TRIGGER IF NOT EXISTS consent_events_no_delete
BEFORE DELETE ON consent_events
WHEN NOT EXISTS (SELECT 1 FROM erasure_in_progress)
BEGIN
    SELECT RAISE(ABORT, 'consent_events is append-only (only an erasure may delete)');
END;

CREATE TABLE feedback_new (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('with_opt_out', 'after_opt_out', 'page')),
    text TEXT NOT NULL,
    message_id TEXT,
    received_at TEXT NOT NULL,
    dedupe_key TEXT UNIQUE
);

INSERT INTO feedback_new (id, channel, address, kind, text, message_id, received_at, dedupe_key)
SELECT id, channel, address, kind, text, message_id, received_at,
       CASE WHEN message_id IS NULL THEN NULL ELSE 'twilio:' || message_id END
FROM feedback;

DROP TABLE feedback;
ALTER TABLE feedback_new RENAME TO feedback;
CREATE INDEX IF NOT EXISTS feedback_by_address ON feedback (channel, address, received_at);
CREATE INDEX IF NOT EXISTS feedback_by_time ON feedback (received_at);

CREATE TABLE review_items_new (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    text TEXT NOT NULL,
    message_id TEXT,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'confirmed', 'dismissed')),
    decided_by TEXT,
    decided_at TEXT,
    dedupe_key TEXT UNIQUE,
    -- The keyword version in force when the message arrived: a confirmation records it.
    config_version TEXT,
    -- Why the message was queued, in an admin's words.
    reason TEXT
);

INSERT INTO review_items_new (id, channel, address, text, message_id, received_at, status, decided_by, decided_at,
                              dedupe_key)
SELECT id, channel, address, text, message_id, received_at, status, decided_by, decided_at,
       CASE WHEN message_id IS NULL THEN NULL ELSE 'twilio:' || message_id END
FROM review_items;

DROP TABLE review_items;
ALTER TABLE review_items_new RENAME TO review_items;
CREATE INDEX IF NOT EXISTS review_items_by_status ON review_items (status, id);
CREATE INDEX IF NOT EXISTS review_items_by_address ON review_items (channel, address);
