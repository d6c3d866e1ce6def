-- A change is queued for every endpoint, enabled or not: a disabled endpoint's deliveries
-- wait (claims take only enabled endpoints' deliveries) and go out, in order, once it is
-- enabled again. Before, a change recorded while an endpoint was disabled (by an admin, or
-- by a 410) never reached it. Same signature as migration 0010: only the body changes.

CREATE OR REPLACE FUNCTION unsub_append_event(
    p_channel TEXT, p_address TEXT, p_action TEXT, p_source TEXT, p_keyword TEXT,
    p_language TEXT, p_match_kind TEXT, p_raw_text TEXT, p_message_id TEXT, p_dedupe_key TEXT,
    p_config_version TEXT, p_reason TEXT, p_occurred_at TIMESTAMPTZ, p_recorded_at TIMESTAMPTZ,
    p_only_if_changes BOOLEAN, p_campaign TEXT DEFAULT NULL, p_key_hash TEXT DEFAULT NULL
) RETURNS TABLE (out_added BOOLEAN, out_status TEXT, out_previous TEXT, out_event_id BIGINT, out_skipped TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    wanted TEXT := CASE p_action WHEN 'opt_out' THEN 'unsubscribed' ELSE 'subscribed' END;
    queued INTEGER;
BEGIN
    -- Events for one channel and address are recorded one at a time (class 0x756E7362).
    PERFORM pg_advisory_xact_lock(1970172770, hashtext(p_channel || ':' || p_address));
    SELECT COALESCE((SELECT s.status FROM subscriptions s
                     WHERE s.channel = p_channel AND s.address = p_address), 'unknown')
      INTO out_previous;
    out_added := false;
    out_status := out_previous;
    -- A message id an erasure already saw (under the lock an erasure also takes): a duplicate.
    IF p_key_hash IS NOT NULL AND EXISTS (SELECT 1 FROM erased_message_keys WHERE key_hash = p_key_hash) THEN
        out_skipped := 'duplicate';
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_only_if_changes AND out_previous = wanted THEN
        out_skipped := 'unchanged';
        RETURN NEXT;
        RETURN;
    END IF;
    INSERT INTO consent_events (channel, address, action, source, keyword, language, match_kind, raw_text,
                                message_id, dedupe_key, config_version, reason, occurred_at, recorded_at, campaign)
    VALUES (p_channel, p_address, p_action, p_source, p_keyword, p_language, p_match_kind, p_raw_text,
            p_message_id, p_dedupe_key, p_config_version, p_reason, p_occurred_at, COALESCE(p_recorded_at, now()),
            p_campaign)
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
    INSERT INTO outbox (lane, endpoint_id, webhook_id, event_type, event_id, address, previous_status, status_after)
    SELECT 'endpoint:' || e.id, e.id, 'msg_' || replace(gen_random_uuid()::text, '-', ''),
           CASE p_action WHEN 'opt_out' THEN 'consent.opted_out' ELSE 'consent.opted_in' END,
           out_event_id, p_address, out_previous, out_status
    FROM webhook_endpoints e;
    GET DIAGNOSTICS queued = ROW_COUNT;
    IF queued > 0 THEN
        PERFORM pg_notify('unsub_outbox', '');
    END IF;
    RETURN NEXT;
END
$$;
