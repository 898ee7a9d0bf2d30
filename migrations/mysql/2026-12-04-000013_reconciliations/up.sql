-- One report per Beijing day: WeChat Pay's trade bill against our ledger (对账).
CREATE TABLE pay_reconciliations (
    bill_date VARCHAR(16) NOT NULL PRIMARY KEY,
    clean BOOLEAN NOT NULL,
    -- JSON: [{"kind", "out_trade_no", "out_refund_no", "ours", "wechat"}]
    differences LONGTEXT NOT NULL,
    bill_rows BIGINT NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
