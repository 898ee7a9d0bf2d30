//! Trust at the edges, each rule proven by mounting the attack or the fault: forged, replayed, downgraded and stale
//! pushes; card links a user can aim at any coupon; terminated database connections; `kill -9` in the middle of
//! push storms, payment-notify storms and POS load; WeChat failing while a consume is owed; stalled clients.

use crate::coupons::{Shop, issue, json, shop};
use diesel::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wxkit::db::schema::{audit_log, coupons, outbox, push_events, redemptions};
use wxkit_e2e::{
    DbKind, ServerProcess, SignedPush, TEST_ADMIN_TOKEN, TestApp, TestDatabase, card_event, free_port, server_env,
    sign_push, sign_push_at, spawn_app, spawn_sim, start_server_with, test_settings_with,
};

on_both_backends!(
    forged_replayed_downgraded_and_stale_pushes_are_refused,
    plaintext_mode_binds_each_nonce_to_one_body_and_compatible_mode_is_explicit,
    card_links_are_checked_and_every_refusal_is_audited,
    card_consumes_are_delivered_in_the_background_until_wechat_confirms,
    two_instances_never_deliver_one_consume_twice,
    small_edges_are_closed,
    metrics_move_after_a_redemption,
    a_push_storm_survives_kill_9,
    a_pos_load_survives_kill_9,
    a_payment_notify_storm_survives_kill_9,
);

/// Runs blocking database work on the app's pool.
async fn with_db<T: Send + 'static>(
    app: &TestApp,
    work: impl FnOnce(&mut wxkit::db::DbConnection) -> T + Send + 'static,
) -> T {
    let pool = app.state.db.clone();
    tokio::task::spawn_blocking(move || work(&mut pool.get().unwrap()))
        .await
        .unwrap()
}

/// Runs blocking work on a fresh connection to `url` (for tests whose server is another process).
async fn with_url<T: Send + 'static>(
    url: &str,
    work: impl FnOnce(&mut wxkit::db::DbConnection) -> T + Send + 'static,
) -> T {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = wxkit::db::Backend::from_url(&url).unwrap().establish().unwrap();
        work(&mut conn)
    })
    .await
    .unwrap()
}

fn coupon_status(conn: &mut wxkit::db::DbConnection, code: &str) -> String {
    coupons::table
        .filter(coupons::code.eq(code))
        .select(coupons::status)
        .first(conn)
        .unwrap()
}

fn link(conn: &mut wxkit::db::DbConnection, code: &str, card_code: &str) {
    diesel::update(coupons::table.filter(coupons::code.eq(code)))
        .set(coupons::wechat_card_code.eq(card_code))
        .execute(conn)
        .unwrap();
}

