DROP INDEX users_website_openid ON users;
ALTER TABLE users DROP COLUMN website_openid;
