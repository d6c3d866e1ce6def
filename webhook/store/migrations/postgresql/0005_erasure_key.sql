-- Which key the erased-address hashes were made with (an HMAC of a constant, not the key):
-- a service started with another key would not recognise erased contacts, so it refuses.
CREATE TABLE IF NOT EXISTS erasure_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL
);
