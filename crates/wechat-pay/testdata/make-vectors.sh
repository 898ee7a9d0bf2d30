#!/usr/bin/env bash
# Regenerates the v3 test vectors in ../src/v3/vectors.rs with tools independent of the crate:
# OpenSSL's command line for RSA (SHA256withRSA, PKCS#1 v1.5) and Python's `cryptography` (OpenSSL) for AES-256-GCM.
# The keys here are test keys made for this purpose; they protect nothing.
set -euo pipefail
cd "$(dirname "$0")"
sig() { printf '%b' "$2" | openssl dgst -sha256 -sign "$1" | base64 -w0; }
REQ_BODY='{"appid":"wxd678efh567hg6787","mchid":"1900009191","description":"Image形象店-深圳腾大-QQ公仔","out_trade_no":"1217752501201407033233368018","notify_url":"https://www.weixin.qq.com/wxpay/pay.php","amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}'
NOTIFY_BODY='{"id":"EV-2018022511223320873","create_time":"2015-05-20T13:29:35+08:00","resource_type":"encrypt-resource","event_type":"TRANSACTION.SUCCESS","summary":"支付成功","resource":{"original_type":"transaction","algorithm":"AEAD_AES_256_GCM","ciphertext":"CIPHERTEXT","associated_data":"transaction","nonce":"fdasflkja484"}}'
PLAIN='{"mchid":"1900009191","appid":"wxd678efh567hg6787","out_trade_no":"1217752501201407033233368018","transaction_id":"4200000000201407033233368018","trade_type":"JSAPI","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"OTHERS","success_time":"2018-06-08T10:34:56+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"amount":{"total":100,"payer_total":100,"currency":"CNY","payer_currency":"CNY"}}'
CIPHERTEXT=$(python3 -c 'import base64,sys; from cryptography.hazmat.primitives.ciphers.aead import AESGCM; print(base64.b64encode(AESGCM(b"0123456789abcdefghijklmnopqrstuv").encrypt(b"fdasflkja484", sys.argv[1].encode(), b"transaction")).decode())' "$PLAIN")
NOTIFY_BODY=${NOTIFY_BODY/CIPHERTEXT/$CIPHERTEXT}
echo "REQUEST_SIGNATURE=$(sig merchant.key "POST\n/v3/pay/transactions/jsapi\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n$REQ_BODY\n")"
echo "GET_SIGNATURE=$(sig merchant.key "GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n")"
echo "NOTIFY_SIGNATURE_CERT=$(sig platform.key "1554209980\nc5ac7061fccab6bf3e254dcf98995b8c\n$NOTIFY_BODY\n")"
echo "NOTIFY_SIGNATURE_PUBKEY=$(sig pubkey.key "1554209980\nc5ac7061fccab6bf3e254dcf98995b8c\n$NOTIFY_BODY\n")"
echo "PAY_SIGN=$(sig merchant.key "wx8888888888888888\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nprepay_id=wx201410272009395522657a690389285100\n")"
echo "CIPHERTEXT=$CIPHERTEXT"
echo "NOTIFY_BODY=$NOTIFY_BODY"
echo "REQ_BODY=$REQ_BODY"
echo "PLAIN=$PLAIN"
