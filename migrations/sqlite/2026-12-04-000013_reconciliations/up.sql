-- One report per Beijing day: WeChat Pay's trade bill against our ledger (对账).
CREATE TABLE pay_reconciliations (
    bill_date TEXT PRIMARY KEY,
    clean BOOLEAN NOT NULL,
    -- JSON: [{"kind", "out_trade_no", "out_refund_no", "ours", "wechat"}]
    differences TEXT NOT NULL,
    bill_rows BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
