ALTER TABLE pay_orders DROP COLUMN appid;
DROP TABLE coupon_purchases;
ALTER TABLE campaigns DROP COLUMN price_fen;
