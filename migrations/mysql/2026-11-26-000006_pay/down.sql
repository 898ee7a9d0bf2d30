DROP TABLE pay_refunds;
DROP TABLE pay_notifications;
DROP TABLE pay_orders;
