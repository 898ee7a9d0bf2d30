-- The merchant console: people who run a merchant (owner, manager), staff of several merchants, invites scanned to
-- join, and a campaign's early end as its own timestamp (its validity is kept). Times are Unix milliseconds.
CREATE TABLE merchant_members (
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,                      -- owner | manager
    created_at BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, user_id)
);
CREATE INDEX merchant_members_user ON merchant_members (user_id);

CREATE TABLE invites (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    token_hash TEXT NOT NULL UNIQUE,         -- sha256 hex of the token in the invite's URL
    role TEXT NOT NULL,                      -- staff | manager | owner
    max_uses BIGINT NOT NULL,
    uses BIGINT NOT NULL DEFAULT 0,
    needs_approval BOOLEAN NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    created_by BIGINT,                       -- users.id; NULL: the platform admin
    created_at BIGINT NOT NULL,
    qr_png BLOB NOT NULL                     -- the invite's QR code (the token itself is not stored)
);
CREATE INDEX invites_merchant ON invites (merchant_id);

-- One person may be staff of several merchants: unique per merchant, not overall. SQLite cannot drop a column's
-- UNIQUE, so the table is rebuilt (the migration runs with foreign keys off, as SQLite's ALTER TABLE guide says;
-- ids are kept, so coupons and redemptions still point at the same rows).
CREATE TABLE staff_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    openid TEXT NOT NULL,
    name TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    api_token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    user_id BIGINT REFERENCES users (id),
    pending BOOLEAN NOT NULL DEFAULT FALSE,
    invite_id BIGINT,
    UNIQUE (merchant_id, openid)
);
INSERT INTO staff_new (id, merchant_id, openid, name, active, api_token_hash, created_at)
    SELECT id, merchant_id, openid, name, active, api_token_hash, created_at FROM staff;
DROP TABLE staff;
ALTER TABLE staff_new RENAME TO staff;
CREATE INDEX staff_openid ON staff (openid);

ALTER TABLE campaigns ADD COLUMN ended_at BIGINT;
ALTER TABLE campaigns ADD COLUMN end_sold TEXT;     -- keep | refund
ALTER TABLE campaigns ADD COLUMN end_reason TEXT;

-- Who did it (a console action) and for which merchant.
ALTER TABLE audit_log ADD COLUMN actor_user_id BIGINT;
ALTER TABLE audit_log ADD COLUMN merchant_id BIGINT;
CREATE INDEX audit_log_merchant ON audit_log (merchant_id);
