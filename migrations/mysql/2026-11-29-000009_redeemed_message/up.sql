-- A campaign may tell the customer "核销成功" when their coupon is redeemed: an official-account template message,
-- its data rendered from the redemption.
CREATE TABLE campaign_messages (
    campaign_id BIGINT NOT NULL PRIMARY KEY,
    template_id TEXT NOT NULL,
    fields TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (campaign_id) REFERENCES campaigns (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
