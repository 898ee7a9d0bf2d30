DROP INDEX coupons_campaign ON coupons;
DROP INDEX redemptions_created_at ON redemptions;
ALTER TABLE audit_log DROP COLUMN detail;
