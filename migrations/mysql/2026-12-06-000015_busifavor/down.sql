DROP TABLE coupon_card_bag;
DROP TABLE wechat_pay_stocks;
