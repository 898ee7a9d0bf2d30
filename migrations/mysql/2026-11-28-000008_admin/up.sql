-- The admin API: why a coupon was voided (or a campaign ended) is kept with its audit row; the redemption log is read
-- by time and by campaign.
ALTER TABLE audit_log ADD COLUMN detail TEXT;
CREATE INDEX redemptions_created_at ON redemptions (created_at);
CREATE INDEX coupons_campaign ON coupons (campaign_id, id);
