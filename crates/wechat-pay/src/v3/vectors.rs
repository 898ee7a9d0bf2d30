//! Fixed v3 vectors made by `testdata/make-vectors.sh` with OpenSSL's command line (RSA) and Python's
//! `cryptography` (AES-256-GCM): an implementation independent of this crate. The keys are test keys.

/// SHA256withRSA of the JSAPI prepay request message (merchant.key).
pub const REQUEST_SIGNATURE: &str = r#"pi+RGS2YvDxT3c2CJgVcidlJktZMgLknZffO0A+dz3jQNGnB58ygrbKTzz08qg/tfDGPR6WpMxkcLNqBKKIGjSXVCNmHKQmF1usAhKcTEhhkOChe9T0QPK3yC0yD3dXkXwUuyhFadPwBzeXo6XhfxLFGzSTBQ/d1PkS7H7UPL/su2QtyARMuw9SeN+rQudnH52bAJXGJJLt4jhuzBFJggftWT1/u4wUb6ytqyrGsglDk1xAD8aqLMNWFFERQvN3WUKsOYvDCBM6LO28EhCY+CAL6aZYp/VOAOm4++zT6w7tDkTIfxB0kR09OrVYjNJDoRJBs5coPneUDWw3Vc1SfCg=="#;
/// SHA256withRSA of `GET /v3/certificates` with an empty body (merchant.key).
pub const GET_SIGNATURE: &str = r#"kdqpQRqMTpor1Cub3E5HKqqSTjBKo96iAFoCSYkbtKuwVudBIsdSTjqC0QdtFn+Iy8jqPwimo+4xNZOa742TzS6+gf2gkI3OfAz2+pasXG/5JH8w0C+j5o3cPK/XEqL8m/GYtB4SVQy1rOlRho1R1gleaF8stg/zlrFAHJA4fm8qviF9Bb/y2blsWrrUKAuauK4q/ysNCmaKi9n1TVpUkgCaY3p8YOe7LgOuVLCiB39rdXsWK7r1R+zEQznGqUNdOfJk+gAAj6+F5/0eD18xUQy7V3Iy0bwZPX6dUaawIB9aV6l4+mYVOpBq+OnEj86qDra6z058WDblVliq0U4XEQ=="#;
/// The notify signed with the platform certificate's key (platform.key).
pub const NOTIFY_SIGNATURE_CERT: &str = r#"gtsajzlKO0en9OoTvVwI+pfgPHnuz0p1BrvJwxY7Czj6M1NSLB53RfRwz1piDewRuMDnk0jZlLDtrDWV01tbdOdiwf0+QtwsOufmWPY28kB23/7lgFlEbRihr3d4k0NQKQEyTp3jiLGtWCq6O6P1SKjRCCQRQdY+7QnUkewbFIq5PqDp9CHMBRZixq27Z5g41dpwgI8QJY27kk6/y9QuAFlMSPRRkhf4OK/GjxWC9aSIj5qBNvfFqGIXjJBfm4/aIEA47IQvNOOq5MiYpKgqe0TEo0Y2HTFbcCWqp5jYT9Nm7zW3UkVQYxeciz6cPmc8dmR7ht5xhxB0Kc/z/37G0g=="#;
/// The notify signed with the WeChat Pay public key's private half (pubkey.key).
pub const NOTIFY_SIGNATURE_PUBKEY: &str = r#"c/md+jfiPG3m5c3TBloU0DaY0mCNx8p23ym3QBVd486QdNcEgRSz3AyIVenqCU0b9AuR8B/Op1P3XvKTS6A4D7YYEqncWq+SSOv/cf40/CfU4/+zb18VnGqFlyUDpuzbef7G1qVN7FGY75ha4i9qLKaOmNrD+JpolD5llLNJmW3lHcTRgrMLQy0YdRIHwf7Rkvxuk1GZYY0f74zA4lFrNl0/9glNNcbCT3rYVb1rflEk/BlTjNDBn1ujgT7x9vgJbIUvwbMzQOBhRq9jG0MrWfk/YOPGUeIXEqaUZPAGaoMeifjLgTvmJCVxc4tfzBezWKacOiTvB4MpHNF+G/gUqA=="#;
/// `paySign` for `wx.requestPayment` (merchant.key).
pub const PAY_SIGN: &str = r#"uTZK9fSs3fS908VSv4HwjimloZjdnU4WEptsiSuXAfmA5UNWT0sDeyRU/mb19LU4WhSbWeL1pil2HjUzwxFidWdH7YOP9arYAxxSEEVMiPIjamDTeM+bf5aSsm//Zp/+hbNKSL3mPfEu1cW+rkGhGObQmuXPM9pPUmSNWAkMa2qxcJKwx5A+OnFuoc5AH2hgagr4lD0kHa2H/1UyMlWKAmI+SbDF3WsWjzxDByI/ScPTLDUmYDo7gQ8QCh6yqiD+gO/lk6fYNwB0CgSMIK8lMZbjNYOrZFavBp1Z4zDP8C4IMFq2NZMjdsYkOL5HX3xOyIj29GMJQuGtA17WHEIzCw=="#;
/// AES-256-GCM of PLAIN under the APIv3 key `0123456789abcdefghijklmnopqrstuv`, nonce `fdasflkja484`, associated data `transaction`.
pub const CIPHERTEXT: &str = r#"kdUy8AAEd+F97t+v/8pygRztbX8tC3RtMchS24m9Vng9yHRmM42GF+z/oI6VV5XRrTHDjRbuQcOvBYq9jNsZHTq6GmO36/m1ViZB2L4CNPkOZO99RAPGM1S7fznIYCMiYBhv8pEqNr0Kq/UGhNIRHMnWJ3/IsYZjPlLhxKLMIxAYB6sHecPRALsYyPTs3Ubf49Bjow2MquA895NRqXuADO5+Y8sSX8rZ4Cj6ZXZGZc24Kx6oBAJh37wh9Y3zRHFB2Lkdo2yxuhT0PIOjbihJnRdm/S5j18DUCZNmrhp6eSuPC74CMrJr6CcKpD4Qgfi9ZLEfuK4LbPfzeAk9xUFtemEuZ3AHl7QG5Bdi/9Q2naW/duO2SK87Utr41jRtaQy9pjH+4JlbnHcq0aYSV2KieFaw7jdILhiAF8jr639CzwVz3irnPlMm3mXna7Hoyuk4TtLXAb42s0nYq3SCrT9gWLJXEDA7Bco+wOyhQRPDsXnW1FGBYxtuVmAQu2I/28BUBOYw9oaOE6ms/7G/vIhE6VKozuuuQ0ZX7rU0fGZluHTcCnNfirSpQMCPgb2kI1fsd7Xt"#;
/// A TRANSACTION.SUCCESS notify carrying CIPHERTEXT, as received.
pub const NOTIFY_BODY: &str = r#"{"id":"EV-2018022511223320873","create_time":"2015-05-20T13:29:35+08:00","resource_type":"encrypt-resource","event_type":"TRANSACTION.SUCCESS","summary":"支付成功","resource":{"original_type":"transaction","algorithm":"AEAD_AES_256_GCM","ciphertext":"kdUy8AAEd+F97t+v/8pygRztbX8tC3RtMchS24m9Vng9yHRmM42GF+z/oI6VV5XRrTHDjRbuQcOvBYq9jNsZHTq6GmO36/m1ViZB2L4CNPkOZO99RAPGM1S7fznIYCMiYBhv8pEqNr0Kq/UGhNIRHMnWJ3/IsYZjPlLhxKLMIxAYB6sHecPRALsYyPTs3Ubf49Bjow2MquA895NRqXuADO5+Y8sSX8rZ4Cj6ZXZGZc24Kx6oBAJh37wh9Y3zRHFB2Lkdo2yxuhT0PIOjbihJnRdm/S5j18DUCZNmrhp6eSuPC74CMrJr6CcKpD4Qgfi9ZLEfuK4LbPfzeAk9xUFtemEuZ3AHl7QG5Bdi/9Q2naW/duO2SK87Utr41jRtaQy9pjH+4JlbnHcq0aYSV2KieFaw7jdILhiAF8jr639CzwVz3irnPlMm3mXna7Hoyuk4TtLXAb42s0nYq3SCrT9gWLJXEDA7Bco+wOyhQRPDsXnW1FGBYxtuVmAQu2I/28BUBOYw9oaOE6ms/7G/vIhE6VKozuuuQ0ZX7rU0fGZluHTcCnNfirSpQMCPgb2kI1fsd7Xt","associated_data":"transaction","nonce":"fdasflkja484"}}"#;
/// A JSAPI prepay request body.
pub const REQ_BODY: &str = r#"{"appid":"wxd678efh567hg6787","mchid":"1900009191","description":"Image形象店-深圳腾大-QQ公仔","out_trade_no":"1217752501201407033233368018","notify_url":"https://www.weixin.qq.com/wxpay/pay.php","amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}"#;
/// The transaction the notify carries.
pub const PLAIN: &str = r#"{"mchid":"1900009191","appid":"wxd678efh567hg6787","out_trade_no":"1217752501201407033233368018","transaction_id":"4200000000201407033233368018","trade_type":"JSAPI","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"OTHERS","success_time":"2018-06-08T10:34:56+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"amount":{"total":100,"payer_total":100,"currency":"CNY","payer_currency":"CNY"}}"#;
pub const MERCHANT_KEY: &str = include_str!("../../testdata/merchant.key");
pub const MERCHANT_CERT: &str = include_str!("../../testdata/merchant.pem");
pub const PLATFORM_CERT: &str = include_str!("../../testdata/platform.pem");
pub const PLATFORM_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
pub const PUBLIC_KEY: &str = include_str!("../../testdata/pubkey.pem");
pub const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0119000091912026112700000000000001";
pub const API_V3_KEY: &str = "0123456789abcdefghijklmnopqrstuv";
