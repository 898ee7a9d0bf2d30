-- MySQL 8 / MariaDB 10.6+ (tested: MariaDB 10.11). Times are Unix time integers (BIGINT; milliseconds unless a column
-- says otherwise), as on the other backends. Every table: InnoDB, utf8mb4 (emoji in nicknames and coupon titles),
-- binary collation (openids, codes and hashes compare byte for byte, as on SQLite and PostgreSQL). Text that is a key
-- or indexed is VARCHAR (InnoDB cannot index TEXT without a prefix); other text is TEXT.
CREATE TABLE users (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    openid VARCHAR(255) NOT NULL UNIQUE,
    unionid VARCHAR(255),
    mini_openid VARCHAR(255) UNIQUE,
    nickname TEXT,
    avatar_url TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per (app, token kind): the shared access token / ticket cache and its refresh lease.
CREATE TABLE wechat_tokens (
    app_id VARCHAR(255) NOT NULL,
    kind VARCHAR(64) NOT NULL,
    value TEXT,
    expires_at BIGINT NOT NULL DEFAULT 0,      -- Unix seconds
    lock_holder VARCHAR(255),
    lock_until BIGINT NOT NULL DEFAULT 0,      -- Unix milliseconds
    updated_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, kind)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
