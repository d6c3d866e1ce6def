-- Consent webhooks (issue 12): endpoints, and an outbox of deliveries written in the same
-- transaction as the change they announce, so an acknowledged change is never left
-- unannounced; a worker claims and sends them, recording each attempt.

CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- whsec_...: signs deliveries (Standard Webhooks); shown once, kept to sign every attempt.
    secret TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    disabled_reason TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    -- Deliveries of one lane (an endpoint) and one address go out in the order recorded.
    lane TEXT NOT NULL,
    endpoint_id INTEGER REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    kind TEXT NOT NULL DEFAULT 'webhook',
    -- The same on every attempt (webhook-id).
    webhook_id TEXT NOT NULL UNIQUE,
    event_type TEXT,
    -- The consent event announced (no foreign key: an erasure deletes events, and these with them).
    event_id INTEGER,
    address TEXT,
    previous_status TEXT,
    status_after TEXT,
    target TEXT,
    -- Built from the event at the first attempt and kept, so every attempt sends the same body.
    body TEXT,
    -- contact.erased: the body (which names the address) is blanked once delivered or failed.
    blank_when_done INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_by TEXT,
    claimed_until TEXT,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    last_status INTEGER,
    last_error TEXT
);

-- What is due, and the first pending delivery of each contact on a lane.
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (lane, address, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_by_address ON outbox (address);
CREATE INDEX IF NOT EXISTS outbox_by_endpoint ON outbox (endpoint_id, id);

CREATE TABLE IF NOT EXISTS outbox_attempts (
    id INTEGER PRIMARY KEY,
    outbox_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    attempted_at TEXT NOT NULL,
    worker TEXT,
    status_code INTEGER,
    duration_ms INTEGER,
    response_excerpt TEXT,
    error TEXT
);

CREATE INDEX IF NOT EXISTS outbox_attempts_by_delivery ON outbox_attempts (outbox_id, id);
