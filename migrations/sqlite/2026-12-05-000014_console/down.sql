DROP INDEX audit_log_merchant;
ALTER TABLE audit_log DROP COLUMN merchant_id;
ALTER TABLE audit_log DROP COLUMN actor_user_id;
ALTER TABLE campaigns DROP COLUMN end_reason;
ALTER TABLE campaigns DROP COLUMN end_sold;
ALTER TABLE campaigns DROP COLUMN ended_at;
CREATE TABLE staff_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    openid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    api_token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
INSERT INTO staff_old (id, merchant_id, openid, name, active, api_token_hash, created_at)
    SELECT id, merchant_id, openid, name, active, api_token_hash, created_at FROM staff;
DROP TABLE staff;
ALTER TABLE staff_old RENAME TO staff;
DROP TABLE invites;
DROP TABLE merchant_members;
