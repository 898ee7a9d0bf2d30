-- WeChat Pay 商家券: the stock behind a campaign, and each coupon's copy in a WeChat card bag.
CREATE TABLE wechat_pay_stocks (
    campaign_id BIGINT PRIMARY KEY REFERENCES campaigns (id),
    stock_id TEXT NOT NULL UNIQUE,
    created BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);

-- One row per coupon the owner tried to put in their card bag; received_at is set once WeChat says it is there
-- (COUPON.SEND, or a query after the H5 page, which does not call back).
CREATE TABLE coupon_card_bag (
    coupon_id BIGINT PRIMARY KEY REFERENCES coupons (id),
    openid TEXT NOT NULL,
    out_request_no TEXT NOT NULL,
    attempted_at BIGINT NOT NULL,
    received_at BIGINT,
    via TEXT
);
