-- PostgreSQL-only storage setting (coupons fillfactor); SQLite has no equivalent. Kept so both backends share one
-- migration history.
SELECT 1;
