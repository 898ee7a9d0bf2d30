DROP TABLE outbox;
DROP INDEX push_events_created;
DROP TABLE push_nonces;
