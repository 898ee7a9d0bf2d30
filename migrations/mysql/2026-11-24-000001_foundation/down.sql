DROP TABLE wechat_tokens;
DROP TABLE users;
