-- Coupons for sale: a campaign's price, and the orders that buy its coupons (one coupon per order: reserved
-- against the campaign's limits when the order is placed, issued in the payment's transaction, released when the
-- order closes).
ALTER TABLE campaigns ADD COLUMN price_fen BIGINT;
CREATE TABLE coupon_purchases (
    out_trade_no VARCHAR(64) NOT NULL PRIMARY KEY,
    campaign_id BIGINT NOT NULL,
    buyer_openid VARCHAR(255) NOT NULL,
    -- Set in the payment's transaction.
    coupon_code VARCHAR(255) UNIQUE,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (out_trade_no) REFERENCES pay_orders (out_trade_no),
    FOREIGN KEY (campaign_id) REFERENCES campaigns (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX coupon_purchases_campaign_buyer ON coupon_purchases (campaign_id, buyer_openid);
-- The appid an order was placed with: NULL for the official account's, the mini program's appid for orders paid
-- inside the mini program (orderquery, closeorder and refunds must name the same appid).
ALTER TABLE pay_orders ADD COLUMN appid VARCHAR(64);
