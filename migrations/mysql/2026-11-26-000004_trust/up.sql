-- Push freshness: each (timestamp, nonce) of a server push is accepted once, for one body. Kept for the timestamp
-- window, then pruned.
CREATE TABLE push_nonces (
    timestamp BIGINT NOT NULL,                 -- the push's `timestamp` query parameter, Unix seconds
    nonce VARCHAR(255) NOT NULL,
    body_sha256 VARCHAR(128) NOT NULL,         -- the body it came with: the same triple with another body is a forgery
    created_at BIGINT NOT NULL,
    PRIMARY KEY (timestamp, nonce)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX push_events_created ON push_events (created_at);

-- Work owed to WeChat after a local commit, written in the same transaction as the change that owes it and
-- delivered by a background worker.
CREATE TABLE outbox (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind VARCHAR(64) NOT NULL,
    dedupe_key VARCHAR(512) NOT NULL UNIQUE,   -- one piece of work per cause, e.g. 'card_consume:<coupon id>'
    coupon_id BIGINT,
    payload TEXT NOT NULL,                     -- JSON, per kind
    status VARCHAR(32) NOT NULL DEFAULT 'pending', -- pending | done | failed
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner VARCHAR(255),                  -- the instance delivering it now
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
