-- WeChat Pay v2 orders, and every payment notify received (what it did: applied, duplicate, or why not).
CREATE TABLE pay_orders (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    out_trade_no VARCHAR(64) NOT NULL UNIQUE,
    user_id BIGINT,
    openid VARCHAR(255),
    description TEXT NOT NULL,
    total_fee BIGINT NOT NULL,
    -- JSAPI | NATIVE
    trade_type VARCHAR(32) NOT NULL,
    -- created | paid | closed
    status VARCHAR(32) NOT NULL,
    prepay_id TEXT,
    code_url TEXT,
    transaction_id VARCHAR(64) UNIQUE,
    paid_at BIGINT,
    -- Unix seconds (sent to WeChat as time_expire).
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE pay_notifications (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    out_trade_no VARCHAR(64) NOT NULL,
    transaction_id VARCHAR(64) NOT NULL,
    total_fee BIGINT NOT NULL,
    -- applied | duplicate | amount_mismatch | merchant_mismatch | unknown_order | not_payable
    outcome VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX pay_notifications_order ON pay_notifications (out_trade_no);
-- Refunds of paid orders: requested → succeeded | closed | failed. Their sum never exceeds the order's amount.
CREATE TABLE pay_refunds (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    out_refund_no VARCHAR(64) NOT NULL UNIQUE,
    out_trade_no VARCHAR(64) NOT NULL,
    refund_fee BIGINT NOT NULL,
    reason TEXT,
    status VARCHAR(32) NOT NULL,
    refund_id VARCHAR(64),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (out_trade_no) REFERENCES pay_orders (out_trade_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
