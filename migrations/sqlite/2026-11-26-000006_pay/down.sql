DROP TABLE pay_notifications;
DROP TABLE pay_orders;
