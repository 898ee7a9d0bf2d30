DROP TABLE coupon_purchases;
ALTER TABLE campaigns DROP COLUMN price_fen;
