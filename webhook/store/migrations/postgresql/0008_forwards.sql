-- Forwarding (issue 18): the answer a business's own webhook gave to a forwarded message,
-- kept with the message so that Twilio's retry of it (the same MessageSid) gets the same
-- answer without calling the endpoint twice. Short-lived: rows older than two days go.
CREATE TABLE IF NOT EXISTS forwards (
    dedupe_key TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    -- calling: one process is forwarding it now; answered: the endpoint answered in time;
    -- failed: it did not, and the outbox delivers it later.
    state TEXT NOT NULL CHECK (state IN ('calling', 'answered', 'failed')),
    status_code INTEGER,
    content_type TEXT,
    answer BYTEA,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS forwards_by_time ON forwards (created_at);
CREATE INDEX IF NOT EXISTS forwards_by_address ON forwards (address);
