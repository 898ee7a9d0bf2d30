-- Login: users may be known by their official-account openid, their mini-program openid, or both (linked by
-- unionid); sessions (web cookies and mini-program bearer tokens) are rows, so that logout revokes them everywhere;
-- scan-to-login scenes.
ALTER TABLE users MODIFY openid VARCHAR(255) NULL;
ALTER TABLE users ADD COLUMN phone VARCHAR(64);
ALTER TABLE users ADD COLUMN phone_country_code VARCHAR(16);
ALTER TABLE users ADD COLUMN phone_verified_at BIGINT;
ALTER TABLE users ADD COLUMN last_login_at BIGINT;
CREATE INDEX users_unionid ON users (unionid);

CREATE TABLE sessions (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- sha256 hex of the bearer token / cookie secret; the secret itself is never stored.
    token_hash VARCHAR(128) NOT NULL UNIQUE,
    -- web | miniprogram
    kind VARCHAR(32) NOT NULL,
    user_id BIGINT NOT NULL,
    -- The openid the session acts as (official account for web sessions, mini program for mini-program tokens).
    openid VARCHAR(255) NOT NULL,
    -- Mini-program sessions: WeChat's session_key (decrypts the user's data; never leaves the server).
    session_key TEXT,
    created_at BIGINT NOT NULL,
    -- Unix seconds.
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE login_scenes (
    scene VARCHAR(128) NOT NULL PRIMARY KEY,
    -- sha256 hex of the watch key in the page's ws_url: only the browser that created the scene may watch it.
    watch_key_hash VARCHAR(128) NOT NULL,
    -- pending | scanned | confirmed | cancelled (expiry is derived from expires_at)
    status VARCHAR(32) NOT NULL,
    user_id BIGINT,
    -- sha256 hex of the one-time login ticket handed to the browser on confirm.
    ticket_hash VARCHAR(128) UNIQUE,
    ticket_expires_at BIGINT,
    ticket_used_at BIGINT,
    return_path TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Unix seconds.
    expires_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- The mini-program code, fetched from WeChat once per scene (by whichever instance serves qr_url first).
    qr_png MEDIUMBLOB,
    FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX login_scenes_expires ON login_scenes (expires_at);
