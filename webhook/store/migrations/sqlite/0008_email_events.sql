-- E-mail provider events (issue 19): a consent event may name the campaign it came from
-- (an e-mail provider's spam complaint or unsubscribe carries it), and the tokens of signed
-- requests already seen, so a captured Mailgun signature cannot be used twice.
-- (Numbered after the forwarding issue's migration on main, so the two never collide.)

-- Nullable, no default: existing rows and processes that do not know the column are unchanged.
ALTER TABLE consent_events ADD COLUMN campaign TEXT;

-- Mailgun signs only timestamp + token, not the body: a signature captured in transit could
-- carry any other body until its timestamp is too old. Each token is accepted once; a row
-- is kept until no route would accept its timestamp any more, then pruned.
CREATE TABLE IF NOT EXISTS seen_tokens (
    namespace TEXT NOT NULL,
    token TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (namespace, token)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS seen_tokens_by_expiry ON seen_tokens (expires_at);
