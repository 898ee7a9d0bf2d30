-- A campaign may tell the customer "核销成功" when their coupon is redeemed: an official-account template message,
-- its data rendered from the redemption.
CREATE TABLE campaign_messages (
    campaign_id BIGINT PRIMARY KEY REFERENCES campaigns (id),
    template_id TEXT NOT NULL,
    fields TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
