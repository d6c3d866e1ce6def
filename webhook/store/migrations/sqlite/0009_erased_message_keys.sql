-- Replays after erasure: an erasure deletes the rows that made a provider's redelivery (or a
-- captured, replayed webhook) a duplicate, so the same signed START would be recorded again,
-- address and text with it. What remains of each erased message id is its keyed hash
-- (HMAC under the erasure key, like erased_addresses): no address, no text, no id.
CREATE TABLE IF NOT EXISTS erased_message_keys (
    key_hash TEXT PRIMARY KEY,
    erased_at TEXT NOT NULL
) WITHOUT ROWID;
