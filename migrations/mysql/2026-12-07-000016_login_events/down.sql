DROP TABLE login_events;
