-- Times are Unix time integers (BIGINT; milliseconds unless a column says otherwise) on both backends.
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    openid TEXT NOT NULL UNIQUE,
    unionid TEXT,
    mini_openid TEXT UNIQUE,
    nickname TEXT,
    avatar_url TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One row per (app, token kind): the shared access token / ticket cache and its refresh lease.
CREATE TABLE wechat_tokens (
    app_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT,
    expires_at BIGINT NOT NULL DEFAULT 0,      -- Unix seconds
    lock_holder TEXT,
    lock_until BIGINT NOT NULL DEFAULT 0,      -- Unix milliseconds
    updated_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, kind)
);
