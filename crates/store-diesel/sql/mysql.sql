-- wxkit-store-diesel tables (MySQL 8 / MariaDB 10.6+). The same tables the wxkit server's migrations create:
-- InnoDB, utf8mb4 with the binary collation (keys compare byte for byte), VARCHAR where InnoDB needs an index.
CREATE TABLE IF NOT EXISTS wechat_tokens (
    app_id VARCHAR(255) NOT NULL,
    kind VARCHAR(64) NOT NULL,
    value TEXT,
    expires_at BIGINT NOT NULL DEFAULT 0,
    lock_holder VARCHAR(255),
    lock_until BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, kind)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS server_secrets (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS push_events (
    dedupe_key VARCHAR(512) NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    INDEX push_events_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS oauth_states (
    nonce VARCHAR(255) NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
