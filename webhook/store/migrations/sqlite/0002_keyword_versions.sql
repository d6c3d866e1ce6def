-- Every accepted keyword configuration, numbered: who, when, how, and the diff.
CREATE TABLE IF NOT EXISTS keyword_versions (
    id INTEGER PRIMARY KEY,
    content_hash TEXT NOT NULL,
    document TEXT NOT NULL,
    yaml TEXT NOT NULL,
    source TEXT NOT NULL,
    author TEXT,
    note TEXT,
    diff TEXT,
    created_at TEXT NOT NULL
);
