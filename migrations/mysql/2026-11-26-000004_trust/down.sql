DROP TABLE outbox;
DROP INDEX push_events_created ON push_events;
DROP TABLE push_nonces;
