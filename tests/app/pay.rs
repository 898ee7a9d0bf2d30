//! WeChat Pay orders and the payment notify, exactly once (JSAPI and NATIVE through the simulator's cashier).

use serde_json::{Value, json};
use wxkit_e2e::{
    DbKind, TEST_ADMIN_TOKEN, TEST_APP_ID, TEST_MCH_ID, TEST_PAY_KEY, TestApp, pay_notify_body as notify_body,
    spawn_app,
};

on_both_backends!(
    jsapi_and_native_orders_are_paid_through_the_cashier,
    a_hundred_concurrent_duplicate_notifies_pay_once,
    forged_and_mismatched_notifies_pay_nothing,
    the_reconciler_settles_lost_notifies_and_closes_expired_orders,
    refunds_never_exceed_what_was_paid,
    bought_coupons_are_issued_once_within_the_campaigns_limits,
    a_refunded_coupon_is_void_and_a_redeemed_one_needs_force,
    add_to_wechat_links_the_card_through_a_signed_card_ext,
    a_mini_program_buyer_pays_with_the_mini_programs_appid,
    a_mini_program_purchase_has_its_shipping_uploaded_once,
);

/// A web session cookie for `openid` (silent OAuth through the simulator).
pub(crate) async fn web_session(app: &TestApp, openid: &str) -> String {
    let start = app
        .http
        .get(format!("{}/auth/wechat?return=/account", app.address))
        .send()
        .await
        .unwrap();
    let authorize = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    let code = app
        .sim
        .handle()
        .issue_oauth_code(TEST_APP_ID, openid, "snsapi_base")
        .unwrap();
    let back = app
        .http
        .get(format!(
            "{}/auth/callback?code={code}&state={}",
            app.address,
            url::form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>()
        ))
        .header("cookie", wxkit_e2e::oauth_binding(&start))
        .send()
        .await
        .unwrap();
    back.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("wxkit_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// `paySign` of JSAPI pay params is the merchant's signature over the other five.
fn assert_pay_sign(params: &Value) {
    let fields: Vec<(String, String)> = ["appId", "timeStamp", "nonceStr", "package", "signType"]
        .iter()
        .map(|k| ((*k).to_owned(), params[*k].as_str().unwrap().to_owned()))
        .collect();
    let expected = wechat_pay::sign::sign(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &wechat_pay::PayKey::new(TEST_PAY_KEY),
        wechat_pay::SignType::HmacSha256,
    );
    assert_eq!(params["paySign"], expected.as_str());
}

pub(crate) async fn order(app: &TestApp, cookie: &str, body: Value) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{}/api/v1/pay/orders", app.address))
        .header("cookie", cookie)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn order_status(app: &TestApp, cookie: Option<&str>, no: &str) -> (u16, Value) {
    let mut r = app.http.get(format!("{}/api/v1/pay/orders/{no}", app.address));
    r = match cookie {
        Some(c) => r.header("cookie", c),
        None => r.bearer_auth(TEST_ADMIN_TOKEN),
    };
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn wait_paid(app: &TestApp, cookie: &str, no: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, b) = order_status(app, Some(cookie), no).await;
        if b["status"] == "paid" {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "order {no} not paid: {b}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn jsapi_and_native_orders_are_paid_through_the_cashier(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let cookie = web_session(&app, "o-buyer").await;
    // JSAPI: pay params for wx.requestPayment, signed.
    let (s, b) = order(
        &app,
        &cookie,
        json!({"description": "咖啡券", "total_fee": 1800, "trade_type": "JSAPI"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    let params = &b["pay_params"];
    assert_eq!(params["appId"], TEST_APP_ID);
    assert!(params["package"].as_str().unwrap().starts_with("prepay_id="));
    assert_pay_sign(params);
    let (_, st) = order_status(&app, Some(&cookie), &no).await;
    assert_eq!(
        (st["status"].as_str(), st["total_fee"].as_i64()),
        (Some("created"), Some(1800))
    );
    // The customer pays at the (simulated) cashier; WeChat notifies; the order is paid.
    let transaction_id = app.sim.handle().pay_order(&no, None, None).unwrap();
    wait_paid(&app, &cookie, &no).await;
    let (_, st) = order_status(&app, None, &no).await;
    assert_eq!(st["transaction_id"], transaction_id.as_str(), "the admin sees it too");
    // Someone else's order is nobody's business.
    let other = web_session(&app, "o-someone-else").await;
    assert_eq!(order_status(&app, Some(&other), &no).await.0, 404);

    // NATIVE: a code to scan, then paid.
    let (s, b) = order(
        &app,
        &cookie,
        json!({"description": "PC", "total_fee": 1, "trade_type": "NATIVE"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert!(b["code_url"].as_str().unwrap().starts_with("weixin://"));
    let no2 = b["out_trade_no"].as_str().unwrap().to_owned();
    let png = app
        .http
        .get(b["qr_url"].as_str().unwrap())
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(wxkit_e2e::decode_qr(&png), b["code_url"].as_str().unwrap());
    app.sim.handle().pay_order(&no2, None, None).unwrap();
    wait_paid(&app, &cookie, &no2).await;

    // Close an unpaid order; a paid one cannot be closed.
    let (_, b) = order(
        &app,
        &cookie,
        json!({"description": "x", "total_fee": 5, "trade_type": "NATIVE"}),
    )
    .await;
    let no3 = b["out_trade_no"].as_str().unwrap().to_owned();
    let close = async |no: &str| {
        app.http
            .post(format!("{}/api/v1/pay/orders/{no}/close", app.address))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
    };
    // WeChat closes orders only after 5 minutes: before that, a clear 409 with when to retry.
    let r = close(&no3).await;
    assert_eq!(r.status(), 409);
    assert!(r.headers().contains_key("retry-after"));
    app.clock.advance_secs(301);
    app.sim.handle().advance_clock(301);
    let r = close(&no3).await;
    assert_eq!(r.status(), 200);
    assert_eq!(order_status(&app, Some(&cookie), &no3).await.1["status"], "closed");
    assert_eq!(close(&no).await.status(), 409, "a paid order");
    // Bad input: clear 400s; no session: 401.
    for bad in [
        json!({"description": "", "total_fee": 1, "trade_type": "JSAPI"}),
        json!({"description": "x", "total_fee": 0, "trade_type": "JSAPI"}),
        json!({"description": "x", "total_fee": 1, "trade_type": "APP"}),
        json!({"description": "x", "total_fee": 1, "trade_type": "JSAPI", "extra": 1}),
    ] {
        assert_eq!(order(&app, &cookie, bad.clone()).await.0, 400, "{bad}");
    }
    let r = app
        .http
        .post(format!("{}/api/v1/pay/orders", app.address))
        .json(&json!({"description": "x", "total_fee": 1, "trade_type": "NATIVE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

async fn post_notify(app: &TestApp, body: String) -> String {
    app.http
        .post(format!("{}/wechat/pay/notify", app.address))
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub(crate) async fn notifications(app: &TestApp, outcome: &str) -> Vec<Value> {
    let v: Value = app
        .http
        .get(format!(
            "{}/api/v1/admin/pay/notifications?outcome={outcome}",
            app.address
        ))
        .bearer_auth(TEST_ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["items"].as_array().unwrap_or_else(|| panic!("{v}")).clone()
}

async fn a_hundred_concurrent_duplicate_notifies_pay_once(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let cookie = web_session(&app, "o-buyer").await;
    let (_, b) = order(
        &app,
        &cookie,
        json!({"description": "dup", "total_fee": 990, "trade_type": "NATIVE"}),
    )
    .await;
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    let body = notify_body(&no, "4200000000202611260001", 990, TEST_PAY_KEY);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (http, url, body) = (
            app.http.clone(),
            format!("{}/wechat/pay/notify", app.address),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            http.post(url).body(body).send().await.unwrap().text().await.unwrap()
        }));
    }
    let mut success = 0;
    for t in tasks {
        let reply = t.await.unwrap();
        assert!(reply.contains("SUCCESS") || reply.contains("FAIL"), "{reply}");
        if reply.contains("<return_code><![CDATA[SUCCESS]]>") {
            success += 1;
        }
    }
    // A FAIL (database busy) only makes WeChat resend: the resends are answered SUCCESS.
    for _ in success..100 {
        assert!(post_notify(&app, body.clone()).await.contains("SUCCESS"));
    }
    let (_, st) = order_status(&app, Some(&cookie), &no).await;
    assert_eq!(
        (st["status"].as_str(), st["transaction_id"].as_str()),
        (Some("paid"), Some("4200000000202611260001"))
    );
    assert_eq!(notifications(&app, "applied").await.len(), 1, "one state change");
    assert!(notifications(&app, "duplicate").await.len() >= 99);
    // A late, reordered notify of another transaction for the same order changes nothing.
    assert!(
        post_notify(&app, notify_body(&no, "4200000000202611269999", 990, TEST_PAY_KEY))
            .await
            .contains("SUCCESS")
    );
    let (_, st) = order_status(&app, Some(&cookie), &no).await;
    assert_eq!(st["transaction_id"], "4200000000202611260001");
    assert_eq!(notifications(&app, "not_payable").await.len(), 1);
}

async fn forged_and_mismatched_notifies_pay_nothing(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let cookie = web_session(&app, "o-buyer").await;
    let (_, b) = order(
        &app,
        &cookie,
        json!({"description": "f", "total_fee": 500, "trade_type": "NATIVE"}),
    )
    .await;
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    // Signed with another key: FAIL, nothing recorded as paid.
    let forged = notify_body(&no, "4200000000202611260002", 500, "someone-elses-key-0123456789abcd");
    assert!(post_notify(&app, forged).await.contains("FAIL"));
    // A signed body altered afterwards: FAIL.
    let tampered = notify_body(&no, "4200000000202611260002", 500, TEST_PAY_KEY).replace("[500]]", "[1]]");
    assert!(tampered.contains("[1]]"));
    assert!(post_notify(&app, tampered).await.contains("FAIL"));
    // Not XML, or a DOCTYPE (XXE): FAIL.
    assert!(post_notify(&app, "{}".into()).await.contains("FAIL"));
    assert!(
        post_notify(
            &app,
            "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><a>&e;</a></xml>".into()
        )
        .await
        .contains("FAIL")
    );
    assert_eq!(order_status(&app, Some(&cookie), &no).await.1["status"], "created");
    // Correctly signed but the wrong amount: not paid, recorded for an operator (and SUCCESS, so WeChat stops).
    assert!(
        post_notify(&app, notify_body(&no, "4200000000202611260003", 1, TEST_PAY_KEY))
            .await
            .contains("SUCCESS")
    );
    assert_eq!(order_status(&app, Some(&cookie), &no).await.1["status"], "created");
    let recorded = notifications(&app, "amount_mismatch").await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["out_trade_no"], no.as_str());
    // An order that is not ours.
    assert!(
        post_notify(
            &app,
            notify_body("nosuchorder", "4200000000202611260004", 1, TEST_PAY_KEY)
        )
        .await
        .contains("SUCCESS")
    );
    assert_eq!(notifications(&app, "unknown_order").await.len(), 1);
    // Signed with our key but naming another merchant: not paid, recorded as merchant_mismatch (SUCCESS: resending
    // cannot make it ours).
    let other_merchant =
        notify_body(&no, "4200000000202611260005", 1800, TEST_PAY_KEY).replace(TEST_MCH_ID, "1900000999");
    let resigned = {
        let mut f = wechat_pay::xml::parse(other_merchant.as_bytes()).unwrap();
        f.remove("sign");
        let sign = wechat_pay::sign::sign(
            f.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &wechat_pay::PayKey::new(TEST_PAY_KEY),
            wechat_pay::SignType::HmacSha256,
        );
        f.insert("sign".into(), sign);
        wechat_pay::xml::to_xml(&f)
    };
    assert!(post_notify(&app, resigned).await.contains("SUCCESS"));
    assert_eq!(order_status(&app, Some(&cookie), &no).await.1["status"], "created");
    assert_eq!(notifications(&app, "merchant_mismatch").await.len(), 1);
    // The operators' list needs the admin token.
    let r = app
        .http
        .get(format!("{}/api/v1/admin/pay/notifications", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

async fn the_reconciler_settles_lost_notifies_and_closes_expired_orders(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let cookie = web_session(&app, "o-buyer").await;
    // Paid, but WeChat's notify is lost: only orderquery knows.
    let (_, b) = order(
        &app,
        &cookie,
        json!({"description": "lost", "total_fee": 700, "trade_type": "NATIVE"}),
    )
    .await;
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    app.sim.handle().drop_next_notifies(1);
    let transaction_id = app.sim.handle().pay_order(&no, None, None).unwrap();
    assert!(
        app.sim.handle().notifications().iter().all(|n| n.out_trade_no != no),
        "no notify was sent"
    );
    wait_paid(&app, &cookie, &no).await;
    let (_, st) = order_status(&app, Some(&cookie), &no).await;
    assert_eq!(st["transaction_id"], transaction_id.as_str());
    assert_eq!(notifications(&app, "applied").await.len(), 1);
    // A notify arriving late after all changes nothing.
    assert!(
        post_notify(&app, notify_body(&no, &transaction_id, 700, TEST_PAY_KEY))
            .await
            .contains("SUCCESS")
    );
    assert_eq!(notifications(&app, "applied").await.len(), 1);

    // Never paid and past its time (1800 s): closed at WeChat, then here.
    let (_, b) = order(
        &app,
        &cookie,
        json!({"description": "late", "total_fee": 5, "trade_type": "NATIVE"}),
    )
    .await;
    let stale = b["out_trade_no"].as_str().unwrap().to_owned();
    assert_eq!(order_status(&app, Some(&cookie), &stale).await.1["status"], "created");
    app.clock.advance_secs(1801);
    app.sim.handle().advance_clock(1801);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, st) = order_status(&app, Some(&cookie), &stale).await;
        if st["status"] == "closed" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not closed: {st}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // WeChat no longer takes payment for it.
    assert!(app.sim.handle().pay_order(&stale, None, None).is_err());
}

pub(crate) async fn refund(app: &TestApp, no: &str, body: Value) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{}/api/v1/pay/orders/{no}/refunds", app.address))
        .bearer_auth(TEST_ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn wait_status(app: &TestApp, no: &str, want: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, st) = order_status(app, None, no).await;
        if st["status"] == want {
            return st;
        }
        assert!(std::time::Instant::now() < deadline, "not {want}: {st}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn refunds_never_exceed_what_was_paid(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let cookie = web_session(&app, "o-buyer").await;
    let (_, b) = order(
        &app,
        &cookie,
        json!({"description": "r", "total_fee": 1800, "trade_type": "NATIVE"}),
    )
    .await;
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    // Not paid yet: nothing to refund.
    assert_eq!(refund(&app, &no, json!({"refund_fee": 1})).await.0, 409);
    app.sim.handle().pay_order(&no, None, None).unwrap();
    wait_status(&app, &no, "paid").await;
    // A partial refund, settled by WeChat's refund notify.
    let (s, b) = refund(&app, &no, json!({"refund_fee": 500, "reason": "少了一杯"})).await;
    assert_eq!((s, b["status"].as_str()), (201, Some("requested")), "{b}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, st) = order_status(&app, None, &no).await;
        if st["refunded_fee"] == 500 {
            assert_eq!(st["status"], "paid", "partly refunded: {st}");
            assert_eq!(st["refunds"][0]["status"], "succeeded");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "refund not settled: {st}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Two refunds of 1000 at once on the 1300 left: one passes, the other is refused.
    let (a, b2) = tokio::join!(
        refund(&app, &no, json!({"refund_fee": 1000})),
        refund(&app, &no, json!({"refund_fee": 1000}))
    );
    let mut codes = [a.0, b2.0];
    codes.sort();
    assert_eq!(codes, [201, 409], "{a:?} {b2:?}");
    let refused = if a.0 == 409 { a.1 } else { b2.1 };
    assert_eq!(refused["error"]["code"], "over_refund");
    // The rest, exactly: fully refunded.
    assert_eq!(
        refund(&app, &no, json!({"refund_fee": 301})).await.0,
        409,
        "one fen too many"
    );
    assert_eq!(refund(&app, &no, json!({"refund_fee": 300})).await.0, 201);
    let st = wait_status(&app, &no, "refunded").await;
    assert_eq!(st["refunded_fee"], 1800);
    // A refund notify replayed changes nothing; a forged one is refused.
    let replay = app
        .sim
        .handle()
        .notifications()
        .into_iter()
        .rev()
        .find(|n| n.kind == "refund" && n.url.ends_with("/wechat/pay/refund-notify"))
        .expect("the simulator sent refund notifies");
    let post = async |body: String| {
        app.http
            .post(format!("{}/wechat/pay/refund-notify", app.address))
            .body(body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(post(replay.body().to_owned()).await.contains("SUCCESS"));
    assert_eq!(order_status(&app, None, &no).await.1["refunded_fee"], 1800);
    let forged = replay.body().replace("<req_info><![CDATA[", "<req_info><![CDATA[AAAA");
    assert!(post(forged).await.contains("FAIL"));
    assert!(
        post("<xml><return_code>SUCCESS</return_code></xml>".into())
            .await
            .contains("FAIL")
    );
    // Unknown order, bad amount, no admin token.
    assert_eq!(refund(&app, "nosuchorder", json!({"refund_fee": 1})).await.0, 404);
    assert_eq!(refund(&app, &no, json!({"refund_fee": 0})).await.0, 400);
    let r = app
        .http
        .post(format!("{}/api/v1/pay/orders/{no}/refunds", app.address))
        .json(&json!({"refund_fee": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// The campaign's `issued` counter (coupons issued plus purchases reserved).
pub(crate) async fn campaign_issued(app: &TestApp, id: i64) -> i64 {
    let (_, list) = crate::coupons::json(app.admin(reqwest::Method::GET, "/api/v1/campaigns", json!(null)).await).await;
    list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()["issued"]
        .as_i64()
        .unwrap()
}

/// Coupons of `campaign_id` held by `openid`, from the database.
pub(crate) fn coupons_held(app: &TestApp, campaign_id: i64, openid: &str) -> Vec<(String, String)> {
    use diesel::prelude::*;
    use wxkit::db::schema::coupons;
    let mut conn = app.state.db.get().unwrap();
    let conn: &mut wxkit::db::DbConnection = &mut conn;
    coupons::table
        .filter(
            coupons::campaign_id
                .eq(campaign_id)
                .and(coupons::owner_openid.eq(openid)),
        )
        .select((coupons::code, coupons::status))
        .load(conn)
        .unwrap()
}

pub(crate) async fn set_pay_faults(app: &TestApp, faults: Value) {
    let r = app
        .http
        .post(format!("{}/_sim/pay/faults", app.sim.base_url()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
}

/// Waits until every notify the simulator queued for `no` was delivered.
pub(crate) async fn all_notifies_delivered(app: &TestApp, no: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mine: Vec<_> = app
            .sim
            .handle()
            .notifications()
            .into_iter()
            .filter(|n| n.out_trade_no == no)
            .collect();
        if !mine.is_empty() && mine.iter().all(|n| n.delivered) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "notifies for {no} not delivered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn bought_coupons_are_issued_once_within_the_campaigns_limits(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = crate::coupons::shop(
        &app,
        json!({"title": "拿铁团购券", "value_fen": 2800, "price_fen": 990, "quantity": 3, "per_user_limit": 2}),
    )
    .await;
    let cookie = web_session(&app, "o-buyer").await;
    // A price the page showed that is not the price any more, a campaign not for sale, no such campaign.
    let (s, b) = order(
        &app,
        &cookie,
        json!({"campaign_id": shop.campaign_id, "total_fee": 1, "trade_type": "JSAPI"}),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("price_changed")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("990"), "{b}");
    let (_, free) = crate::coupons::json(
        app.admin(
            reqwest::Method::POST,
            "/api/v1/campaigns",
            json!({"merchant_id": shop.merchant_id, "title": "免费券"}),
        )
        .await,
    )
    .await;
    let (s, b) = order(&app, &cookie, json!({"campaign_id": free["id"], "trade_type": "JSAPI"})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("not_for_sale")), "{b}");
    let (s, _) = order(&app, &cookie, json!({"campaign_id": 999_999, "trade_type": "JSAPI"})).await;
    assert_eq!(s, 404);
    // The purchase page of something not for sale, or of no id at all, is an HTML page that says so.
    for path in [
        format!("/c/buy/{}", free["id"]),
        "/c/buy/999999".into(),
        "/c/buy/abc".into(),
    ] {
        let r = app
            .http
            .get(format!("{}{path}", app.address))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(
            r.headers()["content-type"].to_str().unwrap().starts_with("text/html"),
            "{path}"
        );
        assert!(r.text().await.unwrap().contains("不出售"), "{path}");
    }
    assert_eq!(
        campaign_issued(&app, shop.campaign_id).await,
        0,
        "refusals reserve nothing"
    );

    // Bought: the campaign's title and price; every notify delivered twice at once, and replayed 100 times
    // concurrently after that — one coupon.
    let (s, b) = order(
        &app,
        &cookie,
        json!({"campaign_id": shop.campaign_id, "total_fee": 990, "trade_type": "JSAPI"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    let (_, st) = order_status(&app, Some(&cookie), &no).await;
    assert_eq!(
        (st["description"].as_str(), st["total_fee"].as_i64(), &st["coupon_code"]),
        (Some("拿铁团购券"), Some(990), &Value::Null)
    );
    // Paid at the simulator's cashier, which checks paySign as WeChat does (a tampered one is refused).
    let params = b["pay_params"].clone();
    let cashier = |pay_sign: &str| {
        let mut url = url::Url::parse(&format!("{}/_sim/pay/cashier", app.sim.base_url())).unwrap();
        for k in ["appId", "timeStamp", "nonceStr", "package", "signType"] {
            url.query_pairs_mut().append_pair(k, params[k].as_str().unwrap());
        }
        url.query_pairs_mut().append_pair("paySign", pay_sign).append_pair(
            "return_url",
            &format!("{}/c/buy/{}?order={no}", app.address, shop.campaign_id),
        );
        url
    };
    let good_sign = params["paySign"].as_str().unwrap().to_owned();
    let bad_sign = format!(
        "{}{}",
        if good_sign.starts_with('0') { "1" } else { "0" },
        &good_sign[1..]
    );
    let page = app
        .http
        .get(cashier(&bad_sign))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("支付验证签名失败"), "{page}");
    let page = app
        .http
        .get(cashier(&good_sign))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("¥9.90") && page.contains("id=\"pay\""), "{page}");
    set_pay_faults(&app, json!({"duplicate_notifies": 1})).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let paid = no_redirects
        .post(format!("{}/_sim/pay/cashier", app.sim.base_url()))
        .form(&[
            ("order", format!("{TEST_MCH_ID}/{no}")),
            (
                "return_url",
                format!("{}/c/buy/{}?order={no}", app.address, shop.campaign_id),
            ),
            ("decision", "pay".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status().as_u16(), 303);
    assert!(paid.headers()["location"].to_str().unwrap().ends_with("#wxpay=ok"));
    wait_paid(&app, &cookie, &no).await;
    let transaction_id = order_status(&app, Some(&cookie), &no).await.1["transaction_id"]
        .as_str()
        .unwrap()
        .to_owned();
    all_notifies_delivered(&app, &no).await;
    assert_eq!(
        app.sim
            .handle()
            .notifications()
            .iter()
            .filter(|n| n.out_trade_no == no)
            .count(),
        2,
        "the simulator sent the notify twice"
    );
    let replay = notify_body(&no, &transaction_id, 990, TEST_PAY_KEY);
    let calls: Vec<_> = (0..100).map(|_| post_notify(&app, replay.clone())).collect();
    for answer in futures_util::future::join_all(calls).await {
        assert!(answer.contains("SUCCESS"), "{answer}");
    }
    let held = coupons_held(&app, shop.campaign_id, "o-buyer");
    assert_eq!(held.len(), 1, "one coupon for one payment: {held:?}");
    let (_, st) = order_status(&app, Some(&cookie), &no).await;
    assert_eq!(st["coupon_code"], held[0].0.as_str());
    assert_eq!(st["coupon_url"], format!("/c/{}", held[0].0).as_str());
    let (s, coupon) = crate::coupons::json(app.get(&format!("/api/v1/coupons/{}", held[0].0)).await).await;
    assert_eq!(
        (s.as_u16(), coupon["status"].as_str()),
        (200, Some("issued")),
        "{coupon}"
    );
    assert_eq!(campaign_issued(&app, shop.campaign_id).await, 1);

    // The buyer's limit (2) counts held coupons and open orders: one more order, not two.
    let (s, b) = order(
        &app,
        &cookie,
        json!({"campaign_id": shop.campaign_id, "trade_type": "NATIVE"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let open = b["out_trade_no"].as_str().unwrap().to_owned();
    // Ordering again while that one is open offers the same order (its unit is reserved once): no second order.
    let (s, b) = order(
        &app,
        &cookie,
        json!({"campaign_id": shop.campaign_id, "trade_type": "NATIVE"}),
    )
    .await;
    assert_eq!((s, b["out_trade_no"].as_str()), (201, Some(open.as_str())), "{b}");

    // One unit left (3 = 1 issued + 1 reserved + 1): five buyers at once — one order, four refused before paying.
    let mut cookies = Vec::new();
    for i in 0..5 {
        cookies.push(web_session(&app, &format!("o-rush-{i}")).await);
    }
    let rush: Vec<_> = cookies
        .iter()
        .map(|c| {
            order(
                &app,
                c,
                json!({"campaign_id": shop.campaign_id, "trade_type": "NATIVE"}),
            )
        })
        .collect();
    let answers = futures_util::future::join_all(rush).await;
    let placed = answers.iter().filter(|(s, _)| *s == 201).count();
    let sold_out = answers
        .iter()
        .filter(|(s, b)| *s == 409 && b["error"]["code"] == "sold_out")
        .count();
    assert_eq!((placed, sold_out), (1, 4), "{answers:?}");
    assert_eq!(campaign_issued(&app, shop.campaign_id).await, 3);

    // The open order expires unpaid: the reconciler closes it and its unit is free again.
    app.clock.advance_secs(1801);
    app.sim.handle().advance_clock(1801);
    wait_status(&app, &open, "closed").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while campaign_issued(&app, shop.campaign_id).await != 1 {
        // Both open orders (the buyer's and the rush's winner) are past their time.
        assert!(std::time::Instant::now() < deadline, "reservations not released");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (s, b) = order(
        &app,
        &cookies[0],
        json!({"campaign_id": shop.campaign_id, "trade_type": "NATIVE"}),
    )
    .await;
    assert_eq!(s, 201, "a released unit can be bought: {b}");

    // NATIVE through the cashier: the phone scans the code_url, pays; the coupon is the buyer's.
    let (s, b) = order(
        &app,
        &cookies[1],
        json!({"campaign_id": shop.campaign_id, "trade_type": "NATIVE"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let native = b["out_trade_no"].as_str().unwrap().to_owned();
    let back = format!("{}/c/buy/{}?order={native}", app.address, shop.campaign_id);
    let mut scan = url::Url::parse(&format!("{}/_sim/pay/cashier", app.sim.base_url())).unwrap();
    scan.query_pairs_mut()
        .append_pair("code_url", b["code_url"].as_str().unwrap())
        .append_pair("return_url", &back);
    let page = app.http.get(scan).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("¥9.90"), "{page}");
    let paid = no_redirects
        .post(format!("{}/_sim/pay/cashier", app.sim.base_url()))
        .form(&[
            ("order", format!("{TEST_MCH_ID}/{native}")),
            ("return_url", back),
            ("decision", "pay".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status().as_u16(), 303);
    wait_paid(&app, &cookies[1], &native).await;
    assert_eq!(coupons_held(&app, shop.campaign_id, "o-rush-1").len(), 1);
    assert_eq!(campaign_issued(&app, shop.campaign_id).await, 3);
}

async fn a_refunded_coupon_is_void_and_a_redeemed_one_needs_force(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = crate::coupons::shop(&app, json!({"title": "团购券", "price_fen": 1500})).await;
    let cookie = web_session(&app, "o-buyer").await;
    let mut bought = Vec::new();
    for _ in 0..4 {
        let (s, b) = order(
            &app,
            &cookie,
            json!({"campaign_id": shop.campaign_id, "trade_type": "JSAPI"}),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        let no = b["out_trade_no"].as_str().unwrap().to_owned();
        app.sim.handle().pay_order(&no, None, None).unwrap();
        wait_paid(&app, &cookie, &no).await;
        let code = order_status(&app, Some(&cookie), &no).await.1["coupon_code"]
            .as_str()
            .unwrap()
            .to_owned();
        bought.push((no, code));
    }
    let coupon_status = |code: String| {
        let app = &app;
        async move {
            crate::coupons::json(app.get(&format!("/api/v1/coupons/{code}")).await)
                .await
                .1["status"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };

    // Refunded (in part, even): the coupon is void at once, so it cannot be refunded and used.
    let (no, code) = &bought[0];
    let (s, b) = refund(&app, no, json!({"refund_fee": 500, "reason": "不想要了"})).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(coupon_status(code.clone()).await, "void");
    let r = app
        .http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth(&shop.staff_token)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 410, "a void coupon is not redeemed");
    wait_status(&app, no, "paid").await;

    // Redeemed at the counter: no refund without force; with force, refunded and still redeemed.
    let (no, code) = &bought[1];
    let r = app
        .http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth(&shop.staff_token)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (s, b) = refund(&app, no, json!({"refund_fee": 1500})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("coupon_redeemed")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("force"), "{b}");
    let (s, b) = refund(&app, no, json!({"refund_fee": 1500, "force": true})).await;
    assert_eq!(s, 201, "{b}");
    wait_status(&app, no, "refunded").await;
    assert_eq!(coupon_status(code.clone()).await, "redeemed");

    // WeChat's answer is a 500: unclear (it may have refunded), so the refund is kept, not failed, and the coupon
    // stays void; the reconciler finds WeChat never got it and sends it again with the same number. (A definite
    // refusal gives the coupon back: tests/app/refunds.rs.)
    let (no, code) = &bought[2];
    let r = app
        .http
        .post(format!("{}/_sim/faults", app.sim.base_url()))
        .json(&json!({"path": "/secapi/pay/refund", "http_status": 500}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (s, b) = refund(&app, no, json!({"refund_fee": 1500})).await;
    assert_eq!((s, b["confirmed"].as_bool()), (201, Some(false)), "{b}");
    assert_eq!(
        coupon_status(code.clone()).await,
        "void",
        "an unclear refund gives nothing back"
    );
    let st = wait_status(&app, no, "refunded").await;
    assert_eq!(
        st["refunds"].as_array().map(Vec::len),
        Some(1),
        "sent again under the same number: {st}"
    );
    assert_eq!(st["refunds"][0]["status"], "succeeded", "{st}");
    assert_eq!(coupon_status(code.clone()).await, "void");

    // `wxkit pay refund` goes through the running server's admin API: refused (more than paid) with exit 1 and
    // the server's reason; without an admin token, exit 2; then refunded.
    let (no, code) = bought[3].clone();
    let cli = |args: Vec<String>, token: Option<&'static str>| {
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(wxkit_e2e::wxkit_bin());
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("RUST_LOG", "warn")
                .current_dir(std::env::temp_dir())
                .args(&args);
            if let Some(t) = token {
                cmd.env("WXKIT__ADMIN__TOKEN", t);
            }
            let out = cmd.output().unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let args = |fee: &str| -> Vec<String> {
        [
            "pay",
            "refund",
            &no,
            "--fee",
            fee,
            "--server",
            &app.address,
            "--reason",
            "CLI",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let (exit, _, stderr) = cli(args("1501"), Some(TEST_ADMIN_TOKEN)).await.unwrap();
    assert_eq!(exit, 1, "{stderr}");
    assert!(stderr.contains("over_refund") && stderr.contains("1500"), "{stderr}");
    let (exit, _, stderr) = cli(args("100"), None).await.unwrap();
    assert_eq!(exit, 2, "{stderr}");
    assert!(stderr.contains("admin.token"), "{stderr}");
    let (exit, stdout, stderr) = cli(args("1500"), Some(TEST_ADMIN_TOKEN)).await.unwrap();
    assert_eq!(exit, 0, "{stderr}");
    let fields: Vec<&str> = stdout.trim().split('\t').collect();
    assert_eq!(
        (fields.len(), fields[1], fields[2]),
        (3, "1500", "requested"),
        "{stdout}"
    );
    wait_status(&app, &no, "refunded").await;
    assert_eq!(coupon_status(code).await, "void");
}

async fn add_to_wechat_links_the_card_through_a_signed_card_ext(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    assert!(app.sim.handle().set_push(
        TEST_APP_ID,
        &format!("{}/wechat/push", app.address),
        wxkit_e2e::TEST_PUSH_TOKEN,
        Some(wxkit_e2e::TEST_AES_KEY)
    ));
    let card_id = app.create_card(10).await;
    let shop = crate::coupons::shop(&app, json!({"title": "卡券", "wechat_card_id": card_id})).await;
    let (_, coupon) = crate::coupons::issue(&app, shop.campaign_id, Some("o-owner")).await;
    let code = coupon["code"].as_str().unwrap().to_owned();
    let owner = web_session(&app, "o-owner").await;
    let other = web_session(&app, "o-other").await;
    let card_ext = |cookie: Option<String>| {
        let app = &app;
        let code = code.clone();
        async move {
            let mut r = app.http.get(format!("{}/api/v1/coupons/{code}/card-ext", app.address));
            if let Some(c) = cookie {
                r = r.header("cookie", c);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(card_ext(None).await.0, 401);
    assert_eq!(card_ext(Some(other)).await.0, 404, "someone else's coupon");
    let (s, ext) = card_ext(Some(owner.clone())).await;
    assert_eq!(s, 200, "{ext}");
    assert_eq!(ext["cardId"], card_id.as_str());
    let inner: Value = serde_json::from_str(ext["cardExt"].as_str().unwrap()).unwrap();
    assert_eq!(
        (inner["openid"].as_str(), inner["outer_str"].as_str()),
        (Some("o-owner"), Some(code.as_str()))
    );
    // The page's scan view offers the button to the owner only.
    let page = app
        .http
        .get(format!("{}/c/{code}", app.address))
        .header("cookie", &owner)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"add-card\""), "{page}");

    // wx.addCard as the simulator's stand-in calls it: a tampered cardExt is refused as WeChat refuses it.
    let add = |card_ext: String| {
        let app = &app;
        let card_id = card_id.clone();
        async move {
            app.http
                .post(format!("{}/_sim/js/add_card", app.sim.base_url()))
                .body(json!({"appId": TEST_APP_ID, "cardList": [{"cardId": card_id, "cardExt": card_ext}]}).to_string())
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let mut tampered = inner.clone();
    tampered["openid"] = json!("o-thief");
    let refused = add(tampered.to_string()).await;
    assert_eq!(refused["errMsg"], "addCard:fail invalid signature", "{refused}");
    let added = add(ext["cardExt"].as_str().unwrap().to_owned()).await;
    assert_eq!(added["errMsg"], "addCard:ok", "{added}");
    // WeChat's user_get_card push (outer_str = our code) links the card to the coupon.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (s, b) = card_ext(Some(owner.clone())).await;
        if s == 409 {
            assert_eq!(b["error"]["code"], "already_in_wallet", "{b}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never linked: {s} {b}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let page = app
        .http
        .get(format!("{}/c/{code}", app.address))
        .header("cookie", &owner)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("id=\"in-wallet\"") && !page.contains("id=\"add-card\""),
        "{page}"
    );
}

async fn a_mini_program_buyer_pays_with_the_mini_programs_appid(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let (token, _) = crate::login::mp_login(&app, "o-mp-buyer").await;
    let mp_order = |body: Value| {
        let (app, token) = (&app, token.clone());
        async move {
            let r = app
                .http
                .post(format!("{}/api/v1/pay/orders", app.address))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let mp_status = |no: String| {
        let (app, token) = (&app, token.clone());
        async move {
            app.http
                .get(format!("{}/api/v1/pay/orders/{no}", app.address))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // wx.requestPayment's parameters carry the mini program's appid, signed by the merchant.
    let (s, b) = mp_order(json!({"description": "小程序下单", "total_fee": 300, "trade_type": "JSAPI"})).await;
    assert_eq!(s, 201, "{b}");
    let params = &b["pay_params"];
    assert_eq!(params["appId"], wxkit_e2e::TEST_MP_APP_ID);
    assert_pay_sign(params);
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    // Paid: the notify names the mini program's appid, and is accepted for it.
    app.sim.handle().pay_order(&no, None, None).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while mp_status(no.clone()).await["status"] != "paid" {
        assert!(std::time::Instant::now() < deadline, "not paid");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Refunded through the same appid (WeChat knows the order only under it), settled by its notify.
    let (s, b) = refund(&app, &no, json!({"refund_fee": 300})).await;
    assert_eq!(s, 201, "{b}");
    wait_status(&app, &no, "refunded").await;

    // A lost notify: the reconciler asks WeChat about the order under the mini program's appid.
    let (_, b) = mp_order(json!({"description": "lost", "total_fee": 100, "trade_type": "JSAPI"})).await;
    let lost = b["out_trade_no"].as_str().unwrap().to_owned();
    app.sim.handle().drop_next_notifies(1);
    app.sim.handle().pay_order(&lost, None, None).unwrap();
    wait_status(&app, &lost, "paid").await;
    assert_eq!(notifications(&app, "applied").await.len(), 2);
}

/// 小程序发货信息管理: a coupon bought in the mini program has its shipping uploaded through the outbox (WeChat holds
/// the funds until then) — once, however long we wait. When the upload was refused, WeChat's
/// `trade_manage_remind_shipping` push (the simulator's, to the mini program's push URL) asks for it again.
async fn a_mini_program_purchase_has_its_shipping_uploaded_once(kind: DbKind) {
    let Some(app) = wxkit_e2e::spawn_app_with(kind, &[("WXKIT__MINIPROGRAM__TOKEN", "mp-push-token")]).await else {
        return;
    };
    assert!(app.sim.handle().set_push(
        wxkit_e2e::TEST_MP_APP_ID,
        &format!("{}/wechat/miniprogram/push", app.address),
        "mp-push-token",
        None
    ));
    let shop = crate::coupons::shop(&app, json!({"title": "小程序团购券", "price_fen": 990})).await;
    let (token, _) = crate::login::mp_login(&app, "o-mp-shopper").await;
    let buy = async || {
        let r = app
            .http
            .post(format!("{}/api/v1/pay/orders", app.address))
            .bearer_auth(&token)
            .json(&json!({"campaign_id": shop.campaign_id, "trade_type": "JSAPI"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["pay_params"]["appId"], wxkit_e2e::TEST_MP_APP_ID);
        let no = b["out_trade_no"].as_str().unwrap().to_owned();
        app.sim.handle().pay_order(&no, None, None).unwrap();
        let st = wait_status(&app, &no, "paid").await;
        st["transaction_id"].as_str().unwrap().to_owned()
    };
    let txn = buy().await;
    let sim = app.sim.handle().clone();
    let t = txn.clone();
    wxkit_e2e::eventually("the shipping upload", move || sim.shipping_uploads(&t) == 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(app.sim.handle().shipping_uploads(&txn), 1, "uploaded exactly once");
    assert!(app.sim.handle().remind_shipping(&txn).is_err(), "nothing to remind of");
    // The next upload is refused for good; WeChat's reminder asks for it again, and then it goes through.
    app.sim.handle().inject(wechat_sim::Fault {
        path: "/wxa/sec/order/upload_shipping_info".into(),
        count: 1,
        errcode: Some(10060001),
        errmsg: Some("支付单不存在".into()),
        http_status: None,
        delay_ms: None,
    });
    let txn = buy().await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(
        app.sim.handle().shipping_uploads(&txn),
        0,
        "refused, left for an operator"
    );
    app.sim.handle().remind_shipping(&txn).unwrap();
    let sim = app.sim.handle().clone();
    let t = txn.clone();
    wxkit_e2e::eventually("the upload asked again", move || sim.shipping_uploads(&t) == 1).await;
}
