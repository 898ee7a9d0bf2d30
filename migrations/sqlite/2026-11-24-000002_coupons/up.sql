-- Coupons and redemption (核销). Times are Unix milliseconds.
CREATE TABLE merchants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE staff (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    openid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    api_token_hash TEXT NOT NULL UNIQUE,     -- sha256 hex of the POS bearer token; the token itself is never stored
    created_at BIGINT NOT NULL
);

CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    title TEXT NOT NULL,
    description TEXT,
    value_fen BIGINT,
    valid_from BIGINT NOT NULL,
    valid_until BIGINT NOT NULL,
    quantity BIGINT,
    per_user_limit BIGINT,
    wechat_card_id TEXT,
    issued BIGINT NOT NULL DEFAULT 0,        -- incremented under the row lock when a coupon is issued
    created_at BIGINT NOT NULL
);

CREATE TABLE coupons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    code TEXT NOT NULL UNIQUE,
    owner_openid TEXT,
    status TEXT NOT NULL DEFAULT 'issued',
    redeemed_at BIGINT,
    redeemed_by BIGINT REFERENCES staff (id),
    wechat_card_code TEXT UNIQUE,
    version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX coupons_owner ON coupons (owner_openid);

CREATE TABLE redemptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    coupon_id BIGINT NOT NULL UNIQUE REFERENCES coupons (id),
    staff_id BIGINT REFERENCES staff (id),
    channel TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    coupon_code TEXT,
    coupon_id BIGINT,
    staff_id BIGINT,
    outcome TEXT NOT NULL,
    channel TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_log_coupon ON audit_log (coupon_id);

-- Used OAuth state nonces (single-use states).
CREATE TABLE oauth_states (
    nonce TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

-- Server-wide secrets shared by every instance (session and state signing keys), created on first start.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- WeChat pushes already processed (WeChat retries them).
CREATE TABLE push_events (
    dedupe_key TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
