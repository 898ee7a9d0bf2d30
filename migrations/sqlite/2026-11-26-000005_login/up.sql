-- Login: users may be known by their official-account openid, their mini-program openid, or both (linked by
-- unionid); sessions (web cookies and mini-program bearer tokens) are rows, so that logout revokes them everywhere;
-- scan-to-login scenes.

-- SQLite cannot drop NOT NULL in place: rebuild users with the same ids.
CREATE TABLE users_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    openid TEXT UNIQUE,
    unionid TEXT,
    mini_openid TEXT UNIQUE,
    nickname TEXT,
    avatar_url TEXT,
    phone TEXT,
    phone_country_code TEXT,
    phone_verified_at BIGINT,
    last_login_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO users_new (id, openid, unionid, mini_openid, nickname, avatar_url, created_at, updated_at)
    SELECT id, openid, unionid, mini_openid, nickname, avatar_url, created_at, updated_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE INDEX users_unionid ON users (unionid);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- sha256 hex of the bearer token / cookie secret; the secret itself is never stored.
    token_hash TEXT NOT NULL UNIQUE,
    -- web | miniprogram
    kind TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    -- The openid the session acts as (official account for web sessions, mini program for mini-program tokens).
    openid TEXT NOT NULL,
    -- Mini-program sessions: WeChat's session_key (decrypts the user's data; never leaves the server).
    session_key TEXT,
    created_at BIGINT NOT NULL,
    -- Unix seconds.
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE login_scenes (
    scene TEXT PRIMARY KEY NOT NULL,
    -- sha256 hex of the watch key in the page's ws_url: only the browser that created the scene may watch it.
    watch_key_hash TEXT NOT NULL,
    -- pending | scanned | confirmed | cancelled (expiry is derived from expires_at)
    status TEXT NOT NULL,
    user_id BIGINT REFERENCES users (id),
    -- sha256 hex of the one-time login ticket handed to the browser on confirm.
    ticket_hash TEXT UNIQUE,
    ticket_expires_at BIGINT,
    ticket_used_at BIGINT,
    return_path TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Unix seconds.
    expires_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- The mini-program code, fetched from WeChat once per scene (by whichever instance serves qr_url first).
    qr_png BLOB
);
CREATE INDEX login_scenes_expires ON login_scenes (expires_at);
