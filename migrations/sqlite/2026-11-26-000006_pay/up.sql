-- WeChat Pay v2 orders, and every payment notify received (what it did: applied, duplicate, or why not).
CREATE TABLE pay_orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    out_trade_no TEXT NOT NULL UNIQUE,
    user_id BIGINT REFERENCES users (id),
    openid TEXT,
    description TEXT NOT NULL,
    total_fee BIGINT NOT NULL,
    -- JSAPI | NATIVE
    trade_type TEXT NOT NULL,
    -- created | paid | closed
    status TEXT NOT NULL,
    prepay_id TEXT,
    code_url TEXT,
    transaction_id TEXT UNIQUE,
    paid_at BIGINT,
    -- Unix seconds (sent to WeChat as time_expire).
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX pay_orders_user ON pay_orders (user_id);
CREATE TABLE pay_notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    out_trade_no TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    total_fee BIGINT NOT NULL,
    -- applied | duplicate | amount_mismatch | merchant_mismatch | unknown_order | not_payable
    outcome TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX pay_notifications_order ON pay_notifications (out_trade_no);
-- Refunds of paid orders: requested → succeeded | closed | failed. Their sum never exceeds the order's amount.
CREATE TABLE pay_refunds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    out_refund_no TEXT NOT NULL UNIQUE,
    out_trade_no TEXT NOT NULL REFERENCES pay_orders (out_trade_no),
    refund_fee BIGINT NOT NULL,
    reason TEXT,
    status TEXT NOT NULL,
    refund_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX pay_refunds_order ON pay_refunds (out_trade_no);
