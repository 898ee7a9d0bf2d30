//! Refunds never lie (Pay v3 against the simulator's refund faults): an accepted refund answered with an error is
//! refunded once with its coupon void; a lost refund notify is settled by query; a notify that contradicts our state
//! wins and is audited; a refund racing a POS redemption of the same bought coupon never both succeed; a refund that
//! fails gives back only what it took.

use crate::coupons::{json, shop};
use crate::pay::{order, order_status, refund, wait_paid, wait_status, web_session};
use diesel::prelude::*;
use reqwest::Method;
use serde_json::{Value, json};
use wxkit::db::schema::{audit_log, coupons};
use wxkit_e2e::{DbKind, TestApp, V3Mode, spawn_app_v3};

on_both_backends!(
    an_accepted_refund_answered_with_an_error_is_refunded_once,
    a_lost_refund_notify_is_settled_by_query,
    a_contradicting_refund_notify_wins_and_is_audited,
    a_refund_and_a_redemption_of_one_coupon_never_both_succeed,
    a_failed_refund_gives_back_only_what_it_took,
    a_refund_answered_by_a_timeout_after_acceptance_is_refunded_once,
    a_refund_we_never_asked_for_is_recorded_and_audited,
);

/// A bought coupon: the order paid, its coupon issued. Returns (out_trade_no, coupon code).
async fn buy(app: &TestApp, cookie: &str, campaign_id: i64) -> (String, String) {
    let (s, b) = order(app, cookie, json!({"campaign_id": campaign_id, "trade_type": "NATIVE"})).await;
    assert_eq!(s, 201, "{b}");
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    app.sim.handle().pay_order(&no, None, None).unwrap();
    wait_paid(app, cookie, &no).await;
    let (_, st) = order_status(app, Some(cookie), &no).await;
    (no, st["coupon_code"].as_str().unwrap().to_owned())
}

async fn coupon_status(app: &TestApp, code: &str) -> String {
    let (pool, code) = (app.state.db.clone(), code.to_owned());
    tokio::task::spawn_blocking(move || {
        let read = |conn: &mut wxkit::db::DbConnection| {
            coupons::table
                .filter(coupons::code.eq(code))
                .select(coupons::status)
                .first::<String>(conn)
                .unwrap()
        };
        read(&mut pool.get().unwrap())
    })
    .await
    .unwrap()
}

fn refund_fault(app: &TestApp, status: u16, code: &str, after: bool) {
    app.sim.handle().inject_v3_error(wechat_sim::V3Error {
        path: "/v3/refund/domestic/refunds".into(),
        status,
        code: code.into(),
        count: 1,
        after,
        delay_ms: None,
    });
}

async fn setup(kind: DbKind) -> Option<(TestApp, crate::coupons::Shop, String)> {
    let app = spawn_app_v3(kind, V3Mode::PublicKey).await?;
    let shop = shop(&app, json!({"title": "团购券", "price_fen": 990})).await;
    let cookie = web_session(&app, "o-refund-buyer").await;
    Some((app, shop, cookie))
}

async fn an_accepted_refund_answered_with_an_error_is_refunded_once(kind: DbKind) {
    let Some((app, shop, cookie)) = setup(kind).await else {
        return;
    };
    let (no, code) = buy(&app, &cookie, shop.campaign_id).await;
    // WeChat accepts the refund, then the merchant sees SYSTEM_ERROR (a timeout looks the same to it).
    refund_fault(&app, 500, "SYSTEM_ERROR", true);
    let (s, b) = refund(&app, &no, json!({"refund_fee": 990})).await;
    assert_eq!(
        (s, b["confirmed"].as_bool()),
        (201, Some(false)),
        "kept, not failed: {b}"
    );
    // WeChat's REFUND.SUCCESS settles it; the coupon stays void (before: marked failed, the coupon given back, and
    // the notify ignored — money refunded *and* a usable coupon).
    wait_status(&app, &no, "refunded").await;
    assert_eq!(coupon_status(&app, &code).await, "void");
    let (_, st) = order_status(&app, None, &no).await;
    let refunds = st["refunds"].as_array().cloned().unwrap_or_default();
    assert_eq!(refunds.len(), 1, "one refund: {st}");
    assert_eq!(refunds[0]["status"], "succeeded", "{st}");
}

async fn a_lost_refund_notify_is_settled_by_query(kind: DbKind) {
    let Some((app, shop, cookie)) = setup(kind).await else {
        return;
    };
    let (no, code) = buy(&app, &cookie, shop.campaign_id).await;
    app.sim.handle().drop_next_notifies(1);
    let (s, b) = refund(&app, &no, json!({"refund_fee": 990})).await;
    assert_eq!((s, b["confirmed"].as_bool()), (201, Some(true)), "{b}");
    // No notify will come: the reconciler asks WeChat (refund query) and settles it.
    wait_status(&app, &no, "refunded").await;
    assert_eq!(coupon_status(&app, &code).await, "void");
}

