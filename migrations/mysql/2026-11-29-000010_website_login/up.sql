-- A website login (open platform qrconnect) brings its own openid; the unionid links it to the same person.
ALTER TABLE users ADD COLUMN website_openid VARCHAR(255);
CREATE UNIQUE INDEX users_website_openid ON users (website_openid);