async fn post_push(http: &reqwest::Client, push: &SignedPush) -> (u16, String) {
    let r = http.post(&push.url).body(push.body.clone()).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

fn consume_event(from: &str, card_id: &str, card_code: &str, create_time: i64) -> String {
    card_event(
        "user_consume_card",
        from,
        create_time,
        &[
            ("CardId", card_id),
            ("UserCardCode", card_code),
            ("ConsumeSource", "FROM_MOBILE_HELPER"),
        ],
    )
}

fn get_card_event(from: &str, card_id: &str, card_code: &str, outer: &str, create_time: i64) -> String {
    card_event(
        "user_get_card",
        from,
        create_time,
        &[
            ("CardId", card_id),
            ("UserCardCode", card_code),
            ("IsGiveByFriend", "0"),
            ("OuterStr", outer),
        ],
    )
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn code_of(app: &TestApp, campaign: i64, owner: Option<&str>) -> String {
    let (s, c) = issue(app, campaign, owner).await;
    assert_eq!(s, 201, "{c}");
    c["code"].as_str().unwrap().to_owned()
}

async fn forged_replayed_downgraded_and_stale_pushes_are_refused(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, json!({"title": "card", "wechat_card_id": "pCARD"})).await;
    let first = code_of(&app, shop.campaign_id, Some("o-holder")).await;
    let second = code_of(&app, shop.campaign_id, Some("o-holder")).await;
    let http = reqwest::Client::new();

    // WeChat links both coupons (safe mode: encrypted pushes).
    let link_first = sign_push(
        &app.address,
        &get_card_event("o-holder", "pCARD", "C1", &first, now_s()),
        true,
    );
    assert_eq!(post_push(&http, &link_first).await, (200, "success".into()));
    let link_second = sign_push(
        &app.address,
        &get_card_event("o-holder", "pCARD", "C2", &second, now_s() + 1),
        true,
    );
    assert_eq!(post_push(&http, &link_second).await, (200, "success".into()));

    // The consume of the first is applied once; the identical re-send (WeChat's retry, or a replay) changes nothing.
    let consume_first = sign_push(&app.address, &consume_event("o-holder", "pCARD", "C1", now_s()), true);
    assert_eq!(post_push(&http, &consume_first).await, (200, "success".into()));
    assert_eq!(post_push(&http, &consume_first).await, (200, "success".into()));
    let f = first.clone();
    assert_eq!(with_db(&app, move |c| coupon_status(c, &f)).await, "redeemed");
    let f = first.clone();
    let redemption_rows: i64 = with_db(&app, move |c| {
        let id: i64 = coupons::table
            .filter(coupons::code.eq(&f))
            .select(coupons::id)
            .first(c)
            .unwrap();
        redemptions::table
            .filter(redemptions::coupon_id.eq(id))
            .count()
            .get_result(c)
            .unwrap()
    })
    .await;
    assert_eq!(redemption_rows, 1);

    // Attacks on the second coupon: none may redeem it.
    let plain = consume_event("o-holder", "pCARD", "C2", now_s());
    let mut refused = Vec::new();
    // 1. Downgrade: a correctly signed plaintext push while safe mode is configured.
    refused.push(("plaintext in safe mode", sign_push(&app.address, &plain, false)));
    // 2. encrypt_type in another case, or another value, over a plaintext body.
    let mut upper = sign_push(&app.address, &plain, false);
    upper.url.push_str("&encrypt_type=AES&msg_signature=0000");
    refused.push(("encrypt_type=AES over plaintext", upper));
    let mut raw = sign_push(&app.address, &plain, false);
    raw.url.push_str("&encrypt_type=none");
    refused.push(("encrypt_type=none", raw));
    // 3. Stale, malformed and future timestamps, correctly signed.
    for ts in ["1000000000", "abc", "", &(now_s() + 3600).to_string()] {
        refused.push(("bad timestamp", sign_push_at(&app.address, &plain, true, ts, "n-stale")));
    }
    // 4. A (timestamp, nonce) already used, with another body: even correctly signed, it is refused.
    let (ts, nonce) = query_ts_nonce(&link_second.url);
    refused.push(("reused nonce", sign_push_at(&app.address, &plain, true, &ts, &nonce)));
    // 5. Tampered msg_signature, and no signature at all.
    let mut tampered = sign_push(&app.address, &plain, true);
    tampered.url = tampered.url.replace("msg_signature=", "msg_signature=0");
    refused.push(("tampered msg_signature", tampered));
    refused.push((
        "unsigned",
        SignedPush {
            url: format!("{}/wechat/push?timestamp={}&nonce=x", app.address, now_s()),
            body: plain.clone(),
        },
    ));
    for (what, push) in &refused {
        let (status, body) = post_push(&http, push).await;
        assert!(status == 403 || status == 400, "{what}: {status} {body}");
        assert_ne!(body, "success", "{what}");
    }
    let s = second.clone();
    assert_eq!(
        with_db(&app, move |c| coupon_status(c, &s)).await,
        "issued",
        "no refused push touched the coupon"
    );

    // Hostile content: an oversized dedupe key and a NUL byte are refused with 400.
    let long_user = "o".repeat(400);
    let oversized = sign_push(&app.address, &consume_event(&long_user, "pCARD", "C2", now_s()), true);
    assert_eq!(post_push(&http, &oversized).await.0, 400);
    let nul = sign_push(&app.address, &consume_event("o\0x", "pCARD", "C2", now_s()), true);
    assert_eq!(post_push(&http, &nul).await.0, 400);

    // The genuine consume still works afterwards.
    let consume_second = sign_push(
        &app.address,
        &consume_event("o-holder", "pCARD", "C2", now_s() + 2),
        true,
    );
    assert_eq!(post_push(&http, &consume_second).await, (200, "success".into()));
    let s = second.clone();
    assert_eq!(with_db(&app, move |c| coupon_status(c, &s)).await, "redeemed");

    // Housekeeping forgets nonces past the window and dedupe records past their retention, nothing younger.
    let (kept, pruned_later) = with_db(&app, |c| {
        let now = chrono::Utc::now().timestamp_millis();
        let kept = wxkit::features::wechat_push::repo::prune(c, now, 300, 3_600_000).unwrap();
        let later = wxkit::features::wechat_push::repo::prune(c, now + 2 * 3_600_000, 300, 3_600_000).unwrap();
        let left: i64 = push_events::table.count().get_result(c).unwrap();
        (kept, (later, left))
    })
    .await;
    assert_eq!(kept, 0, "nothing is pruned inside the windows");
    assert_eq!(pruned_later, (8, 0), "4 nonces and 4 dedupe records, then nothing left");
}

fn query_ts_nonce(url: &str) -> (String, String) {
    let parsed = url::Url::parse(url).unwrap();
    let get = |k: &str| {
        parsed
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    (get("timestamp"), get("nonce"))
}

async fn plaintext_mode_binds_each_nonce_to_one_body_and_compatible_mode_is_explicit(kind: DbKind) {
    let Some(db) = TestDatabase::create(kind) else { return };
    let sim = spawn_sim().await;
    // Plaintext mode: no EncodingAESKey.
    let settings = test_settings_with(&db.url, &sim, &[], &["WXKIT__WECHAT__ENCODING_AES_KEY"]);
    let (address, state) = start_server_with(settings).await;
    let app = TestApp {
        address,
        state,
        sim,
        db,
        http: reqwest::Client::new(),
        clock: std::sync::Arc::default(),
        files: None,
    };
    let shop = shop(&app, json!({"title": "card", "wechat_card_id": "pCARD"})).await;
    let mine = code_of(&app, shop.campaign_id, None).await;
    let victim = code_of(&app, shop.campaign_id, None).await;
    let (m, v) = (mine.clone(), victim.clone());
    with_db(&app, move |c| {
        link(c, &m, "MINE");
        link(c, &v, "VICTIM");
    })
    .await;
    let http = reqwest::Client::new();
    // A genuine plaintext push, captured by whoever can see the traffic.
    let captured = sign_push(&app.address, &consume_event("o-a", "pCARD", "MINE", now_s()), false);
    assert_eq!(post_push(&http, &captured).await, (200, "success".into()));
    // The same signature, timestamp and nonce with another body (WeChat's plaintext signature does not cover the
    // body): refused, the victim's coupon untouched.
    let forged = SignedPush {
        url: captured.url.clone(),
        body: consume_event("o-a", "pCARD", "VICTIM", now_s()),
    };
    assert_eq!(post_push(&http, &forged).await.0, 403);
    let v = victim.clone();
    assert_eq!(with_db(&app, move |c| coupon_status(c, &v)).await, "issued");
    // An encrypted push without a key configured is refused too (nothing to check it with).
    let encrypted = sign_push(&app.address, &consume_event("o-a", "pCARD", "VICTIM", now_s()), true);
    assert!(post_push(&http, &encrypted).await.0 >= 400);

    // Compatible mode must be asked for; then both kinds are accepted.
    let Some(db2) = TestDatabase::create(kind) else { return };
    let settings = test_settings_with(
        &db2.url,
        &app.sim,
        &[("WXKIT__WECHAT__PUSH_COMPATIBLE_MODE", "true")],
        &[],
    );
    let (compat, _) = start_server_with(settings).await;
    let plain = sign_push(&compat, &card_event("user_del_card", "o-a", now_s(), &[]), false);
    assert_eq!(post_push(&http, &plain).await, (200, "success".into()));
    let enc = sign_push(&compat, &card_event("user_del_card", "o-b", now_s(), &[]), true);
    assert_eq!(post_push(&http, &enc).await, (200, "success".into()));
    drop(db2);
}

async fn card_links_are_checked_and_every_refusal_is_audited(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let card = shop(&app, json!({"title": "card", "wechat_card_id": "pA"})).await;
    let (s, plain_campaign) = json(
        app.admin(
            Method::POST,
            "/api/v1/campaigns",
            json!({"merchant_id": card.merchant_id, "title": "no card"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{plain_campaign}");
    let plain_campaign = plain_campaign["id"].as_i64().unwrap();
    let owned = code_of(&app, card.campaign_id, Some("o-1")).await;
    let unowned = code_of(&app, card.campaign_id, None).await;
    let not_card = code_of(&app, plain_campaign, Some("o-1")).await;
    let redeemed = code_of(&app, card.campaign_id, Some("o-1")).await;
    assert_eq!(pos(&app.address, &card.staff_token, &redeemed).await.0, 200);

    let http = reqwest::Client::new();
    let cases = [
        ("o-1", "pA", "K0", not_card.as_str(), "refused_not_card_backed"),
        ("o-1", "pOTHER", "K0", owned.as_str(), "refused_wrong_card"),
        ("o-2", "pA", "K0", owned.as_str(), "refused_not_owner"),
        ("o-1", "pA", "K0", redeemed.as_str(), "refused_not_issued"),
        ("o-1", "pA", "K1", owned.as_str(), "linked"),
        ("o-1", "pA", "K1", owned.as_str(), "linked"),
        ("o-1", "pA", "K2", owned.as_str(), "refused_already_linked"),
        ("o-3", "pA", "K1", unowned.as_str(), "refused_card_code_in_use"),
        (
            "o-3",
            "pA",
            "K0",
            "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "refused_unknown_coupon",
        ),
        ("o-3", "pA", "K3", &unowned.to_lowercase(), "linked"),
    ];
    for (i, (from, card_id, card_code, outer, _)) in cases.iter().enumerate() {
        let push = sign_push(
            &app.address,
            &get_card_event(from, card_id, card_code, outer, now_s() + i as i64),
            true,
        );
        // A refused link is still a push received: WeChat must not retry it.
        assert_eq!(post_push(&http, &push).await, (200, "success".into()), "case {i}");
    }
    let outcomes: Vec<String> = with_db(&app, |c| {
        audit_log::table
            .filter(audit_log::action.eq("card_link"))
            .order(audit_log::id)
            .select(audit_log::outcome)
            .load(c)
            .unwrap()
    })
    .await;
    let expected: Vec<String> = cases.iter().map(|c| c.4.to_owned()).collect();
    assert_eq!(outcomes, expected);
    let (o, u) = (owned.clone(), unowned.clone());
    let links: (Option<String>, Option<String>) = with_db(&app, move |c| {
        let get = |c: &mut wxkit::db::DbConnection, code: &str| {
            coupons::table
                .filter(coupons::code.eq(code))
                .select(coupons::wechat_card_code)
                .first::<Option<String>>(c)
                .unwrap()
        };
        (get(c, &o), get(c, &u))
    })
    .await;
    assert_eq!(links, (Some("K1".into()), Some("K3".into())));

    // One failure policy: when processing fails, nothing of the push stays recorded and WeChat gets a non-success
    // answer, so its re-send is processed — once.
    let late = code_of(&app, card.campaign_id, Some("o-9")).await;
    let push = sign_push(&app.address, &get_card_event("o-9", "pA", "K9", &late, now_s()), true);
    let rename = |from: &'static str, to: &'static str| {
        with_db(&app, move |c| {
            diesel::sql_query(format!("ALTER TABLE {from} RENAME TO {to}"))
                .execute(c)
                .unwrap();
        })
    };
    rename("audit_log", "audit_log_away").await;
    let (status, _) = post_push(&http, &push).await;
    rename("audit_log_away", "audit_log").await;
    assert_eq!(status, 503, "a failed link is not acknowledged");
    let l = late.clone();
    let linked: Option<String> = with_db(&app, move |c| {
        coupons::table
            .filter(coupons::code.eq(&l))
            .select(coupons::wechat_card_code)
            .first(c)
            .unwrap()
    })
    .await;
    assert_eq!(linked, None, "nothing of the failed push was kept");
    assert_eq!(
        post_push(&http, &push).await,
        (200, "success".into()),
        "WeChat's re-send"
    );
    assert_eq!(post_push(&http, &push).await, (200, "success".into()), "and another");
    let l = late.clone();
    let (linked, audits): (Option<String>, i64) = with_db(&app, move |c| {
        let linked = coupons::table
            .filter(coupons::code.eq(&l))
            .select(coupons::wechat_card_code)
            .first(c)
            .unwrap();
        let audits = audit_log::table
            .filter(audit_log::coupon_code.eq(&l))
            .count()
            .get_result(c)
            .unwrap();
        (linked, audits)
    })
    .await;
    assert_eq!((linked.as_deref(), audits), (Some("K9"), 1), "processed exactly once");
}

async fn card_code_at_sim(app: &TestApp, card_id: &str, openid: &str) -> String {
    let r: Value = reqwest::Client::new()
        .post(format!("{}/_sim/cards/{card_id}/add", app.sim.base_url()))
        .json(&json!({"openid": openid}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["code"].as_str().unwrap().to_owned()
}

async fn pos(app_address: &str, token: &str, code: &str) -> (StatusCode, Value) {
    json(
        reqwest::Client::new()
            .post(format!("{app_address}/api/v1/redemptions"))
            .bearer_auth(token)
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn outbox_rows(app: &TestApp) -> Vec<(i64, String, i32, Option<String>)> {
    with_db(app, |c| {
        outbox::table
            .order(outbox::id)
            .select((
                outbox::coupon_id.assume_not_null(),
                outbox::status,
                outbox::attempts,
                outbox::last_error,
            ))
            .load(c)
            .unwrap()
    })
    .await
}

async fn wait_for(what: &str, secs: u64, mut done: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn card_consumes_are_delivered_in_the_background_until_wechat_confirms(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let card_id = app.create_card(1000).await;
    let shop = shop(&app, json!({"title": "card", "wechat_card_id": card_id})).await;
    let good = code_of(&app, shop.campaign_id, Some("o-holder")).await;
    let card_code = card_code_at_sim(&app, &card_id, "o-holder").await;
    let (g, cc) = (good.clone(), card_code.clone());
    with_db(&app, move |c| link(c, &g, &cc)).await;

    // WeChat is slow and refusing: the first two consumes take 1.5 s each and answer "rate limit reached" (which
    // the client does not retry by itself: the outbox does, with backoff).
    app.sim.handle().inject(wechat_sim::Fault {
        path: "/card/code/consume".into(),
        count: 2,
        errcode: Some(45009),
        errmsg: None,
        http_status: None,
        delay_ms: Some(1500),
    });
    let started = Instant::now();
    let (s, b) = pos(&app.address, &shop.staff_token, &good).await;
    let pos_took = started.elapsed();
    assert_eq!(s, 200, "{b}");
    assert!(
        pos_took < Duration::from_millis(1500),
        "the POS answer does not wait on WeChat ({pos_took:?})"
    );
    wait_for("the consume to be confirmed", 30, async || {
        outbox_rows(&app).await.first().is_some_and(|r| r.1 == "done")
    })
    .await;
    let rows = outbox_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].2, 3, "two failures, then the delivery that WeChat confirmed");
    assert_eq!(app.sim.handle().calls("/card/code/consume"), 3);
    let info = app
        .state
        .cards
        .get_code(&card_code, Some(&card_id), false)
        .await
        .unwrap();
    assert_eq!(info.user_card_status, "CONSUMED");

    // A final answer (the code does not exist at WeChat) is flagged for an operator, not retried forever.
    let bogus = code_of(&app, shop.campaign_id, None).await;
    let b2 = bogus.clone();
    with_db(&app, move |c| link(c, &b2, "999999999999")).await;
    let (s, _) = pos(&app.address, &shop.staff_token, &bogus).await;
    assert_eq!(s, 200);
    wait_for("the bad consume to fail", 30, async || {
        outbox_rows(&app).await.iter().any(|r| r.1 == "failed")
    })
    .await;
    let (s, listed) = json(
        app.admin(Method::GET, "/api/v1/admin/outbox?status=failed", json!({}))
            .await,
    )
    .await;
    assert_eq!(s, 200, "{listed}");
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert!(items[0]["last_error"].as_str().unwrap().contains("40056"), "{listed}");
    assert_eq!(
        app.get("/metrics").await.status(),
        401,
        "metrics need the admin token once one is set"
    );
    let metrics = app
        .admin(Method::GET, "/metrics", json!({}))
        .await
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("wxkit_outbox_failed 1"), "{metrics}");
    assert!(metrics.contains("wxkit_outbox_pending 0"), "{metrics}");
    // The operator fixes the cause and puts it back in the queue.
    let id = items[0]["id"].as_i64().unwrap();
    let (s, _) = json(
        app.admin(Method::POST, &format!("/api/v1/admin/outbox/{id}/retry"), json!({}))
            .await,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = json(
        app.admin(Method::POST, "/api/v1/admin/outbox/999999/retry", json!({}))
            .await,
    )
    .await;
    assert_eq!(s, 404);
}

async fn two_instances_never_deliver_one_consume_twice(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let (second, _) = start_server_with(wxkit_e2e::test_settings(&app.db.url, &app.sim)).await;
    let card_id = app.create_card(1000).await;
    let shop = shop(&app, json!({"title": "card", "wechat_card_id": card_id})).await;
    let mut codes = Vec::new();
    for i in 0..20 {
        let code = code_of(&app, shop.campaign_id, None).await;
        let card_code = card_code_at_sim(&app, &card_id, &format!("o-{i}")).await;
        let c = code.clone();
        with_db(&app, move |conn| link(conn, &c, &card_code)).await;
        codes.push(code);
    }
    // Slow consumes widen the window in which both workers look for due work.
    app.sim.handle().inject(wechat_sim::Fault {
        path: "/card/code/consume".into(),
        count: 1000,
        errcode: None,
        errmsg: None,
        http_status: None,
        delay_ms: Some(100),
    });
    let mut tasks = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let address = if i % 2 == 0 {
            app.address.clone()
        } else {
            second.clone()
        };
        let (token, code) = (shop.staff_token.clone(), code.clone());
        tasks.push(tokio::spawn(async move { pos(&address, &token, &code).await.0 }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    wait_for("all consumes to be confirmed", 60, async || {
        let rows = outbox_rows(&app).await;
        rows.len() == 20 && rows.iter().all(|r| r.1 == "done")
    })
    .await;
    assert_eq!(
        app.sim.handle().calls("/card/code/consume"),
        20,
        "each consume delivered once, whichever instance took it"
    );
}

async fn small_edges_are_closed(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    // nosniff everywhere: JSON, errors, pages.
    for path in ["/healthz", "/api/v1/nothing", "/", "/metrics", "/c/AAAA"] {
        let r = app.get(path).await;
        assert_eq!(
            r.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{path}"
        );
    }
    // Pages come from templates with one stylesheet: no inline style or script is allowed, nor needed.
    for path in ["/", "/c/AAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let r = app.get(path).await;
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(
            !csp.contains("unsafe-inline") && csp.contains("default-src 'self'"),
            "{path}: {csp}"
        );
        let html = r.text().await.unwrap();
        assert!(
            !html.contains("<style") && html.contains("/static/app.css"),
            "{path}: {html}"
        );
    }
    let css = app.get("/static/app.css").await;
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=31536000")
    );
    let authorize = app
        .http
        .get(format!(
            "{}/connect/oauth2/authorize?appid={}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&response_type=code&scope=snsapi_base",
            app.sim.base_url(),
            wxkit_e2e::TEST_APP_ID
        ))
        .send()
        .await
        .unwrap();
    let csp = authorize.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!csp.contains("unsafe-inline"), "simulator: {csp}");
    assert!(authorize.text().await.unwrap().contains("/_sim/static/sim.css"));

    // The Bearer scheme in any case; 401s say which scheme they want.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = app
            .http
            .get(format!("{}/api/v1/campaigns", app.address))
            .header("authorization", format!("{scheme} {TEST_ADMIN_TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let r = app.get("/api/v1/campaigns").await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"wxkit\"");

    // NUL and other control characters never reach the database, on either backend.
    for name in ["a\u{0}b", "bell\u{7}", "esc\u{1b}[31m"] {
        let (s, b) = json(
            app.admin(Method::POST, "/api/v1/merchants", json!({"name": name}))
                .await,
        )
        .await;
        assert_eq!(
            (s.as_u16(), b["error"]["code"].as_str()),
            (400, Some("invalid_text")),
            "{name:?}"
        );
    }
    let (s, b) = json(
        app.admin(
            Method::POST,
            "/api/v1/merchants",
            json!({"name": "tab\tand \\u0000 as text"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["name"], "tab\tand \\u0000 as text");

    // WeChat failing during login is a 503 page that says to retry, not a 400.
    let shop: Shop = shop(&app, json!({"title": "t"})).await;
    let code = code_of(&app, shop.campaign_id, None).await;
    let r = app.get(&format!("/c/{code}")).await;
    assert_eq!(r.status(), 302);
    let binding = wxkit_e2e::oauth_binding(&r);
    let authorize = r.headers()["location"].to_str().unwrap().to_owned();
    let state = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    app.sim.handle().inject(wechat_sim::Fault {
        path: "/sns/oauth2/access_token".into(),
        count: 10,
        errcode: None,
        errmsg: None,
        http_status: Some(503),
        delay_ms: None,
    });
    let r = app
        .http
        .get(format!("{}/auth/callback?code=anything&state={state}", app.address))
        .header("cookie", binding)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("微信暂时无法连接"));

    // Failed authentications are limited per address: after 30, unknown tokens wait unread; the admin token, verified
    // before, is still served (a neighbour's bad guesses must not lock out a valid credential).
    let mut last = StatusCode::OK;
    for _ in 0..31 {
        last = app
            .http
            .get(format!("{}/api/v1/campaigns", app.address))
            .bearer_auth("wrong-token")
            .send()
            .await
            .unwrap()
            .status();
    }
    assert_eq!(last, 429);
    let r = app
        .http
        .get(format!("{}/api/v1/campaigns", app.address))
        .bearer_auth("another-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let r = app.admin(Method::GET, "/api/v1/campaigns", json!({})).await;
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth("wrong-token")
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "the POS shares the limit");
}

/// Sends every request of `work` with `clients` concurrent senders; `kill_after` acknowledgements in, `kill`
/// runs. Returns, per request index, whether it was acknowledged (`send` returned true).
async fn storm<F, Fut>(n: usize, clients: usize, send: F) -> Vec<bool>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(vec![false; n]));
    let send = Arc::new(send);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, acked, send) = (next.clone(), acked.clone(), send.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                if send(i).await {
                    acked.lock().unwrap()[i] = true;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

async fn admin_post(http: &reqwest::Client, address: &str, path: &str, body: Value) -> Value {
    let r = http
        .post(format!("{address}{path}"))
        .bearer_auth(TEST_ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// A merchant, a staff member and a card-backed campaign on a server process; `n` coupons, each linked to card
/// code `W<id>`.
async fn seed_process(address: &str, db_url: &str, n: usize) -> (String, Vec<String>) {
    let http = reqwest::Client::new();
    let m = admin_post(&http, address, "/api/v1/merchants", json!({"name": "m"})).await;
    let staff = admin_post(
        &http,
        address,
        "/api/v1/staff",
        json!({"merchant_id": m["id"], "openid": "o-staff", "name": "s"}),
    )
    .await;
    let c = admin_post(
        &http,
        address,
        "/api/v1/campaigns",
        json!({"merchant_id": m["id"], "title": "t", "wechat_card_id": "pSTORM"}),
    )
    .await;
    let path = format!("/api/v1/campaigns/{}/coupons", c["id"]);
    let mut codes = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(50) {
        let batch = (chunk * 50..((chunk + 1) * 50).min(n)).map(|_| {
            let (http, address, path) = (http.clone(), address.to_owned(), path.clone());
            tokio::spawn(async move { admin_post(&http, &address, &path, json!({})).await })
        });
        for t in batch.collect::<Vec<_>>() {
            codes.push(t.await.unwrap()["code"].as_str().unwrap().to_owned());
        }
    }
    // `W` + the coupon id: a card code per coupon, as if each had been added to a card bag.
    let sql = if db_url.starts_with("mysql") {
        "UPDATE coupons SET wechat_card_code = CONCAT('W', id)"
    } else {
        "UPDATE coupons SET wechat_card_code = 'W' || CAST(id AS TEXT)"
    };
    with_url(db_url, move |conn| {
        diesel::sql_query(sql).execute(conn).unwrap();
    })
    .await;
    (staff["api_token"].as_str().unwrap().to_owned(), codes)
}

struct Reconciled {
    redeemed: i64,
    redemption_rows: i64,
    distinct_redeemed: i64,
}

async fn reconcile(db_url: &str) -> Reconciled {
    with_url(db_url, |c| {
        let redeemed = coupons::table
            .filter(coupons::status.eq("redeemed"))
            .count()
            .get_result(c)
            .unwrap();
        let redemption_rows = redemptions::table.count().get_result(c).unwrap();
        let distinct_redeemed = redemptions::table
            .select(redemptions::coupon_id)
            .distinct()
            .load::<i64>(c)
            .unwrap()
            .len() as i64;
        Reconciled {
            redeemed,
            redemption_rows,
            distinct_redeemed,
        }
    })
    .await
}

async fn a_push_storm_survives_kill_9(kind: DbKind) {
    let Some(db) = TestDatabase::create(kind) else { return };
    let sim = spawn_sim().await;
    let env = server_env(&db.url, &sim, free_port());
    let mut server = ServerProcess::start(&env, None).await;
    const N: usize = 1500;
    let (_, codes) = seed_process(&server.address, &db.url, N).await;
    let ids: Vec<i64> = {
        let codes = codes.clone();
        with_url(&db.url, move |c| {
            codes
                .iter()
                .map(|code| {
                    coupons::table
                        .filter(coupons::code.eq(code))
                        .select(coupons::id)
                        .first::<i64>(c)
                        .unwrap()
                })
                .collect()
        })
        .await
    };
    // One user_consume_card push per coupon, signed and encrypted as WeChat does, each with its own nonce.
    let base = now_s();
    let pushes: Arc<Vec<SignedPush>> = Arc::new(
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                sign_push(
                    &server.address,
                    &consume_event("o-holder", "pSTORM", &format!("W{id}"), base + i as i64 % 50),
                    true,
                )
            })
            .collect(),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let acks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Kill the server once a third of the storm is acknowledged, while the rest is in flight.
    let killer = {
        let acks = acks.clone();
        let pid_server = Arc::new(Mutex::new(Some(server)));
        let handle = pid_server.clone();
        let task = tokio::spawn(async move {
            while acks.load(std::sync::atomic::Ordering::Relaxed) < N / 3 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if let Some(s) = handle.lock().unwrap().as_mut() {
                s.kill9();
            }
        });
        (task, pid_server)
    };
    let first_round = {
        let (pushes, http, acks) = (pushes.clone(), http.clone(), acks.clone());
        storm(N, 32, move |i| {
            let (pushes, http, acks) = (pushes.clone(), http.clone(), acks.clone());
            async move {
                let ok = match http.post(&pushes[i].url).body(pushes[i].body.clone()).send().await {
                    Ok(r) if r.status() == 200 => r.text().await.is_ok_and(|t| t == "success"),
                    _ => false,
                };
                if ok {
                    acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                ok
            }
        })
        .await
    };
    killer.0.await.unwrap();
    server = killer.1.lock().unwrap().take().unwrap();
    let acked_before_kill = first_round.iter().filter(|a| **a).count();
    assert!(
        (N / 3..N).contains(&acked_before_kill),
        "killed mid-storm: {acked_before_kill} of {N}"
    );
    // Nothing acknowledged may be missing, even before WeChat re-sends anything.
    let acked_ids: HashSet<i64> = first_round
        .iter()
        .zip(&ids)
        .filter(|(a, _)| **a)
        .map(|(_, id)| *id)
        .collect();
    let applied: HashSet<i64> = with_url(&db.url, |c| {
        redemptions::table
            .filter(redemptions::channel.eq("wechat"))
            .select(redemptions::coupon_id)
            .load::<i64>(c)
            .unwrap()
            .into_iter()
            .collect()
    })
    .await;
    let lost = acked_ids.difference(&applied).count();
    assert_eq!(lost, 0, "acknowledged but not applied after kill -9");

    // Restart and re-send what was not acknowledged, as WeChat does, until everything is.
    drop(server);
    let mut server = ServerProcess::start(&env, None).await;
    let mut unacked: Vec<usize> = (0..N).filter(|i| !first_round[*i]).collect();
    let resent = unacked.len();
    for _ in 0..5 {
        let mut still = Vec::new();
        for i in unacked {
            let (s, body) = post_push(&http, &pushes[i]).await;
            if !(s == 200 && body == "success") {
                still.push(i);
            }
        }
        unacked = still;
        if unacked.is_empty() {
            break;
        }
    }
    assert!(unacked.is_empty(), "{} pushes never acknowledged", unacked.len());
    let r = reconcile(&db.url).await;
    let events: i64 = with_url(&db.url, |c| push_events::table.count().get_result(c).unwrap()).await;
    eprintln!(
        "push storm + kill -9 ({kind:?}): {N} pushes, {acked_before_kill} acknowledged before the kill, {} applied \
         before it (applied but unanswered: {}), {resent} re-sent after restart; {} coupons redeemed, {} redemption \
         rows, {events} dedupe records, lost 0, duplicated {}",
        applied.len(),
        applied.len() - acked_before_kill,
        r.redeemed,
        r.redemption_rows,
        r.redemption_rows - r.distinct_redeemed
    );
    assert_eq!(
        (r.redeemed, r.redemption_rows, r.distinct_redeemed),
        (N as i64, N as i64, N as i64)
    );
    assert_eq!(events, N as i64, "one dedupe record per push");
    server.kill9();
}

async fn a_pos_load_survives_kill_9(kind: DbKind) {
    let Some(db) = TestDatabase::create(kind) else { return };
    let sim = spawn_sim().await;
    let env = server_env(&db.url, &sim, free_port());
    let server = ServerProcess::start(&env, None).await;
    const N: usize = 1500;
    let (token, codes) = seed_process(&server.address, &db.url, N).await;
    let codes = Arc::new(codes);
    let address = server.address.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let acks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = Arc::new(Mutex::new(Some(server)));
    let killer = {
        let (acks, server) = (acks.clone(), server.clone());
        tokio::spawn(async move {
            while acks.load(std::sync::atomic::Ordering::Relaxed) < N / 3 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if let Some(s) = server.lock().unwrap().as_mut() {
                s.kill9();
            }
        })
    };
    let first_round = {
        let (codes, http, acks, token, address) = (
            codes.clone(),
            http.clone(),
            acks.clone(),
            token.clone(),
            address.clone(),
        );
        storm(N, 32, move |i| {
            let (codes, http, acks, token, address) = (
                codes.clone(),
                http.clone(),
                acks.clone(),
                token.clone(),
                address.clone(),
            );
            async move {
                let ok = matches!(
                    http.post(format!("{address}/api/v1/redemptions"))
                        .bearer_auth(&token)
                        .json(&json!({"code": codes[i]}))
                        .send()
                        .await,
                    Ok(r) if r.status() == 200
                );
                if ok {
                    acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                ok
            }
        })
        .await
    };
    killer.await.unwrap();
    drop(server.lock().unwrap().take());
    let acked: Vec<&String> = first_round
        .iter()
        .zip(codes.iter())
        .filter(|(a, _)| **a)
        .map(|(_, c)| c)
        .collect();
    let acked_before_kill = acked.len();
    assert!(
        (N / 3..N).contains(&acked_before_kill),
        "killed mid-load: {acked_before_kill} of {N}"
    );
    let acked_codes: Vec<String> = acked.into_iter().cloned().collect();
    let lost: i64 = with_url(&db.url, move |c| {
        acked_codes
            .iter()
            .filter(|code| coupon_status(c, code) != "redeemed")
            .count() as i64
    })
    .await;
    assert_eq!(lost, 0, "acknowledged redemptions missing after kill -9");
    let committed_before_restart = reconcile(&db.url).await.redeemed;

    // Restart; the cashiers try again what got no answer: 200 (not applied before) or 409 (it was: the answer was
    // lost with the process) — never a second redemption.
    let _server = ServerProcess::start(&env, None).await;
    let (mut ok, mut conflict) = (0, 0);
    for i in (0..N).filter(|i| !first_round[*i]) {
        let (s, b) = pos(&address, &token, &codes[i]).await;
        match s.as_u16() {
            200 => ok += 1,
            409 => {
                assert_eq!(b["error"]["redeemed_by"]["name"], "s", "{b}");
                conflict += 1;
            }
            other => panic!("re-send answered {other}: {b}"),
        }
    }
    let r = reconcile(&db.url).await;
    eprintln!(
        "POS load + kill -9 ({kind:?}): {N} redemptions, {acked_before_kill} acknowledged before the kill, \
         {committed_before_restart} committed before the restart (committed but unanswered: {}), re-sent {} → {ok} × 200, \
         {conflict} × 409; {} redemption rows, lost 0, duplicated {}",
        committed_before_restart - acked_before_kill as i64,
        N - acked_before_kill,
        r.redemption_rows,
        r.redemption_rows - r.distinct_redeemed
    );
    assert_eq!(
        (r.redeemed, r.redemption_rows, r.distinct_redeemed),
        (N as i64, N as i64, N as i64)
    );
    assert_eq!(conflict as i64, committed_before_restart - acked_before_kill as i64);
}

on_shared_backends!(terminated_connections_are_replaced_without_readyz);

/// PostgreSQL: `pg_terminate_backend`; MySQL/MariaDB: `KILL CONNECTION` — every connection of the database.
async fn terminated_connections_are_replaced_without_readyz(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let shop = shop(&app, json!({"title": "t"})).await;
    let mut codes = Vec::new();
    for _ in 0..600 {
        codes.push(code_of(&app, shop.campaign_id, None).await);
    }

    // POS load from 16 clients; every backend of the database is terminated once 150 redemptions are in.
    let started = Instant::now();
    let log: Arc<Mutex<Vec<(Duration, u16, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let queue = Arc::new(Mutex::new(codes.clone()));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (log, queue, address, token) = (
            log.clone(),
            queue.clone(),
            app.address.clone(),
            shop.staff_token.clone(),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let Some(code) = queue.lock().unwrap().pop() else {
                    return;
                };
                let (s, _) = pos(&address, &token, &code).await;
                log.lock().unwrap().push((started.elapsed(), s.as_u16(), code));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    while log.lock().unwrap().len() < 150 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let killed_at = started.elapsed();
    let terminated = wxkit_e2e::terminate_backends(&app.db.url).await;
    assert!(terminated >= 1, "the pool's backends were terminated");
    for c in clients {
        c.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    let after: Vec<_> = log.iter().filter(|(t, _, _)| *t > killed_at).collect();
    let failed_after = after.iter().filter(|(_, s, _)| *s >= 500).count();
    let first_ok = after
        .iter()
        .filter(|(_, s, _)| *s == 200)
        .map(|(t, _, _)| *t - killed_at)
        .min()
        .expect("redemptions succeed after the termination");
    eprintln!(
        "terminated {terminated} {kind:?} connections under POS load: {} requests after it, {failed_after} failed, \
         first 200 after {first_ok:?} (no /readyz call)",
        after.len()
    );
    // A batch that meets a dead connection runs again on a live one: no POS call fails at all (before the fix: every
    // call that drew a dead connection failed).
    assert_eq!(failed_after, 0, "POS calls failed after the termination");
    assert!(first_ok < Duration::from_secs(1), "recovered within 1 s ({first_ok:?})");
    // Reconcile: every acknowledged redemption is in the database; re-sending the failed ones redeems the rest.
    let acked: Vec<String> = log
        .iter()
        .filter(|(_, s, _)| *s == 200)
        .map(|(_, _, c)| c.clone())
        .collect();
    let lost: usize = with_db(&app, move |c| {
        acked.iter().filter(|code| coupon_status(c, code) != "redeemed").count()
    })
    .await;
    assert_eq!(lost, 0);
    for (_, s, code) in log.iter().filter(|(_, s, _)| *s >= 500) {
        let (again, b) = pos(&app.address, &shop.staff_token, code).await;
        assert!(again == 200 || again == 409, "after {s}: {again} {b}");
    }
    let all = with_db(&app, |c| redemptions::table.count().get_result::<i64>(c).unwrap()).await;
    assert_eq!(all, 600);

    // Idle pool, then a termination: the admin API (not the POS batcher) recovers the same way.
    assert!(wxkit_e2e::terminate_backends(&app.db.url).await >= 1);
    let mut failures = 0;
    loop {
        let r = app.admin(Method::GET, "/api/v1/campaigns", json!({})).await;
        if r.status() == 200 {
            break;
        }
        failures += 1;
        assert!(failures <= 8, "admin calls keep failing after the termination");
    }
    // The call that found a dead connection fails; the pool then checks the others before using them.
    assert!(failures <= 1, "{failures} admin calls failed after the termination");
    eprintln!("admin API after terminating an idle pool: {failures} failed call(s) before a 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_bodies_are_cut_off_and_health_keeps_answering() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(db) = TestDatabase::create(DbKind::Sqlite) else {
        return;
    };
    let sim = spawn_sim().await;
    let mut env = server_env(&db.url, &sim, free_port());
    env.push(("WXKIT__SERVER__BODY_TIMEOUT_SECS".into(), "2".into()));
    // A low descriptor limit: 300 stalled clients would exhaust it without the connection cap.
    let server = ServerProcess::start(&env, Some("ulimit -n 256;")).await;
    let host = server.address.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let connect = tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(&host)).await;
        let Ok(Ok(mut s)) = connect else { continue };
        // A head announcing 1,000 bytes, then one byte, then nothing.
        let _ = s
            .write_all(b"POST /wechat/push?signature=x&timestamp=1&nonce=n HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nA")
            .await;
        stalled.push(s);
    }
    assert!(
        stalled.len() >= 100,
        "the stalled clients connected ({})",
        stalled.len()
    );
    let started = Instant::now();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut first_ok = None;
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(r) = http.get(format!("{}/healthz", server.address)).send().await
            && r.status() == 200
        {
            first_ok = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_ok = first_ok.expect("/healthz answers while stalled clients hold connections");
    // The stalled clients were cut off: each got an answer or a closed connection.
    let mut closed = 0;
    for s in stalled.iter_mut().take(50) {
        let mut buf = [0u8; 256];
        // An answer (408), an end of stream or a reset all mean the server let go; only a timeout means it did not.
        if tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .is_ok()
        {
            closed += 1;
        }
    }
    eprintln!(
        "{} stalled clients under `ulimit -n 256`: /healthz answered after {first_ok:?}; {closed} of 50 checked were cut off",
        stalled.len()
    );
    assert_eq!(closed, 50, "stalled bodies are cut off by the deadline");
    assert!(first_ok < Duration::from_secs(10), "{first_ok:?}");
    drop(stalled);
    // And the server is healthy afterwards.
    assert_eq!(
        http.get(format!("{}/healthz", server.address))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(!server.log_text().contains("panicked"), "{}", server.log_text());
}

fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

async fn metrics_move_after_a_redemption(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, json!({"title": "t"})).await;
    let code = code_of(&app, shop.campaign_id, None).await;
    let scrape = async || {
        let r = app.admin(Method::GET, "/metrics", json!({})).await;
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    };
    // The recorder is process-wide (other tests run beside this one): compare before and after.
    let before = scrape().await;
    let redeemed = r#"wxkit_redemptions_total{channel="pos",outcome="redeemed"}"#;
    let pos_ok = r#"wxkit_http_requests_total{method="POST",route="/api/v1/redemptions",status="200"}"#;
    let r = app
        .http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth(&shop.staff_token)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().contains_key("x-request-id"),
        "every response names its request"
    );
    app.state.tokens.access_token().await.unwrap();
    let after = scrape().await;
    assert!(
        metric_value(&after, redeemed) >= metric_value(&before, redeemed) + 1.0,
        "{after}"
    );
    assert!(
        metric_value(&after, pos_ok) >= metric_value(&before, pos_ok) + 1.0,
        "{after}"
    );
    for series in [
        "wxkit_http_request_duration_seconds_bucket",
        "wxkit_pos_batch_size_bucket",
        "wxkit_outbox_pending",
        "wechat_token_refreshes_total",
    ] {
        assert!(after.contains(series), "{series} missing:\n{after}");
    }
    // Route patterns, never raw paths: a coupon code must not become a label value.
    assert!(!after.contains(&code), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_lines_name_the_request_but_never_its_query() {
    let Some(db) = TestDatabase::create(DbKind::Sqlite) else {
        return;
    };
    let sim = spawn_sim().await;
    let mut env = server_env(&db.url, &sim, free_port());
    env.push(("RUST_LOG".into(), "info".into()));
    let server = ServerProcess::start(&env, None).await;
    // An OAuth code travels in the query string: it must not reach a log line.
    let r = reqwest::Client::new()
        .get(format!(
            "{}/auth/callback?code=SECRETCODE4711&state=forged",
            server.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let mut log = String::new();
    for _ in 0..50 {
        log = server.log_text();
        if log.contains("refused OAuth state") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(log.contains("refused OAuth state"), "{log}");
    assert!(log.contains(&request_id), "the line names its request: {log}");
    assert!(log.contains("/auth/callback"), "{log}");
    assert!(!log.contains("SECRETCODE4711"), "{log}");
}

/// Payment notifies for N coupon purchases, the server `kill -9`ed once a third are acknowledged: every acknowledged
/// notify was committed (order paid, coupon issued) before its SUCCESS; after a restart WeChat's resends of the rest
/// settle everything — each order paid once, one coupon per order, one `applied` record per order.
async fn a_payment_notify_storm_survives_kill_9(kind: DbKind) {
    use wxkit::db::schema::{coupon_purchases, pay_notifications, pay_orders};
    let Some(db) = TestDatabase::create(kind) else { return };
    let sim = spawn_sim().await;
    let env = server_env(&db.url, &sim, free_port());
    let server = ServerProcess::start(&env, None).await;
    const N: usize = 900;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let m = admin_post(&http, &server.address, "/api/v1/merchants", json!({"name": "m"})).await;
    let c = admin_post(
        &http,
        &server.address,
        "/api/v1/campaigns",
        json!({"merchant_id": m["id"], "title": "t", "price_fen": 990, "quantity": N}),
    )
    .await;
    let campaign_id = c["id"].as_i64().unwrap();
    // N purchases placed as `POST /api/v1/pay/orders` places them (reserved against the campaign).
    let orders: Vec<String> = with_url(&db.url, move |conn| {
        let now = now_s() * 1000;
        (0..N)
            .map(|i| {
                let no = format!("storm{i:06}");
                let buyer = format!("o-buyer-{i}");
                wxkit::features::pay::repo::place(
                    conn,
                    &wxkit::features::pay::repo::NewOrder {
                        out_trade_no: &no,
                        user_id: None,
                        openid: None,
                        description: "t",
                        total_fee: 990,
                        trade_type: "NATIVE",
                        expires_at: now / 1000 + 3600,
                        now,
                        campaign_id: Some(campaign_id),
                        buyer_openid: Some(&buyer),
                        appid: None,
                        max_open: 0,
                    },
                )
                .map_err(|e| format!("{e:?}"))
                .unwrap();
                no
            })
            .collect()
    })
    .await;
    let bodies: Arc<Vec<String>> = Arc::new(
        orders
            .iter()
            .enumerate()
            .map(|(i, no)| {
                wxkit_e2e::pay_notify_body(no, &format!("42000000002026112{i:010}"), 990, wxkit_e2e::TEST_PAY_KEY)
            })
            .collect(),
    );
    let url = format!("{}/wechat/pay/notify", server.address);
    let acks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let holder = Arc::new(Mutex::new(Some(server)));
    let killer = {
        let (acks, holder) = (acks.clone(), holder.clone());
        tokio::spawn(async move {
            while acks.load(std::sync::atomic::Ordering::Relaxed) < N / 3 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if let Some(s) = holder.lock().unwrap().as_mut() {
                s.kill9();
            }
        })
    };
    let first_round = {
        let (bodies, http, acks, url) = (bodies.clone(), http.clone(), acks.clone(), url.clone());
        storm(N, 32, move |i| {
            let (bodies, http, acks, url) = (bodies.clone(), http.clone(), acks.clone(), url.clone());
            async move {
                let ok = match http.post(&url).body(bodies[i].clone()).send().await {
                    Ok(r) if r.status() == 200 => r.text().await.is_ok_and(|t| t.contains("<![CDATA[SUCCESS]]>")),
                    _ => false,
                };
                if ok {
                    acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                ok
            }
        })
        .await
    };
    killer.await.unwrap();
    let server = holder.lock().unwrap().take().unwrap();
    let acked: Vec<String> = first_round
        .iter()
        .zip(&orders)
        .filter(|(a, _)| **a)
        .map(|(_, no)| no.clone())
        .collect();
    assert!(
        (N / 3..N).contains(&acked.len()),
        "killed mid-storm: {} of {N}",
        acked.len()
    );
    // Every SUCCESS was sent after its commit: each acknowledged order is paid and holds its coupon.
    let settled: HashSet<String> = with_url(&db.url, |c| {
        coupon_purchases::table
            .filter(coupon_purchases::coupon_code.is_not_null())
            .select(coupon_purchases::out_trade_no)
            .load::<String>(c)
            .unwrap()
            .into_iter()
            .collect()
    })
    .await;
    let lost = acked.iter().filter(|no| !settled.contains(*no)).count();
    assert_eq!(lost, 0, "acknowledged but not applied after kill -9");

    // Restart; WeChat re-sends what was not acknowledged (and, to be thorough, everything once more).
    drop(server);
    let server = ServerProcess::start(&env, None).await;
    let url = format!("{}/wechat/pay/notify", server.address);
    for body in bodies.iter() {
        let answer = http
            .post(&url)
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(answer.contains("SUCCESS"), "{answer}");
    }
    let (paid, coupons_issued, codes, applied, issued_counter) = with_url(&db.url, move |c| {
        let paid: i64 = pay_orders::table
            .filter(pay_orders::status.eq("paid"))
            .count()
            .get_result(c)
            .unwrap();
        let coupons_issued: i64 = coupons::table
            .filter(coupons::campaign_id.eq(campaign_id))
            .count()
            .get_result(c)
            .unwrap();
        let codes: HashSet<String> = coupon_purchases::table
            .select(coupon_purchases::coupon_code)
            .load::<Option<String>>(c)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        let applied: i64 = pay_notifications::table
            .filter(pay_notifications::outcome.eq("applied"))
            .count()
            .get_result(c)
            .unwrap();
        let issued_counter: i64 = wxkit::db::schema::campaigns::table
            .find(campaign_id)
            .select(wxkit::db::schema::campaigns::issued)
            .first(c)
            .unwrap();
        (paid, coupons_issued, codes.len(), applied, issued_counter)
    })
    .await;
    eprintln!(
        "notify storm + kill -9 ({kind:?}): {N} orders, {} acknowledged before the kill, {} settled by then; after \
         the restart {paid} paid, {coupons_issued} coupons, {applied} applied records",
        acked.len(),
        settled.len()
    );
    assert_eq!(
        (paid, coupons_issued, codes as i64, applied, issued_counter),
        (N as i64, N as i64, N as i64, N as i64, N as i64),
        "each order paid once, with one coupon"
    );
    drop(server);
}

/// A server stopped while its outbox worker waits on WeChat hands the item's lease back: another instance (or this
/// one restarted) delivers it at once, not when the two-minute lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_server_hands_back_its_outbox_lease() {
    let (app, stop, running) = wxkit_e2e::spawn_app_stoppable(DbKind::Sqlite).await.unwrap();
    let card_id = app.create_card(10).await;
    let shop = shop(&app, json!({"title": "card", "wechat_card_id": card_id})).await;
    let code = code_of(&app, shop.campaign_id, Some("o-holder")).await;
    let card_code = card_code_at_sim(&app, &card_id, "o-holder").await;
    let (c, cc) = (code.clone(), card_code.clone());
    with_db(&app, move |conn| link(conn, &c, &cc)).await;
    // WeChat takes 10 s to answer the consume: the worker holds the item's lease meanwhile.
    app.sim.handle().inject(wechat_sim::Fault {
        path: "/card/code/consume".into(),
        count: 1,
        errcode: None,
        errmsg: None,
        http_status: None,
        delay_ms: Some(10_000),
    });
    let (s, b) = pos(&app.address, &shop.staff_token, &code).await;
    assert_eq!(s, 200, "{b}");
    wait_for("the worker to call WeChat", 10, async || {
        app.sim.handle().calls("/card/code/consume") == 1
    })
    .await;
    let leased = |conn: &mut wxkit::db::DbConnection| -> (String, i64, Option<String>) {
        outbox::table
            .select((outbox::status, outbox::lease_until, outbox::lease_owner))
            .first(conn)
            .unwrap()
    };
    let before = with_db(&app, leased).await;
    assert!(before.1 > 0, "leased while WeChat is called: {before:?}");
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    let after = with_db(&app, leased).await;
    assert_eq!((after.0.as_str(), after.1), ("pending", 0), "handed back: {after:?}");
}
