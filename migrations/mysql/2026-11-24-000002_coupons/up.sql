-- Coupons and redemption (核销). Times are Unix milliseconds.
CREATE TABLE merchants (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE staff (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    merchant_id BIGINT NOT NULL,
    openid VARCHAR(255) NOT NULL,
    name TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    api_token_hash VARCHAR(128) NOT NULL UNIQUE, -- sha256 hex of the POS bearer token; the token itself is never stored
    created_at BIGINT NOT NULL,
    CONSTRAINT staff_openid_key UNIQUE (openid),
    FOREIGN KEY (merchant_id) REFERENCES merchants (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE campaigns (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    merchant_id BIGINT NOT NULL,
    title TEXT NOT NULL,
    description TEXT,
    value_fen BIGINT,
    valid_from BIGINT NOT NULL,
    valid_until BIGINT NOT NULL,
    quantity BIGINT,
    per_user_limit BIGINT,
    wechat_card_id TEXT,
    issued BIGINT NOT NULL DEFAULT 0,        -- incremented under the row lock when a coupon is issued
    created_at BIGINT NOT NULL,
    FOREIGN KEY (merchant_id) REFERENCES merchants (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE coupons (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    campaign_id BIGINT NOT NULL,
    code VARCHAR(255) NOT NULL UNIQUE,
    owner_openid VARCHAR(255),
    status VARCHAR(32) NOT NULL DEFAULT 'issued',
    redeemed_at BIGINT,
    redeemed_by BIGINT,
    wechat_card_code VARCHAR(255) UNIQUE,
    version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (campaign_id) REFERENCES campaigns (id),
    FOREIGN KEY (redeemed_by) REFERENCES staff (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX coupons_owner ON coupons (owner_openid);

CREATE TABLE redemptions (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    coupon_id BIGINT NOT NULL UNIQUE,
    staff_id BIGINT,
    channel VARCHAR(32) NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (coupon_id) REFERENCES coupons (id),
    FOREIGN KEY (staff_id) REFERENCES staff (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE audit_log (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    action VARCHAR(64) NOT NULL,
    coupon_code VARCHAR(255),
    coupon_id BIGINT,
    staff_id BIGINT,
    outcome VARCHAR(64) NOT NULL,
    channel VARCHAR(32),
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX audit_log_coupon ON audit_log (coupon_id);

-- Used OAuth state nonces (single-use states).
CREATE TABLE oauth_states (
    nonce VARCHAR(255) NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Server-wide secrets shared by every instance (session and state signing keys), created on first start.
CREATE TABLE server_secrets (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- WeChat pushes already processed (WeChat retries them).
CREATE TABLE push_events (
    dedupe_key VARCHAR(512) NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
