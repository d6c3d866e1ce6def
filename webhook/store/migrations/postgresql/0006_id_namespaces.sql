-- Provider ids live in per-source namespaces (issue 11): `message_id` keeps the id as the
-- provider sent it (shown by the API and exports); `dedupe_key` ("twilio:SM...",
-- "mail:<Message-Id>", "review:7", "import:...") is the internal idempotency key, unique.
-- A mail whose Message-Id is "review:2" can no longer swallow review item 2's
-- confirmation, and the same text sent by two providers never collides.

ALTER TABLE consent_events ADD COLUMN IF NOT EXISTS dedupe_key TEXT;
-- The log is append-only; this one-time backfill of the new column is the exception.
ALTER TABLE consent_events DISABLE TRIGGER consent_events_no_update;
UPDATE consent_events SET dedupe_key = CASE
        WHEN source = 'keyword' THEN 'twilio:' || message_id
        WHEN source = 'carrier' THEN 'twilio-status:' || message_id
        WHEN source = 'inbound_mail' THEN 'mail:' || message_id
        WHEN source = 'import' THEN message_id
        WHEN source = 'admin' AND match_kind = 'review' THEN message_id
        ELSE source || ':' || message_id
    END
WHERE message_id IS NOT NULL AND dedupe_key IS NULL;
ALTER TABLE consent_events ENABLE TRIGGER consent_events_no_update;
ALTER TABLE consent_events DROP CONSTRAINT IF EXISTS consent_events_message_id_key;
CREATE UNIQUE INDEX IF NOT EXISTS consent_events_dedupe_key ON consent_events (dedupe_key);
-- The events page and exports list the log in event time (ties by id).
CREATE INDEX IF NOT EXISTS consent_events_by_time ON consent_events (occurred_at, id);

ALTER TABLE feedback ADD COLUMN IF NOT EXISTS dedupe_key TEXT;
UPDATE feedback SET dedupe_key = 'twilio:' || message_id WHERE message_id IS NOT NULL AND dedupe_key IS NULL;
ALTER TABLE feedback DROP CONSTRAINT IF EXISTS feedback_message_id_key;
CREATE UNIQUE INDEX IF NOT EXISTS feedback_dedupe_key ON feedback (dedupe_key);

ALTER TABLE review_items ADD COLUMN IF NOT EXISTS dedupe_key TEXT;
ALTER TABLE review_items ADD COLUMN IF NOT EXISTS config_version TEXT;
ALTER TABLE review_items ADD COLUMN IF NOT EXISTS reason TEXT;
UPDATE review_items SET dedupe_key = 'twilio:' || message_id WHERE message_id IS NOT NULL AND dedupe_key IS NULL;
ALTER TABLE review_items DROP CONSTRAINT IF EXISTS review_items_message_id_key;
CREATE UNIQUE INDEX IF NOT EXISTS review_items_dedupe_key ON review_items (dedupe_key);

-- Record one consent event in one round trip: lock the address, skip it when it repeats a
-- dedupe key (or, if asked, when the address already has the status it would set), insert
-- it, move the status if it is the latest, and say what happened. Called as one
-- statement in autocommit, it is one transaction.
DROP FUNCTION IF EXISTS unsub_append_event(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT,
                                           TIMESTAMPTZ, TIMESTAMPTZ);
CREATE OR REPLACE FUNCTION unsub_append_event(
    p_channel TEXT, p_address TEXT, p_action TEXT, p_source TEXT, p_keyword TEXT,
    p_language TEXT, p_match_kind TEXT, p_raw_text TEXT, p_message_id TEXT, p_dedupe_key TEXT,
    p_config_version TEXT, p_reason TEXT, p_occurred_at TIMESTAMPTZ, p_recorded_at TIMESTAMPTZ,
    p_only_if_changes BOOLEAN
) RETURNS TABLE (out_added BOOLEAN, out_status TEXT, out_previous TEXT, out_event_id BIGINT, out_skipped TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    wanted TEXT := CASE p_action WHEN 'opt_out' THEN 'unsubscribed' ELSE 'subscribed' END;
BEGIN
    -- Events for one channel and address are recorded one at a time (class 0x756E7362).
    PERFORM pg_advisory_xact_lock(1970172770, hashtext(p_channel || ':' || p_address));
    SELECT COALESCE((SELECT s.status FROM subscriptions s
                     WHERE s.channel = p_channel AND s.address = p_address), 'unknown')
      INTO out_previous;
    out_added := false;
    out_status := out_previous;
    IF p_only_if_changes AND out_previous = wanted THEN
        out_skipped := 'unchanged';
        RETURN NEXT;
        RETURN;
    END IF;
    INSERT INTO consent_events (channel, address, action, source, keyword, language, match_kind, raw_text,
                                message_id, dedupe_key, config_version, reason, occurred_at, recorded_at)
    VALUES (p_channel, p_address, p_action, p_source, p_keyword, p_language, p_match_kind, p_raw_text,
            p_message_id, p_dedupe_key, p_config_version, p_reason, p_occurred_at, COALESCE(p_recorded_at, now()))
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id INTO out_event_id;
    IF out_event_id IS NULL THEN
        out_skipped := 'duplicate';
        RETURN NEXT;
        RETURN;
    END IF;
    out_added := true;
    -- The latest event wins; on equal times the later-recorded one does.
    INSERT INTO subscriptions AS s (channel, address, status, updated_at, event_id)
    VALUES (p_channel, p_address, wanted, p_occurred_at, out_event_id)
    ON CONFLICT (channel, address) DO UPDATE
        SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, event_id = EXCLUDED.event_id
        WHERE EXCLUDED.updated_at >= s.updated_at
    RETURNING s.status INTO out_status;
    IF out_status IS NULL THEN  -- an older event: the status stays
        out_status := out_previous;
    END IF;
    RETURN NEXT;
END
$$;
