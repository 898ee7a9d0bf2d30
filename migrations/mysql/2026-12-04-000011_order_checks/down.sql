DROP TABLE pay_order_checks;
