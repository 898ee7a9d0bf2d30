DROP INDEX users_website_openid;
ALTER TABLE users DROP COLUMN website_openid;
