-- The merchant console: people who run a merchant (owner, manager), staff of several merchants, invites scanned to
-- join, and a campaign's early end as its own timestamp (its validity is kept). Times are Unix milliseconds.
CREATE TABLE merchant_members (
    merchant_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    role VARCHAR(32) NOT NULL,               -- owner | manager
    created_at BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, user_id),
    FOREIGN KEY (merchant_id) REFERENCES merchants (id),
    FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX merchant_members_user ON merchant_members (user_id);

CREATE TABLE invites (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    merchant_id BIGINT NOT NULL,
    token_hash VARCHAR(128) NOT NULL UNIQUE, -- sha256 hex of the token in the invite's URL
    role VARCHAR(32) NOT NULL,               -- staff | manager | owner
    max_uses BIGINT NOT NULL,
    uses BIGINT NOT NULL DEFAULT 0,
    needs_approval BOOLEAN NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    created_by BIGINT,                       -- users.id; NULL: the platform admin
    created_at BIGINT NOT NULL,
    qr_png MEDIUMBLOB NOT NULL,              -- the invite's QR code (the token itself is not stored)
    FOREIGN KEY (merchant_id) REFERENCES merchants (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX invites_merchant ON invites (merchant_id);

-- One person may be staff of several merchants: unique per merchant, not overall.
ALTER TABLE staff ADD CONSTRAINT staff_merchant_openid UNIQUE (merchant_id, openid);
ALTER TABLE staff DROP INDEX staff_openid_key;
CREATE INDEX staff_openid ON staff (openid);
ALTER TABLE staff ADD COLUMN user_id BIGINT;
ALTER TABLE staff ADD CONSTRAINT staff_user FOREIGN KEY (user_id) REFERENCES users (id);
ALTER TABLE staff ADD COLUMN pending BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE staff ADD COLUMN invite_id BIGINT;

ALTER TABLE campaigns ADD COLUMN ended_at BIGINT;
ALTER TABLE campaigns ADD COLUMN end_sold VARCHAR(16);     -- keep | refund
ALTER TABLE campaigns ADD COLUMN end_reason TEXT;

-- Who did it (a console action) and for which merchant.
ALTER TABLE audit_log ADD COLUMN actor_user_id BIGINT;
ALTER TABLE audit_log ADD COLUMN merchant_id BIGINT;
CREATE INDEX audit_log_merchant ON audit_log (merchant_id);
