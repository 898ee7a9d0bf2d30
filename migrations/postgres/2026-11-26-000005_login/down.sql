DROP TABLE login_scenes;
DROP TABLE sessions;
DROP INDEX users_unionid;
DELETE FROM users WHERE openid IS NULL;
ALTER TABLE users DROP COLUMN last_login_at;
ALTER TABLE users DROP COLUMN phone_verified_at;
ALTER TABLE users DROP COLUMN phone_country_code;
ALTER TABLE users DROP COLUMN phone;
ALTER TABLE users ALTER COLUMN openid SET NOT NULL;
