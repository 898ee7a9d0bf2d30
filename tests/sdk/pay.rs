//! wechat-pay against the simulator: order lifecycle, notifies (with retries), refunds, and every refusal.

use actix_web::{App, HttpResponse, HttpServer, web};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wechat_pay::notify::{self, PaymentNotify, RefundNotify};
use wechat_pay::{
    Error, Fen, Merchant, OrderRef, PayClient, PayKey, Refund, SignType, TradeState, TradeType, UnifiedOrder,
};
use wechat_sim::SimServer;
use wxkit_testkit::{TEST_APP_ID, eventually, spawn_sim};

const MCH_ID: &str = "1900000109";
const KEY: &str = "8934e7d15453e97507ef794cf7b0519d";

fn merchant(sign_type: SignType) -> Merchant {
    Merchant::new(TEST_APP_ID, MCH_ID, PayKey::new(KEY), sign_type)
}

async fn sim_with_merchant() -> SimServer {
    let sim = spawn_sim().await;
    sim.handle().add_merchant(MCH_ID, KEY);
    sim
}

/// The merchant, wired as an embedding service does: the `Pay` handle's builder.
fn client(sim: &SimServer, sign_type: SignType) -> PayClient {
    // The simulator speaks plain HTTP, so the "certificate" transport is a plain one here.
    let transport = Arc::new(wechat_core::ReqwestTransport::new().unwrap());
    let pay = wechat::Pay::builder()
        .app_id(TEST_APP_ID)
        .mch_id(MCH_ID)
        .v2_key(PayKey::new(KEY))
        .v2_sign_type(sign_type)
        .base_url(&sim.base_url())
        .certificate_transport(transport)
        .build()
        .unwrap();
    pay.v2().unwrap().clone()
}

#[derive(Default)]
struct Received {
    payments: Vec<PaymentNotify>,
    refunds: Vec<RefundNotify>,
    bodies: usize,
}

/// A merchant notify endpoint: verifies what it gets with wechat-pay and answers FAIL to the first `fail_first`.
struct Receiver {
    url: String,
    received: Arc<Mutex<Received>>,
}

