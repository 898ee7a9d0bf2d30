ALTER TABLE coupons RESET (fillfactor);
