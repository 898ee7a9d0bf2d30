//! wechat-pay v3 against the simulator: every call, notifies in certificate, public-key and switch-over mode, a
//! certificate rotation mid-run, unknown serials, forged, probed and replayed notifies, and the simulator's own
//! strictness (wrong key, wrong serial, stale timestamp → 401 SIGN_ERROR).

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wechat_core::{AppId, Clock};
use wechat_pay::v3::{
    ApiV3Key, Channel, Client, ErrorCode, Event, MerchantPrivateKey, Order, Prepay, PublicKey, RefreshPolicy,
    RefundRequest, RefundState, RequestSigner, SignedMessage, VerifyError,
};
use wechat_pay::{Error, Fen, OrderRef, TradeState};
use wechat_sim::{SigningMode, SimServer};
use wxkit_testkit::{
    TEST_API_V3_KEY, TEST_APP_ID, TEST_MCH_ID, TEST_MP_APP_ID, eventually, register_v3_merchant, spawn_sim,
};

/// A clock tests can move (for replay and expiry).
#[derive(Debug, Default)]
struct TestClock(Mutex<i64>);

impl TestClock {
    fn advance(&self, secs: i64) {
        *self.0.lock().unwrap() += secs * 1000;
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        wechat_core::SystemClock.now_ms() + *self.0.lock().unwrap()
    }
}

fn signer() -> RequestSigner {
    RequestSigner::new(
        TEST_MCH_ID,
        wechat_sim::SANDBOX_MERCHANT_SERIAL,
        MerchantPrivateKey::from_pem(wechat_sim::SANDBOX_MERCHANT_KEY).unwrap(),
    )
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Certificates,
    PublicKey,
    Both,
}

/// The merchant, wired as an embedding service does: the `Pay` handle's builder, v3 keys in the chosen mode.
fn client_with(sim: &SimServer, mode: Mode, clock: Arc<dyn Clock>, policy: RefreshPolicy) -> Client {
    let info = sim.handle().v3_merchant(TEST_MCH_ID).unwrap();
    let mut b = wechat::Pay::builder()
        .app_id(TEST_APP_ID)
        .mch_id(TEST_MCH_ID)
        .base_url(&sim.base_url())
        .v3(
            MerchantPrivateKey::from_pem(wechat_sim::SANDBOX_MERCHANT_KEY).unwrap(),
            wechat_sim::SANDBOX_MERCHANT_SERIAL,
            ApiV3Key::new(TEST_API_V3_KEY),
        )
        .v3_clock(clock)
        .v3_refresh_policy(policy);
    if mode != Mode::Certificates {
        b = b.v3_public_key(info.public_key_id, PublicKey::from_pem(&info.public_key_pem).unwrap());
    }
    let pay = b.v3_platform_certificates(mode != Mode::PublicKey).build().unwrap();
    pay.v3().unwrap().clone()
}

fn client(sim: &SimServer, mode: Mode) -> Client {
    client_with(sim, mode, Arc::new(wechat_core::SystemClock), RefreshPolicy::default())
}

/// One notify as the receiver saw it: its `Wechatpay-Serial` and what verification made of it.
type Seen = (String, Result<wechat_pay::v3::Notify, String>);

/// A captured delivery: headers and body.
type Captured = Arc<Mutex<Option<(http::HeaderMap, Vec<u8>)>>>;

/// A merchant's v3 notify endpoint: verifies each notify with `Client::verify_notify`, answers 204 or 500.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn to_http(req: &HttpRequest) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in req.headers() {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_str().as_bytes()),
            http::HeaderValue::from_bytes(v.as_bytes()),
        ) {
            h.append(k, v);
        }
    }
    h
}

