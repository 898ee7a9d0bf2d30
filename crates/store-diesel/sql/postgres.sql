-- wxkit-store-diesel tables (PostgreSQL). The same tables the wxkit server's migrations create.
CREATE TABLE IF NOT EXISTS wechat_tokens (
    app_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT,
    expires_at BIGINT NOT NULL DEFAULT 0,
    lock_holder TEXT,
    lock_until BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, kind)
);
CREATE TABLE IF NOT EXISTS server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS push_events (
    dedupe_key TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS push_events_created ON push_events (created_at);
CREATE TABLE IF NOT EXISTS oauth_states (
    nonce TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
