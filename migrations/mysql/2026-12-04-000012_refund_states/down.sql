ALTER TABLE pay_refunds DROP COLUMN voided_coupon;