async fn start_receiver(sign_type: SignType, fail_first: usize) -> Receiver {
    let received = Arc::new(Mutex::new(Received::default()));
    let failures = Arc::new(AtomicUsize::new(fail_first));
    let state = (received.clone(), failures);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let (received, failures) = state.clone();
        App::new().route(
            "/notify/{kind}",
            web::post().to(move |kind: web::Path<String>, body: web::Bytes| {
                let (received, failures) = (received.clone(), failures.clone());
                async move {
                    let m = merchant(sign_type);
                    let mut r = received.lock().unwrap();
                    r.bodies += 1;
                    if failures.load(Ordering::SeqCst) > 0 {
                        failures.fetch_sub(1, Ordering::SeqCst);
                        return HttpResponse::Ok().body(notify::fail_reply("busy"));
                    }
                    let ok = if kind.as_str() == "pay" {
                        notify::parse_payment_notify(&m, &body)
                            .map(|n| r.payments.push(n))
                            .is_ok()
                    } else {
                        notify::parse_refund_notify(&m, &body)
                            .map(|n| r.refunds.push(n))
                            .is_ok()
                    };
                    HttpResponse::Ok().body(if ok {
                        notify::SUCCESS_REPLY.to_owned()
                    } else {
                        notify::fail_reply("bad")
                    })
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
        url: format!("http://127.0.0.1:{port}/notify"),
        received,
    }
}

fn jsapi_order(no: &str, fee: u64, notify_url: &str) -> UnifiedOrder {
    UnifiedOrder::builder()
        .body("测试商品")
        .out_trade_no(no)
        .total_fee(Fen(fee))
        .client_ip("127.0.0.1")
        .notify_url(notify_url)
        .trade_type(TradeType::Jsapi {
            openid: "o-payer".into(),
        })
        .attach("coupon=7")
        .build()
        .unwrap()
}

#[tokio::test]
async fn create_query_pay_notify_query_refund_refund_notify() {
    for sign_type in [SignType::Md5, SignType::HmacSha256] {
        let sim = sim_with_merchant().await;
        let rx = start_receiver(sign_type, 0).await;
        let pay = client(&sim, sign_type);
        let no = format!("ORDER{}", if sign_type == SignType::Md5 { "MD5" } else { "HMAC" });

        let prepay = pay
            .unified_order(&jsapi_order(&no, 1800, &format!("{}/pay", rx.url)))
            .await
            .unwrap();
        assert!(prepay.prepay_id.starts_with("wx"));
        let params = pay.jsapi_params(&prepay.prepay_id, 1_700_000_000);
        assert_eq!(params.package, format!("prepay_id={}", prepay.prepay_id));
        assert_eq!(params.sign_type, sign_type.as_str());

        let status = pay.order_query(&OrderRef::OutTradeNo(no.clone())).await.unwrap();
        assert_eq!(status.trade_state, TradeState::NotPay);

        let transaction_id = sim.handle().pay_order(&no, None, None).unwrap();
        eventually("the payment notify", || rx.received.lock().unwrap().payments.len() == 1).await;
        let paid = rx.received.lock().unwrap().payments[0].clone();
        assert!(paid.paid);
        assert_eq!(paid.total_fee, Fen(1800));
        assert_eq!(paid.transaction_id, transaction_id);
        assert_eq!(paid.attach.as_deref(), Some("coupon=7"));

        let status = pay
            .order_query(&OrderRef::TransactionId(transaction_id.clone()))
            .await
            .unwrap();
        assert_eq!(status.trade_state, TradeState::Success);
        assert_eq!(status.total_fee, Some(Fen(1800)));

        let refund = Refund::new(OrderRef::OutTradeNo(no.clone()), "R1", Fen(1800), Fen(500))
            .unwrap()
            .notify_url(&format!("{}/refund", rx.url))
            .unwrap();
        let accepted = pay.refund(&refund).await.unwrap();
        assert_eq!(accepted.refund_fee, Fen(500));
        // Retrying the same refund is idempotent.
        assert_eq!(pay.refund(&refund).await.unwrap().refund_id, accepted.refund_id);
        eventually("the refund notify", || rx.received.lock().unwrap().refunds.len() == 1).await;
        let refunded = rx.received.lock().unwrap().refunds[0].clone();
        assert_eq!(refunded.out_refund_no, "R1");
        assert_eq!(refunded.refund_fee, Fen(500));
        assert_eq!(refunded.refund_status, "SUCCESS");

        let too_much = Refund::new(OrderRef::OutTradeNo(no.clone()), "R2", Fen(1800), Fen(1301)).unwrap();
        assert_eq!(pay.refund(&too_much).await.unwrap_err().err_code(), Some("NOTENOUGH"));
        let refunds = pay.refund_query(&OrderRef::OutTradeNo(no.clone())).await.unwrap();
        assert_eq!(refunds.len(), 1);
        assert_eq!(
            pay.order_query(&OrderRef::OutTradeNo(no)).await.unwrap().trade_state,
            TradeState::Refund
        );
        assert_eq!(sim.handle().notifications().iter().filter(|n| n.delivered).count(), 2);
    }
}

#[tokio::test]
async fn notifies_are_retried_on_wechats_schedule_until_success() {
    let sim = sim_with_merchant().await;
    let rx = start_receiver(SignType::Md5, 2).await;
    let pay = client(&sim, SignType::Md5);
    pay.unified_order(&jsapi_order("RETRY1", 100, &format!("{}/pay", rx.url)))
        .await
        .unwrap();
    sim.handle().pay_order("RETRY1", None, None).unwrap();

    // Each attempt is counted by the simulator (and its next one scheduled, from its clock) only after the answer
    // arrives, a moment after the receiver saw the body: the clock is moved after that, or a retry would be
    // scheduled from the moved clock (a race a loaded CI machine once lost).
    let attempts = |n: u32| sim.handle().notifications().first().is_some_and(|x| x.attempts == n);
    eventually("the first attempt", || {
        rx.received.lock().unwrap().bodies == 1 && attempts(1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        rx.received.lock().unwrap().bodies,
        1,
        "the next attempt waits 15 s of simulated time"
    );
    sim.handle().advance_clock(15);
    eventually("the second attempt", || {
        rx.received.lock().unwrap().bodies == 2 && attempts(2)
    })
    .await;
    sim.handle().advance_clock(15);
    eventually("the third attempt, answered SUCCESS", || {
        rx.received.lock().unwrap().payments.len() == 1
    })
    .await;
    sim.handle().advance_clock(3600);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let n = &sim.handle().notifications()[0];
    assert!(n.delivered);
    assert_eq!(n.attempts, 3);
    assert_eq!(
        rx.received.lock().unwrap().bodies,
        3,
        "no more deliveries after SUCCESS"
    );
}

#[tokio::test]
async fn duplicate_out_trade_no_close_too_early_and_bad_signatures() {
    let sim = sim_with_merchant().await;
    let pay = client(&sim, SignType::HmacSha256);
    let notify_url = "http://127.0.0.1:9/notify";
    let first = pay.unified_order(&jsapi_order("DUP1", 100, notify_url)).await.unwrap();
    // The same order again: the same prepay_id. Different content: OUT_TRADE_NO_USED.
    assert_eq!(
        pay.unified_order(&jsapi_order("DUP1", 100, notify_url))
            .await
            .unwrap()
            .prepay_id,
        first.prepay_id
    );
    let err = pay
        .unified_order(&jsapi_order("DUP1", 200, notify_url))
        .await
        .unwrap_err();
    assert_eq!(err.err_code(), Some("OUT_TRADE_NO_USED"));

    let err = pay.close_order("DUP1").await.unwrap_err();
    assert_eq!(
        err.err_code(),
        Some("SYSTEMERROR"),
        "closing within 5 minutes is refused"
    );
    sim.handle().advance_clock(301);
    pay.close_order("DUP1").await.unwrap();
    assert_eq!(
        pay.close_order("DUP1").await.unwrap_err().err_code(),
        Some("ORDERCLOSED")
    );
    assert_eq!(
        pay.order_query(&OrderRef::OutTradeNo("DUP1".into()))
            .await
            .unwrap()
            .trade_state,
        TradeState::Closed
    );
    assert_eq!(
        pay.unified_order(&jsapi_order("DUP1", 100, notify_url))
            .await
            .unwrap_err()
            .err_code(),
        Some("ORDERCLOSED")
    );
    assert_eq!(
        pay.order_query(&OrderRef::OutTradeNo("NOPE".into()))
            .await
            .unwrap_err()
            .err_code(),
        Some("ORDERNOTEXIST")
    );

    // A response whose signature does not verify is refused, never trusted.
    reqwest::Client::new()
        .post(format!("{}/_sim/pay/faults", sim.base_url()))
        .json(&serde_json::json!({"bad_sign_responses": 1}))
        .send()
        .await
        .unwrap();
    let err = pay.order_query(&OrderRef::OutTradeNo("DUP1".into())).await.unwrap_err();
    assert!(matches!(err, Error::ResponseSignature(_)), "{err:?}");

    // Our request signed with the wrong key: WeChat refuses it at the transport layer.
    let wrong = wechat::Pay::builder()
        .app_id(TEST_APP_ID)
        .mch_id(MCH_ID)
        .v2_key(PayKey::new("0".repeat(32)))
        .v2_sign_type(SignType::Md5)
        .base_url(&sim.base_url())
        .build()
        .unwrap();
    let err = wrong
        .v2()
        .unwrap()
        .order_query(&OrderRef::OutTradeNo("DUP1".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ReturnFail { ref return_msg } if return_msg.contains("SIGNERROR")),
        "{err:?}"
    );

    // A refund without the certificate transport is refused before sending.
    let no_cert = wechat::Pay::builder()
        .app_id(TEST_APP_ID)
        .mch_id(MCH_ID)
        .v2_key(PayKey::new(KEY))
        .base_url(&sim.base_url())
        .build()
        .unwrap();
    let refund = Refund::new(OrderRef::OutTradeNo("DUP1".into()), "R9", Fen(100), Fen(1)).unwrap();
    assert!(matches!(
        no_cert.v2().unwrap().refund(&refund).await,
        Err(Error::CertificateRequired)
    ));
}

#[tokio::test]
async fn the_simulator_enforces_required_fields_per_trade_type() {
    let sim = sim_with_merchant().await;
    let key = PayKey::new(KEY);
    let http = reqwest::Client::new();
    let send = |fields: Vec<(&str, &str)>| {
        let mut f: wechat_pay::xml::Fields = fields.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        wechat_pay::sign::seal(&mut f, &key, SignType::Md5);
        let body = wechat_pay::xml::to_xml(&f);
        let http = http.clone();
        let url = format!("{}/pay/unifiedorder", sim.base_url());
        async move {
            wechat_pay::xml::parse(&http.post(url).body(body).send().await.unwrap().bytes().await.unwrap()).unwrap()
        }
    };
    let base = vec![
        ("appid", TEST_APP_ID),
        ("mch_id", MCH_ID),
        ("body", "b"),
        ("out_trade_no", "LACK1"),
        ("total_fee", "1"),
        ("spbill_create_ip", "127.0.0.1"),
        ("notify_url", "http://127.0.0.1:9/n"),
    ];
    let mut jsapi = base.clone();
    jsapi.push(("trade_type", "JSAPI"));
    let r = send(jsapi).await;
    assert_eq!(
        (r["result_code"].as_str(), r["err_code"].as_str()),
        ("FAIL", "LACK_PARAMS")
    );
    assert!(r["err_code_des"].contains("openid"));
    let mut native = base.clone();
    native.push(("trade_type", "NATIVE"));
    assert_eq!(send(native.clone()).await["err_code"], "LACK_PARAMS");
    native.push(("product_id", "P1"));
    let r = send(native).await;
    assert_eq!(r["result_code"], "SUCCESS");
    assert!(r["code_url"].starts_with("weixin://wxpay/bizpayurl"));
    let mut bad_fee = base.clone();
    bad_fee.retain(|(k, _)| *k != "total_fee");
    bad_fee.extend([("total_fee", "1.5"), ("trade_type", "APP")]);
    assert_eq!(send(bad_fee).await["err_code"], "PARAM_ERROR");

    // Hostile XML never reaches the handler logic.
    let evil = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>"#;
    let r = http
        .post(format!("{}/pay/unifiedorder", sim.base_url()))
        .body(evil)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(r.contains("FAIL") && r.contains("XML_FORMAT_ERROR"), "{r}");
}

/// v2 `downloadbill`: the day's bill from the simulator, read into rows; a quiet day is "No Bill Exist" → empty.
#[tokio::test]
async fn the_v2_bill_holds_the_days_payments() {
    let sim = sim_with_merchant().await;
    let pay = client(&sim, SignType::HmacSha256);
    let order = UnifiedOrder::builder()
        .body("账单")
        .out_trade_no("V2BILL0001")
        .total_fee(Fen(1800))
        .client_ip("127.0.0.1")
        .notify_url("http://127.0.0.1:9/notify")
        .trade_type(TradeType::Native {
            product_id: "p1".into(),
        })
        .build()
        .unwrap();
    pay.unified_order(&order).await.unwrap();
    sim.handle().pay_order("V2BILL0001", Some(MCH_ID), None).unwrap();
    let today = (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string();
    let bill = pay.download_bill(&today).await.unwrap();
    let row = bill
        .rows
        .iter()
        .find(|r| r.out_trade_no == "V2BILL0001")
        .expect("the payment");
    assert_eq!((row.trade_state.as_str(), row.total_fee), ("SUCCESS", 1800));
    assert!(pay.download_bill("2020-01-01").await.unwrap().rows.is_empty());
    assert!(pay.download_bill("yesterday").await.is_err());
}
