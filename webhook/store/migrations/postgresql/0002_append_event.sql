-- Record one consent event in one round trip: lock the address, insert the event
-- (a repeated message id is skipped), move the status if the event is the latest,
-- and say what happened. Called as a single statement, it is one transaction.
CREATE OR REPLACE FUNCTION unsub_append_event(
    p_channel TEXT, p_address TEXT, p_action TEXT, p_source TEXT, p_keyword TEXT,
    p_language TEXT, p_match_kind TEXT, p_raw_text TEXT, p_message_id TEXT,
    p_config_version TEXT, p_reason TEXT, p_occurred_at TIMESTAMPTZ, p_recorded_at TIMESTAMPTZ
) RETURNS TABLE (out_added BOOLEAN, out_status TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    new_id BIGINT;
BEGIN
    -- Events for one channel and address are recorded one at a time (class 0x756E7362).
    PERFORM pg_advisory_xact_lock(1970172770, hashtext(p_channel || ':' || p_address));
    INSERT INTO consent_events (channel, address, action, source, keyword, language, match_kind,
                                raw_text, message_id, config_version, reason, occurred_at, recorded_at)
    VALUES (p_channel, p_address, p_action, p_source, p_keyword, p_language, p_match_kind,
            p_raw_text, p_message_id, p_config_version, p_reason, p_occurred_at, COALESCE(p_recorded_at, now()))
    ON CONFLICT (message_id) DO NOTHING
    RETURNING id INTO new_id;
    out_added := new_id IS NOT NULL;
    IF out_added THEN
        -- The latest event wins; on equal times the later-recorded one does.
        INSERT INTO subscriptions AS s (channel, address, status, updated_at, event_id)
        VALUES (p_channel, p_address,
                CASE p_action WHEN 'opt_out' THEN 'unsubscribed' ELSE 'subscribed' END,
                p_occurred_at, new_id)
        ON CONFLICT (channel, address) DO UPDATE
            SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, event_id = EXCLUDED.event_id
            WHERE EXCLUDED.updated_at >= s.updated_at;
    END IF;
    SELECT COALESCE((SELECT s.status FROM subscriptions s
                     WHERE s.channel = p_channel AND s.address = p_address), 'unknown')
      INTO out_status;
    RETURN NEXT;
END
$$;
