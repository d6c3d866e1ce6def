-- Campaign messages (for attribution and opt-out rates), feedback, the review queue,
-- and lawful erasure (GDPR Art. 17) that keeps only a keyed hash of suppressed addresses.

-- One row per campaign message, by provider message id; status callbacks move it forward.
CREATE TABLE IF NOT EXISTS campaign_messages (
    message_id TEXT PRIMARY KEY,
    campaign TEXT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    -- 0 queued, 1 sent, 2 failed, 3 delivered, 4 read: callbacks arrive out of order, the stage only grows.
    stage INTEGER NOT NULL,
    sent_at TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Attribution: the latest message delivered to an address on a channel.
CREATE INDEX IF NOT EXISTS campaign_messages_by_address
    ON campaign_messages (channel, address, delivered_at);
CREATE INDEX IF NOT EXISTS campaign_messages_by_campaign
    ON campaign_messages (campaign, channel);

-- Why people leave: text sent with an opt-out, soon after it, or on the e-mail page.
CREATE TABLE IF NOT EXISTS feedback (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('with_opt_out', 'after_opt_out', 'page')),
    text TEXT NOT NULL,
    message_id TEXT UNIQUE,
    received_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX IF NOT EXISTS feedback_by_address ON feedback (channel, address, received_at);
CREATE INDEX IF NOT EXISTS feedback_by_time ON feedback (received_at);

-- Messages that look like an opt-out but were not honoured automatically.
CREATE TABLE IF NOT EXISTS review_items (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    text TEXT NOT NULL,
    message_id TEXT UNIQUE,
    received_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'confirmed', 'dismissed')),
    decided_by TEXT,
    decided_at TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS review_items_by_status ON review_items (status, id);
CREATE INDEX IF NOT EXISTS review_items_by_address ON review_items (channel, address);

-- What remains of an erased contact: a keyed hash per channel they had left.
CREATE TABLE IF NOT EXISTS erased_addresses (
    channel TEXT NOT NULL,
    address_hash TEXT NOT NULL,
    erased_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, address_hash)
);

-- The log stays append-only except inside an erasure's own transaction, which sets
-- the transaction-local setting unsub.erasing to 'on' (SET LOCAL) before deleting.
-- UPDATE and TRUNCATE stay refused.
CREATE OR REPLACE FUNCTION consent_events_delete_only_erasure() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('unsub.erasing', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'consent_events is append-only (only an erasure may delete)'
        USING ERRCODE = 'restrict_violation';
END;
$$;

DROP TRIGGER IF EXISTS consent_events_no_delete ON consent_events;
CREATE TRIGGER consent_events_no_delete
    BEFORE DELETE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION consent_events_delete_only_erasure();
