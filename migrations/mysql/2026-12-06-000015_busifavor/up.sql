-- WeChat Pay 商家券: the stock behind a campaign, and each coupon's copy in a WeChat card bag.
CREATE TABLE wechat_pay_stocks (
    campaign_id BIGINT NOT NULL PRIMARY KEY,
    stock_id VARCHAR(64) NOT NULL UNIQUE,
    created BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (campaign_id) REFERENCES campaigns (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per coupon the owner tried to put in their card bag; received_at is set once WeChat says it is there
-- (COUPON.SEND, or a query after the H5 page, which does not call back).
CREATE TABLE coupon_card_bag (
    coupon_id BIGINT NOT NULL PRIMARY KEY,
    openid VARCHAR(255) NOT NULL,
    out_request_no VARCHAR(128) NOT NULL,
    attempted_at BIGINT NOT NULL,
    received_at BIGINT,
    via VARCHAR(32),
    FOREIGN KEY (coupon_id) REFERENCES coupons (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
