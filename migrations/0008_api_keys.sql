-- API keys. Only the SHA-256 of a key's secret part is kept, so the database never holds
-- a usable key. `workspace` is NULL for a server admin key (the one in admin.key).
-- A rotated key keeps working until `expires_at`, set to the end of its grace period.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    workspace    TEXT,
    member       TEXT NOT NULL,
    agent        TEXT,
    hash         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    rotated_to   TEXT
);
CREATE INDEX api_keys_by_workspace ON api_keys (workspace);
