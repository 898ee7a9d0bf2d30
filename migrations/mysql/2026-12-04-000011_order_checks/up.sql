-- The payment reconciler visits unsettled orders round-robin: each look pushes the order's next one back
-- (doubling, capped), so a flood of junk orders cannot keep a paid order from being looked at.
CREATE TABLE pay_order_checks (
    order_id BIGINT NOT NULL PRIMARY KEY,
    next_check_at BIGINT NOT NULL DEFAULT 0,
    checks INT NOT NULL DEFAULT 0,
    FOREIGN KEY (order_id) REFERENCES pay_orders (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX pay_order_checks_next ON pay_order_checks (next_check_at);
INSERT INTO pay_order_checks (order_id, next_check_at, checks)
    SELECT id, 0, 0 FROM pay_orders WHERE status = 'created';
