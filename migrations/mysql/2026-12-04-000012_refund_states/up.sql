-- Whether this refund voided the bought coupon: a refund that fails gives back only what it took (a coupon the
-- operator voided for fraud stays void).
ALTER TABLE pay_refunds ADD COLUMN voided_coupon BOOLEAN NOT NULL DEFAULT FALSE;