async fn start_receiver(pay: Client) -> Receiver {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = (pay, seen.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let (pay, seen) = state.clone();
        App::new().route(
            "/v3notify",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let (pay, seen) = (pay.clone(), seen.clone());
                async move {
                    let headers = to_http(&req);
                    let serial = headers
                        .get("Wechatpay-Serial")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let result = pay.verify_notify(&headers, &body).await.map_err(|e| e.to_string());
                    let ok = result.is_ok();
                    seen.lock().unwrap().push((serial, result));
                    if ok {
                        HttpResponse::NoContent().finish()
                    } else {
                        HttpResponse::InternalServerError().body(wechat_pay::v3::notify::FAIL_BODY)
                    }
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    Receiver {
        url: format!("http://127.0.0.1:{port}/v3notify"),
        seen,
    }
}

fn jsapi(no: &str, notify_url: &str) -> Order {
    Order::new(
        &AppId::new(TEST_APP_ID),
        "测试商品",
        no,
        Fen(1800),
        notify_url,
        Channel::Jsapi {
            openid: "o-payer".into(),
        },
    )
    .unwrap()
}

#[tokio::test]
async fn every_v3_call_against_the_simulator() {
    let sim = spawn_sim().await;
    register_v3_merchant(&sim, SigningMode::PublicKey);
    let pay = client(&sim, Mode::PublicKey);
    let notify = "http://127.0.0.1:9/v3notify";
    let app = AppId::new(TEST_APP_ID);

    // Prepay on each channel; the mini program places JSAPI orders with its own appid.
    let Prepay::PrepayId(prepay_id) = pay.prepay(&jsapi("V3JSAPI001", notify)).await.unwrap() else {
        panic!("JSAPI gives a prepay_id")
    };
    let mp = Order::new(
        &AppId::new(TEST_MP_APP_ID),
        "小程序商品",
        "V3MINI0001",
        Fen(100),
        notify,
        Channel::Jsapi {
            openid: "o-mp-payer".into(),
        },
    )
    .unwrap();
    assert!(matches!(pay.prepay(&mp).await.unwrap(), Prepay::PrepayId(_)));
    let app_order = Order::new(&app, "App", "V3APP00001", Fen(100), notify, Channel::App).unwrap();
    let Prepay::PrepayId(app_prepay) = pay.prepay(&app_order).await.unwrap() else {
        panic!("APP gives a prepay_id")
    };
    let h5 = Order::new(
        &app,
        "H5",
        "V3H5000001",
        Fen(100),
        notify,
        Channel::H5 {
            payer_client_ip: "127.0.0.1".into(),
        },
    )
    .unwrap();
    assert!(matches!(pay.prepay(&h5).await.unwrap(), Prepay::H5Url(u) if u.starts_with("https://")));
    let native = Order::new(&app, "Native", "V3NATIVE01", Fen(100), notify, Channel::Native)
        .unwrap()
        .expires_at(wechat_core::SystemClock.now_ms() / 1000 + 600);
    assert!(matches!(pay.prepay(&native).await.unwrap(), Prepay::CodeUrl(u) if u.starts_with("weixin://")));
    // The same order again: the same prepay id. Another order under the number: refused.
    assert_eq!(
        pay.prepay(&jsapi("V3JSAPI001", notify)).await.unwrap(),
        Prepay::PrepayId(prepay_id.clone())
    );
    let reused = Order::new(&app, "other", "V3JSAPI001", Fen(1), notify, Channel::Native).unwrap();
    assert!(matches!(
        pay.prepay(&reused).await,
        Err(Error::Api {
            code: ErrorCode::InvalidRequest,
            status: 400,
            ..
        })
    ));

    // The payment parameters are accepted by the cashier (paySign RSA over the four lines).
    let params = pay.jsapi_params(&app, &prepay_id, wechat_core::SystemClock.now_ms() / 1000);
    assert_eq!(params.sign_type, "RSA");
    let cashier = reqwest::Client::new()
        .get(format!("{}/_sim/pay/cashier", sim.base_url()))
        .query(&[
            ("appId", params.app_id.as_str()),
            ("timeStamp", &params.time_stamp),
            ("nonceStr", &params.nonce_str),
            ("package", &params.package),
            ("signType", &params.sign_type),
            ("paySign", &params.pay_sign),
            ("return_url", "http://127.0.0.1/back"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(cashier.status(), 200, "the cashier accepts our paySign");
    let mut forged = params.clone();
    forged.pay_sign = pay.jsapi_params(&app, "wxother", 1).pay_sign;
    let page = reqwest::Client::new()
        .get(format!("{}/_sim/pay/cashier", sim.base_url()))
        .query(&[
            ("appId", forged.app_id.as_str()),
            ("timeStamp", &forged.time_stamp),
            ("nonceStr", &forged.nonce_str),
            ("package", &forged.package),
            ("signType", &forged.sign_type),
            ("paySign", &forged.pay_sign),
            ("return_url", "http://127.0.0.1/back"),
        ])
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("支付验证签名失败"));
    let app_params = pay.app_params(&app, &app_prepay, 1_800_000_000);
    assert_eq!(
        (app_params.package.as_str(), app_params.partnerid.as_str()),
        ("Sign=WXPay", TEST_MCH_ID)
    );

    // Query before and after paying; by our number and by WeChat's.
    let t = pay.query(&OrderRef::OutTradeNo("V3JSAPI001".into())).await.unwrap();
    assert_eq!(t.trade_state, TradeState::NotPay);
    let transaction_id = sim.handle().pay_order("V3JSAPI001", None, None).unwrap();
    let t = pay
        .query(&OrderRef::TransactionId(transaction_id.clone()))
        .await
        .unwrap();
    assert_eq!(t.trade_state, TradeState::Success);
    assert_eq!(t.amount.as_ref().map(|a| a.total), Some(1800));
    assert_eq!(t.payer.as_ref().map(|p| p.openid.as_str()), Some("o-payer"));
    assert!(matches!(
        pay.query(&OrderRef::OutTradeNo("V3NOSUCH01".into())).await,
        Err(Error::Api {
            code: ErrorCode::OrderNotExist,
            status: 404,
            ..
        })
    ));

    // Close: an open order (204), a paid one (ORDERPAID).
    pay.close("V3NATIVE01").await.unwrap();
    let t = pay.query(&OrderRef::OutTradeNo("V3NATIVE01".into())).await.unwrap();
    assert_eq!(t.trade_state, TradeState::Closed);
    assert!(matches!(
        pay.close("V3JSAPI001").await,
        Err(Error::Api {
            code: ErrorCode::OrderPaid,
            ..
        })
    ));
    assert!(matches!(
        pay.prepay(&native).await,
        Err(Error::Api {
            code: ErrorCode::OrderClosed,
            ..
        })
    ));

    // Refunds: accepted as PROCESSING, then SUCCESS; the same number again is the same refund; too much: NOT_ENOUGH.
    let refund = RefundRequest::new(
        OrderRef::OutTradeNo("V3JSAPI001".into()),
        "V3REFUND01",
        Fen(800),
        Fen(1800),
    )
    .unwrap()
    .reason("顾客退货")
    .unwrap();
    let r = pay.refund(&refund).await.unwrap();
    assert_eq!((r.status.clone(), r.amount.refund), (RefundState::Processing, 800));
    let again = pay.refund(&refund).await.unwrap();
    assert_eq!(again.refund_id, r.refund_id);
    let q = pay.refund_query("V3REFUND01").await.unwrap();
    assert_eq!((q.status, q.refund_id), (RefundState::Success, r.refund_id));
    let too_much = RefundRequest::new(
        OrderRef::TransactionId(transaction_id),
        "V3REFUND02",
        Fen(1001),
        Fen(1800),
    )
    .unwrap();
    let e = pay.refund(&too_much).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Api {
                code: ErrorCode::NotEnough,
                status: 403,
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.is_retryable());
    assert!(matches!(
        pay.refund_query("V3NOSUCH01").await,
        Err(Error::Api {
            code: ErrorCode::ResourceNotExists,
            ..
        })
    ));
    sim.stop().await;
}

#[tokio::test]
async fn the_simulator_refuses_wrong_keys_serials_and_stale_requests_with_sign_error() {
    let sim = spawn_sim().await;
    let info = register_v3_merchant(&sim, SigningMode::PublicKey);
    let build = |signer: RequestSigner| {
        Client::builder(signer, ApiV3Key::new(TEST_API_V3_KEY))
            .base_url(&sim.base_url())
            .public_key(
                info.public_key_id.clone(),
                PublicKey::from_pem(&info.public_key_pem).unwrap(),
            )
            .build()
            .unwrap()
    };
    let other_key =
        MerchantPrivateKey::from_pem(include_str!("../../crates/wechat-pay/testdata/merchant.key")).unwrap();
    let wrong_key = build(RequestSigner::new(
        TEST_MCH_ID,
        wechat_sim::SANDBOX_MERCHANT_SERIAL,
        other_key,
    ));
    let wrong_serial = build(RequestSigner::new(
        TEST_MCH_ID,
        "0123456789ABCDEF0123456789ABCDEF01234567",
        MerchantPrivateKey::from_pem(wechat_sim::SANDBOX_MERCHANT_KEY).unwrap(),
    ));
    for pay in [wrong_key, wrong_serial] {
        let e = pay.query(&OrderRef::OutTradeNo("V3ANY00001".into())).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Api {
                    code: ErrorCode::SignError,
                    status: 401,
                    ..
                }
            ),
            "{e}"
        );
    }
    // A correctly signed request replayed 6 minutes late (or a clock that far off): 401 SIGN_ERROR too.
    let stale = (wechat_core::SystemClock.now_ms() / 1000 - 360).to_string();
    let path = format!("/v3/pay/transactions/out-trade-no/V3ANY00001?mchid={TEST_MCH_ID}");
    let auth = signer().authorization("GET", &path, stale.parse().unwrap(), "NONCE0001", b"");
    let r = reqwest::Client::new()
        .get(format!("{}{path}", sim.base_url()))
        .header("Authorization", auth)
        .header("User-Agent", "test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["code"], "SIGN_ERROR");
    // A response whose signature was altered is not believed.
    let good = client(&sim, Mode::PublicKey);
    good.prepay(&jsapi("V3BADSIG01", "http://127.0.0.1:9/n")).await.unwrap();
    sim.handle().inject_bad_pay_signatures(1);
    let e = good
        .query(&OrderRef::OutTradeNo("V3BADSIG01".into()))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Verify(VerifyError::BadSignature(_))), "{e}");
    sim.stop().await;
}

#[tokio::test]
async fn notifies_verify_in_certificate_public_key_and_switch_over_mode() {
    for (sim_mode, mode) in [
        (SigningMode::Certificate, Mode::Certificates),
        (SigningMode::PublicKey, Mode::PublicKey),
        (SigningMode::SwitchOver, Mode::Both),
    ] {
        let sim = spawn_sim().await;
        let info = register_v3_merchant(&sim, sim_mode);
        let pay = client(&sim, mode);
        let rx = start_receiver(pay.clone()).await;
        for i in 0..6 {
            let no = format!("V3MODE{i:04}");
            pay.prepay(&jsapi(&no, &rx.url)).await.unwrap();
            sim.handle().pay_order(&no, None, None).unwrap();
        }
        eventually("six notifies arrive", || rx.seen.lock().unwrap().len() >= 6).await;
        let seen = rx.seen.lock().unwrap().clone();
        for (serial, result) in &seen {
            let n = result
                .as_ref()
                .unwrap_or_else(|e| panic!("{sim_mode:?}: {serial}: {e}"));
            assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
            assert!(matches!(&n.event, Event::TransactionSuccess(t) if t.trade_state == TradeState::Success));
        }
        let by_key = seen.iter().filter(|(s, _)| *s == info.public_key_id).count();
        match sim_mode {
            SigningMode::Certificate => assert_eq!(by_key, 0),
            SigningMode::PublicKey => assert_eq!(by_key, 6),
            // Half and half, and every one verified.
            SigningMode::SwitchOver => assert_eq!(by_key, 3),
        }
        assert_eq!(pay.keys().downloads(), u64::from(mode != Mode::PublicKey));
        sim.stop().await;
    }

    // A public-key-only client meets a certificate-signed notify (the merchant misconfigured the switch-over):
    // refused as an unknown serial, and nothing is downloaded.
    let sim = spawn_sim().await;
    register_v3_merchant(&sim, SigningMode::PublicKey);
    let pay = client(&sim, Mode::PublicKey);
    let rx = start_receiver(pay.clone()).await;
    pay.prepay(&jsapi("V3MISMATCH", &rx.url)).await.unwrap();
    sim.handle()
        .set_v3_signing(TEST_MCH_ID, SigningMode::Certificate, 0)
        .unwrap();
    sim.handle().pay_order("V3MISMATCH", None, None).unwrap();
    eventually("the notify arrives", || !rx.seen.lock().unwrap().is_empty()).await;
    let (_, result) = rx.seen.lock().unwrap()[0].clone();
    assert!(result.unwrap_err().contains("unknown serial"));
    assert_eq!(pay.keys().downloads(), 0);
    sim.stop().await;
}

#[tokio::test]
async fn a_rotation_mid_run_costs_exactly_one_download() {
    let sim = spawn_sim().await;
    let info = register_v3_merchant(&sim, SigningMode::Certificate);
    let pay = client_with(
        &sim,
        Mode::Certificates,
        Arc::new(wechat_core::SystemClock),
        RefreshPolicy::default().with_min_interval(0),
    );
    let rx = start_receiver(pay.clone()).await;
    pay.prepay(&jsapi("V3ROTATE01", &rx.url)).await.unwrap();
    assert_eq!(pay.keys().downloads(), 1, "the first response brings the certificates");
    sim.handle().pay_order("V3ROTATE01", None, None).unwrap();
    eventually("first notify", || rx.seen.lock().unwrap().len() == 1).await;

    let new_serial = sim.handle().rotate_platform_certificate(TEST_MCH_ID).unwrap();
    assert_ne!(new_serial, info.platform_serial);
    // Several notifies signed by the new certificate arrive at once.
    for i in 2..=6 {
        let no = format!("V3ROTATE0{i}");
        pay.prepay(&jsapi(&no, &rx.url)).await.unwrap();
        sim.handle().pay_order(&no, None, None).unwrap();
    }
    eventually("all notifies", || rx.seen.lock().unwrap().len() == 6).await;
    let seen = rx.seen.lock().unwrap().clone();
    assert!(seen.iter().all(|(_, r)| r.is_ok()), "{seen:?}");
    assert!(seen.iter().skip(1).all(|(s, _)| *s == new_serial));
    assert_eq!(pay.keys().downloads(), 2, "exactly one download for the rotation");
    let serials: Vec<String> = pay.keys().verifier().serials().into_iter().map(|(s, _)| s).collect();
    assert!(serials.contains(&new_serial) && serials.contains(&info.platform_serial));
    sim.stop().await;
}

/// A notify signed by a key WeChat never published (an attacker's, or a serial that stays unknown).
fn unknown_notify(serial: &str, timestamp: i64) -> (http::HeaderMap, Vec<u8>) {
    let key = MerchantPrivateKey::from_pem(include_str!("../../crates/wechat-pay/testdata/pubkey.key")).unwrap();
    let body = br#"{"id":"EV-x","create_time":"","event_type":"TRANSACTION.SUCCESS","summary":"","resource":{"algorithm":"AEAD_AES_256_GCM","ciphertext":"AAAA","associated_data":"transaction","nonce":"abcdefghijkl"}}"#.to_vec();
    let ts = timestamp.to_string();
    let signature = key.sign(&wechat_pay::v3::sign::response_message(&ts, "nonce", &body));
    let mut h = http::HeaderMap::new();
    h.insert("Wechatpay-Timestamp", ts.parse().unwrap());
    h.insert("Wechatpay-Nonce", "nonce".parse().unwrap());
    h.insert("Wechatpay-Signature", signature.parse().unwrap());
    h.insert("Wechatpay-Serial", serial.parse().unwrap());
    (h, body)
}

#[tokio::test]
async fn unknown_serials_are_refused_without_a_download_storm() {
    let sim = spawn_sim().await;
    register_v3_merchant(&sim, SigningMode::Certificate);
    // Even with no floor between downloads, one serial that stays unknown costs one download, not a hundred.
    let pay = client_with(
        &sim,
        Mode::Certificates,
        Arc::new(wechat_core::SystemClock),
        RefreshPolicy::default().with_min_interval(0),
    );
    pay.download_certificates().await.unwrap();
    let before = pay.keys().downloads();
    let now = wechat_core::SystemClock.now_ms() / 1000;
    let calls = (0..100).map(|_| {
        let pay = pay.clone();
        tokio::spawn(async move {
            let (h, body) = unknown_notify("7E57AB1E7E57AB1E7E57AB1E7E57AB1E7E57AB1E", now);
            pay.verify_notify(&h, &body).await
        })
    });
    for call in calls {
        let e = call.await.unwrap().unwrap_err();
        assert!(matches!(e, Error::Verify(VerifyError::UnknownSerial(_))), "{e}");
    }
    assert!(
        pay.keys().downloads() - before <= 1,
        "{} downloads",
        pay.keys().downloads() - before
    );

    // A hundred different unknown serials: the default floor keeps it to at most one download a minute.
    let pay = client(&sim, Mode::Certificates);
    pay.download_certificates().await.unwrap();
    let before = pay.keys().downloads();
    for i in 0..100 {
        let (h, body) = unknown_notify(&format!("7E57AB1E7E57AB1E7E57AB1E7E57AB1E7E57{i:04}"), now);
        assert!(pay.verify_notify(&h, &body).await.is_err());
    }
    assert!(pay.keys().downloads() - before <= 1);
    // A public key id that is not ours is never downloaded for.
    let (h, body) = unknown_notify("PUB_KEY_ID_0000000000000000000000000000000000", now);
    assert!(matches!(
        pay.verify_notify(&h, &body).await,
        Err(Error::Verify(VerifyError::UnknownSerial(_)))
    ));
    sim.stop().await;
}

#[tokio::test]
async fn forged_probed_and_replayed_notifies_are_refused() {
    let sim = spawn_sim().await;
    register_v3_merchant(&sim, SigningMode::PublicKey);
    let clock = Arc::new(TestClock::default());
    let pay = client_with(&sim, Mode::PublicKey, clock.clone(), RefreshPolicy::default());
    // Capture a real notify as delivered.
    let captured: Captured = Arc::default();
    let cap = captured.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let cap = cap.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let cap = cap.clone();
            async move {
                *cap.lock().unwrap() = Some((to_http(&req), body.to_vec()));
                HttpResponse::NoContent().finish()
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    pay.prepay(&jsapi("V3REPLAY01", &format!("http://127.0.0.1:{port}/n")))
        .await
        .unwrap();
    sim.handle().pay_order("V3REPLAY01", None, None).unwrap();
    eventually("the notify", || captured.lock().unwrap().is_some()).await;
    let (headers, body) = captured.lock().unwrap().clone().unwrap();
    assert!(pay.verify_notify(&headers, &body).await.is_ok(), "genuine");

    // Forged: the amount changed in transit (the body is sealed, so change the envelope).
    let forged = String::from_utf8(body.clone()).unwrap().replace("支付成功", "支付失败");
    assert!(matches!(
        pay.verify_notify(&headers, forged.as_bytes()).await,
        Err(Error::Verify(VerifyError::BadSignature(_)))
    ));
    // WeChat's probe.
    let mut probe = headers.clone();
    probe.insert("Wechatpay-Signature", "WECHATPAY/SIGNTEST/abcdef".parse().unwrap());
    assert!(matches!(
        pay.verify_notify(&probe, &body).await,
        Err(Error::Verify(VerifyError::Probe))
    ));
    // A header missing.
    let mut missing = headers.clone();
    missing.remove("Wechatpay-Nonce");
    assert!(matches!(
        pay.verify_notify(&missing, &body).await,
        Err(Error::Verify(VerifyError::MissingHeader("Wechatpay-Nonce")))
    ));
    // Replayed ten minutes later.
    clock.advance(600);
    assert!(matches!(
        pay.verify_notify(&headers, &body).await,
        Err(Error::Verify(VerifyError::StaleTimestamp { .. }))
    ));
    let message = SignedMessage::from_headers(&headers, &body).unwrap();
    assert!(
        pay.keys().verifier().with_max_skew(0).verify(&message, 0).is_ok(),
        "recorded vectors replay with the check off"
    );
    sim.stop().await;
}

#[tokio::test]
async fn refund_notifies_are_typed_and_abnormal_refunds_reported() {
    let sim = spawn_sim().await;
    register_v3_merchant(&sim, SigningMode::PublicKey);
    let pay = client(&sim, Mode::PublicKey);
    let rx = start_receiver(pay.clone()).await;
    pay.prepay(&jsapi("V3REFNOT01", &rx.url)).await.unwrap();
    sim.handle().pay_order("V3REFNOT01", None, None).unwrap();
    eventually("payment notify", || rx.seen.lock().unwrap().len() == 1).await;
    let refund = |no: &str, fee| {
        RefundRequest::new(OrderRef::OutTradeNo("V3REFNOT01".into()), no, Fen(fee), Fen(1800))
            .unwrap()
            .notify_url(&rx.url)
            .unwrap()
    };
    pay.refund(&refund("V3RN000001", 100)).await.unwrap();
    sim.handle().set_v3_abnormal_refunds(1);
    pay.refund(&refund("V3RN000002", 200)).await.unwrap();
    eventually("refund notifies", || rx.seen.lock().unwrap().len() == 3).await;
    let seen = rx.seen.lock().unwrap().clone();
    let states: Vec<(String, RefundState)> = seen[1..]
        .iter()
        .map(|(_, r)| match &r.as_ref().unwrap().event {
            Event::Refund(info) => (info.out_refund_no.clone(), info.status.clone()),
            other => panic!("not a refund: {other:?}"),
        })
        .collect();
    assert!(states.contains(&("V3RN000001".into(), RefundState::Success)));
    assert!(states.contains(&("V3RN000002".into(), RefundState::Abnormal)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    sim.stop().await;
}

#[tokio::test]
async fn a_system_error_is_retryable_with_the_same_order_and_a_refusal_is_not() {
    let sim = spawn_sim().await;
    register_v3_merchant(&sim, SigningMode::PublicKey);
    let pay = client(&sim, Mode::PublicKey);
    let order = jsapi("V3RETRY001", "http://127.0.0.1:9/n");
    sim.handle().inject_v3_error(wechat_sim::V3Error {
        path: "/v3/pay/transactions/jsapi".into(),
        status: 500,
        code: "SYSTEM_ERROR".into(),
        count: 1,
        after: false,
        delay_ms: None,
    });
    let e = pay.prepay(&order).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Api {
                code: ErrorCode::SystemError,
                status: 500,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_retryable());
    // The same order again: placed once.
    let first = pay.prepay(&order).await.unwrap();
    assert_eq!(pay.prepay(&order).await.unwrap(), first);
    sim.handle().inject_v3_error(wechat_sim::V3Error {
        path: "/v3/pay/transactions/out-trade-no/".into(),
        status: 429,
        code: "FREQUENCY_LIMITED".into(),
        count: 1,
        after: false,
        delay_ms: None,
    });
    let e = pay.query(&OrderRef::OutTradeNo("V3RETRY001".into())).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Api {
                code: ErrorCode::FrequencyLimited,
                ..
            }
        ) && e.is_retryable()
    );
    assert_eq!(
        pay.query(&OrderRef::OutTradeNo("V3RETRY001".into()))
            .await
            .unwrap()
            .trade_state,
        TradeState::NotPay
    );
    sim.stop().await;
}

#[tokio::test]
async fn certificates_are_refreshed_ahead_of_expiry_and_when_old() {
    let sim = spawn_sim().await;
    register_v3_merchant(&sim, SigningMode::Certificate);
    let clock = Arc::new(TestClock::default());
    let info = sim.handle().v3_merchant(TEST_MCH_ID).unwrap();
    // The timestamp check is off here: this test moves the client's clock by years, the simulator signs in real time.
    let merchant = wechat::Pay::builder()
        .app_id(TEST_APP_ID)
        .mch_id(TEST_MCH_ID)
        .base_url(&sim.base_url())
        .v3(
            MerchantPrivateKey::from_pem(wechat_sim::SANDBOX_MERCHANT_KEY).unwrap(),
            wechat_sim::SANDBOX_MERCHANT_SERIAL,
            ApiV3Key::new(TEST_API_V3_KEY),
        )
        .v3_clock(clock.clone())
        .v3_max_skew(0)
        .build()
        .unwrap();
    let pay = merchant.v3().unwrap();
    pay.prepay(&jsapi("V3AGE00001", "http://127.0.0.1:9/n")).await.unwrap();
    assert_eq!(pay.keys().downloads(), 1);
    pay.query(&OrderRef::OutTradeNo("V3AGE00001".into())).await.unwrap();
    assert_eq!(pay.keys().downloads(), 1, "fresh certificates are not downloaded again");
    // Thirteen hours later: older than the 12 h maximum age.
    clock.advance(13 * 3600);
    pay.query(&OrderRef::OutTradeNo("V3AGE00001".into())).await.unwrap();
    assert_eq!(pay.keys().downloads(), 2);
    // Within a day of the certificate's end: downloaded again ahead of expiry (and not on every call after that:
    // at most once a minute).
    let cert = wechat_pay::v3::Certificate::from_pem(&info.platform_certificate_pem).unwrap();
    let now = wechat_core::SystemClock.now_ms() / 1000;
    clock.advance(cert.not_after() - now - 3600 - 13 * 3600);
    pay.query(&OrderRef::OutTradeNo("V3AGE00001".into())).await.unwrap();
    pay.query(&OrderRef::OutTradeNo("V3AGE00001".into())).await.unwrap();
    assert_eq!(pay.keys().downloads(), 3);
    sim.stop().await;
}

/// Bills: the simulator's trade bill for today, fetched the v3 way (location signed and verified, the file by a
/// signed GET, its SHA-1 checked, gzipped on the way), holds the day's payment and refund; the fund-flow bill too; a
/// day without trades is an empty bill; a tampered file (hash mismatch) is refused.
#[tokio::test]
async fn bills_are_downloaded_checked_and_read() {
    let sim = spawn_sim().await;
    register_v3_merchant(&sim, SigningMode::PublicKey);
    let pay = client(&sim, Mode::PublicKey);
    let order = Order::new(
        &AppId::new(TEST_APP_ID),
        "账单测试",
        "V3BILL0001",
        Fen(990),
        "http://127.0.0.1:9/n",
        Channel::Native,
    )
    .unwrap();
    pay.prepay(&order).await.unwrap();
    sim.handle().pay_order("V3BILL0001", None, None).unwrap();
    let refund = RefundRequest::new(
        OrderRef::OutTradeNo("V3BILL0001".into()),
        "V3BILLR001",
        Fen(300),
        Fen(990),
    )
    .unwrap();
    pay.refund(&refund).await.unwrap();
    let today = beijing_today();
    let bill = pay.trade_bill(&today).await.unwrap();
    let paid = bill
        .rows
        .iter()
        .find(|r| r.trade_state == "SUCCESS")
        .expect("the payment");
    assert_eq!((paid.out_trade_no.as_str(), paid.total_fee), ("V3BILL0001", 990));
    let refunded = bill
        .rows
        .iter()
        .find(|r| r.trade_state == "REFUND")
        .expect("the refund");
    assert_eq!(
        (refunded.out_refund_no.as_str(), refunded.refund_fee),
        ("V3BILLR001", 300)
    );
    assert_eq!(bill.count, 2);
    let flow = pay
        .bill(&today, wechat_pay::v3::request::BillKind::FundFlow, false)
        .await
        .unwrap();
    assert!(
        flow.starts_with("记账时间,") && flow.contains("`收入") && flow.contains("`支出"),
        "{flow}"
    );
    let quiet = pay.trade_bill("2020-01-01").await.unwrap();
    assert!(quiet.rows.is_empty());
    assert!(pay.trade_bill("2026/12/04").await.is_err());
    sim.handle().tamper_bill_downloads(1);
    let e = pay.trade_bill(&today).await.unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
}

/// A public-key merchant has no platform certificate: `/v3/certificates` answers 404 RESOURCE_NOT_EXISTS, as WeChat
/// Pay answers merchants registered since late 2024 — and a public-key client never asks.
#[tokio::test]
async fn a_public_key_merchant_has_no_platform_certificate() {
    let sim = spawn_sim().await;
    register_v3_merchant(&sim, SigningMode::PublicKey);
    let asks_anyway = client(&sim, Mode::Certificates);
    match asks_anyway.download_certificates().await {
        Err(Error::Api {
            status: 404,
            code,
            message,
            ..
        }) => {
            assert_eq!(code.as_str(), "RESOURCE_NOT_EXISTS");
            assert!(message.contains("无可用的平台证书"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let pay = client(&sim, Mode::PublicKey);
    assert_eq!(pay.keys().downloads(), 0);
}

/// Today in Beijing, `YYYY-MM-DD` (the simulator's bills are per Beijing day).
fn beijing_today() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string()
}
