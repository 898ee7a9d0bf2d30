DROP TABLE campaign_messages;
