DROP TABLE login_scenes;
DROP TABLE sessions;
DROP INDEX users_unionid ON users;
ALTER TABLE users DROP COLUMN last_login_at, DROP COLUMN phone_verified_at, DROP COLUMN phone_country_code, DROP COLUMN phone;
ALTER TABLE users MODIFY openid VARCHAR(255) NOT NULL;
