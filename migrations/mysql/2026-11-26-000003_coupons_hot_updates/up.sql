-- PostgreSQL's fillfactor for HOT updates of coupons has no InnoDB counterpart (InnoDB updates a row in place when
-- no indexed column changes). Kept so that every backend has the same list of migrations.
DO 0;
