-- MySQL only: scan-to-login events for the other instances. PostgreSQL carries them with NOTIFY; MySQL has no such
-- thing, so an instance appends each event here after the commit that caused it and every instance reads what is
-- new every few milliseconds (features/scan_login/relay.rs). Rows are pruned after a minute.
CREATE TABLE login_events (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX login_events_created ON login_events (created_at);