async fn a_contradicting_refund_notify_wins_and_is_audited(kind: DbKind) {
    let Some((app, shop, cookie)) = setup(kind).await else {
        return;
    };
    let (no, code) = buy(&app, &cookie, shop.campaign_id).await;
    app.sim.handle().drop_next_notifies(1);
    let (s, b) = refund(&app, &no, json!({"refund_fee": 990})).await;
    assert_eq!(s, 201, "{b}");
    let rno = b["out_refund_no"].as_str().unwrap().to_owned();
    // The reconciler (every second in tests) learns the refund by query first: its settlement must not land after
    // the contradiction written below (under load it once did, and voided the coupon the test had just given back).
    wait_status(&app, &no, "refunded").await;
    // Our side believes it failed (an older release's guess, an operator's mistake): the coupon was given back.
    // Written directly, after what the reconciler learnt, so that the contradiction is certain.
    let (pool, r, c) = (app.state.db.clone(), rno.clone(), code.clone());
    tokio::task::spawn_blocking(move || {
        let write = |conn: &mut wxkit::db::DbConnection| {
            use wxkit::db::schema::pay_refunds;
            diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(&r)))
                .set((pay_refunds::status.eq("failed"), pay_refunds::voided_coupon.eq(false)))
                .execute(conn)
                .unwrap();
            diesel::update(coupons::table.filter(coupons::code.eq(&c)))
                .set(coupons::status.eq("issued"))
                .execute(conn)
                .unwrap();
        };
        write(&mut pool.get().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(coupon_status(&app, &code).await, "issued");
    // WeChat's REFUND.SUCCESS arrives after all: its state wins, the coupon is void again, an audit row says so.
    let n = app
        .sim
        .handle()
        .notifications()
        .into_iter()
        .find(|n| n.out_refund_no.as_deref() == Some(rno.as_str()))
        .expect("the refund notify the simulator held back");
    // Ten deliveries at once (WeChat resends; retries overlap): applied once, audited once.
    let deliveries = (0..10).map(|_| {
        let r = app
            .http
            .post(format!("{}/wechat/pay/v3/notify", app.address))
            .header("content-type", "application/json");
        // Signed as WeChat signs a delivery: now.
        let r = app
            .sim
            .handle()
            .sign_v3_notify(wxkit_e2e::TEST_MCH_ID, n.body().as_bytes())
            .into_iter()
            .fold(r, |r, (k, v)| r.header(k, v))
            .body(n.body().to_owned());
        async move { r.send().await.unwrap().status().as_u16() }
    });
    for status in futures_util::future::join_all(deliveries).await {
        assert_eq!(status, 204);
    }
    wait_status(&app, &no, "refunded").await;
    assert_eq!(coupon_status(&app, &code).await, "void");
    let pool = app.state.db.clone();
    let audits: Vec<(String, Option<String>)> = tokio::task::spawn_blocking(move || {
        let read = |conn: &mut wxkit::db::DbConnection| {
            audit_log::table
                .filter(audit_log::action.eq("refund_reconciled"))
                .select((audit_log::outcome, audit_log::detail))
                .load(conn)
                .unwrap()
        };
        read(&mut pool.get().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0].0, "corrected");
    assert!(
        audits[0].1.as_deref().unwrap_or_default().contains("failed"),
        "{audits:?}"
    );
}

async fn a_refund_and_a_redemption_of_one_coupon_never_both_succeed(kind: DbKind) {
    let Some((app, shop, cookie)) = setup(kind).await else {
        return;
    };
    let mut bought = Vec::new();
    for _ in 0..20 {
        bought.push(buy(&app, &cookie, shop.campaign_id).await);
    }
    let races = bought.iter().map(|(no, code)| {
        let (http, address, token) = (app.http.clone(), app.address.clone(), shop.staff_token.clone());
        let (no, code) = (no.clone(), code.clone());
        async move {
            let refund = {
                let (http, address) = (http.clone(), address.clone());
                tokio::spawn(async move {
                    http.post(format!("{address}/api/v1/pay/orders/{no}/refunds"))
                        .bearer_auth(wxkit_e2e::TEST_ADMIN_TOKEN)
                        .json(&json!({"refund_fee": 990}))
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16()
                })
            };
            let redeem = tokio::spawn(async move {
                http.post(format!("{address}/api/v1/redemptions"))
                    .bearer_auth(token)
                    .json(&json!({"code": code}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            });
            (refund.await.unwrap(), redeem.await.unwrap())
        }
    });
    let outcomes = futures_util::future::join_all(races).await;
    for (i, (refund, redeem)) in outcomes.iter().enumerate() {
        let refunded = *refund == 201;
        let redeemed = *redeem == 200;
        assert!(refunded != redeemed, "pair {i}: refund {refund}, redemption {redeem}");
        let code = &bought[i].1;
        let want = if refunded { "void" } else { "redeemed" };
        assert_eq!(coupon_status(&app, code).await, want, "pair {i}");
    }
}

async fn a_failed_refund_gives_back_only_what_it_took(kind: DbKind) {
    let Some((app, shop, cookie)) = setup(kind).await else {
        return;
    };
    let (no, code) = buy(&app, &cookie, shop.campaign_id).await;
    // An operator voids the coupon (fraud), then a refund of its order is refused by WeChat.
    let (s, v) = json(
        app.admin(
            Method::POST,
            &format!("/api/v1/coupons/{code}/void"),
            json!({"reason": "欺诈 fraud"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    refund_fault(&app, 400, "INVALID_REQUEST", false);
    let (s, b) = refund(&app, &no, json!({"refund_fee": 990})).await;
    assert!(s >= 400, "{b}");
    assert_eq!(
        coupon_status(&app, &code).await,
        "void",
        "the fraudster's coupon stays void"
    );
    // A refund that voided the coupon itself and then failed gives it back.
    let (no2, code2) = buy(&app, &cookie, shop.campaign_id).await;
    refund_fault(&app, 403, "NOT_ENOUGH", false);
    let (s, _) = refund(&app, &no2, json!({"refund_fee": 990})).await;
    assert!(s >= 400);
    assert_eq!(coupon_status(&app, &code2).await, "issued");
    let _: Value = order_status(&app, None, &no2).await.1;
}

/// A refund WeChat accepted whose answer never comes (the merchant's 10 s timeout): kept, not failed; WeChat's
/// REFUND.SUCCESS settles it and the coupon stays void.
async fn a_refund_answered_by_a_timeout_after_acceptance_is_refunded_once(kind: DbKind) {
    let Some((app, shop, cookie)) = setup(kind).await else {
        return;
    };
    let (no, code) = buy(&app, &cookie, shop.campaign_id).await;
    app.sim.handle().inject_v3_error(wechat_sim::V3Error {
        path: "/v3/refund/domestic/refunds".into(),
        status: 500,
        code: "SYSTEM_ERROR".into(),
        count: 1,
        after: true,
        delay_ms: Some(12_000),
    });
    let (s, b) = refund(&app, &no, json!({"refund_fee": 990})).await;
    assert_eq!((s, b["confirmed"].as_bool()), (201, Some(false)), "{b}");
    wait_status(&app, &no, "refunded").await;
    assert_eq!(coupon_status(&app, &code).await, "void");
}

/// A refund made behind our back (on the merchant platform, or by another system with the merchant's keys): its
/// REFUND.SUCCESS notify is recorded as WeChat says, the bought coupon is voided (the money went back), and an audit
/// row says so — once, however often WeChat notifies.
async fn a_refund_we_never_asked_for_is_recorded_and_audited(kind: DbKind) {
    let Some((app, shop, cookie)) = setup(kind).await else {
        return;
    };
    let (no, code) = buy(&app, &cookie, shop.campaign_id).await;
    let client = app.state.pay.as_ref().and_then(|p| p.v3()).unwrap().clone();
    let outside = wechat_pay::v3::RefundRequest::new(
        wechat_pay::OrderRef::OutTradeNo(no.clone()),
        "rOUTSIDE0001",
        wechat_pay::Fen(990),
        wechat_pay::Fen(990),
    )
    .unwrap()
    .notify_url(&format!("{}/wechat/pay/v3/notify", app.address))
    .unwrap();
    client.refund(&outside).await.unwrap();
    wait_status(&app, &no, "refunded").await;
    assert_eq!(coupon_status(&app, &code).await, "void");
    let (_, st) = order_status(&app, None, &no).await;
    assert_eq!(st["refunds"][0]["out_refund_no"], "rOUTSIDE0001", "{st}");
    let pool = app.state.db.clone();
    let audits: Vec<String> = tokio::task::spawn_blocking(move || {
        let read = |conn: &mut wxkit::db::DbConnection| {
            audit_log::table
                .filter(audit_log::action.eq("refund_reconciled"))
                .select(audit_log::outcome)
                .load(conn)
                .unwrap()
        };
        read(&mut pool.get().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(audits, vec!["unknown".to_owned()]);
}
