DROP TABLE login_scenes;
DROP TABLE sessions;
CREATE TABLE users_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    openid TEXT NOT NULL UNIQUE,
    unionid TEXT,
    mini_openid TEXT UNIQUE,
    nickname TEXT,
    avatar_url TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO users_old (id, openid, unionid, mini_openid, nickname, avatar_url, created_at, updated_at)
    SELECT id, openid, unionid, mini_openid, nickname, avatar_url, created_at, updated_at FROM users WHERE openid IS NOT NULL;
DROP TABLE users;
ALTER TABLE users_old RENAME TO users;
