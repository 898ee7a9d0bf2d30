DROP INDEX coupons_campaign;
DROP INDEX redemptions_created_at;
ALTER TABLE audit_log DROP COLUMN detail;
