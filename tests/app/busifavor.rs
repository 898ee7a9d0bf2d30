//! WeChat Pay 商家券 end to end, on SQLite and PostgreSQL, against the simulator over HTTP: a stock created for a
//! campaign; the owner puts a coupon in the card bag through WeChat's H5 page (which does not call back: the coupon
//! page asks); `COUPON.SEND` from the mini-program plugin delivered twice at once and applied once; a POS redemption
//! used exactly once at WeChat though its first answer is lost; a void deactivated; a forged `COUPON.SEND` refused.

use crate::coupons::{issue, json, shop};
use crate::pay::{set_pay_faults, web_session};
use reqwest::Method;
use serde_json::{Value, json};
use wxkit_e2e::{DbKind, TEST_MCH_ID, TestApp, eventually_within, spawn_app_busifavor};

on_both_backends!(
    a_campaigns_coupons_go_to_the_card_bag_and_are_used_once_at_wechat,
    the_shop_owner_puts_a_campaign_in_card_bags_from_the_console,
    without_the_v2_key_wechat_pay_coupons_name_the_missing_setting,
);

const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The stock for the campaign, created through the admin API (multipart, like `/wechat-card`).
async fn create_stock(app: &TestApp, campaign_id: i64) -> String {
    let logo = qr_render::render_png("logo", &qr_render::RenderOptions::default()).unwrap();
    let url = format!("{}/api/v1/campaigns/{campaign_id}/wechat-pay-coupon", app.address);
    let post = async |name: &str| {
        let (content_type, body) = crate::coupons::card_form(
            &[("brand_name", "咖啡店"), ("title", name), ("quantity", "50")],
            Some(&logo),
        );
        let r = app
            .http
            .post(&url)
            .bearer_auth(wxkit_e2e::TEST_ADMIN_TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        json(r).await
    };
    // Fields outside WeChat's limits are refused before anything is sent (no stock, no upload).
    let (s, b) = post("一个非常非常长的批次名称").await;
    assert_eq!(s, 400, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("stock_name"), "{b}");
    assert_eq!(app.sim.handle().calls("/v3/marketing/favor/media/image-upload"), 0);
    let (s, b) = post("免费咖啡").await;
    assert_eq!(s, 201, "{b}");
    let stock_id = b["wechat_pay_stock_id"].as_str().unwrap().to_owned();
    // Backed already: 409, for a new stock and for an existing one alike.
    let (s, b) = json(
        app.admin(
            Method::POST,
            &format!("/api/v1/campaigns/{campaign_id}/wechat-pay-coupon"),
            json!({"stock_id": stock_id}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (409, Some("already_stock_backed")),
        "{b}"
    );
    // The merchant's 商家券 events now come to this server.
    assert_eq!(
        app.sim.handle().busifavor_callback(TEST_MCH_ID).as_deref(),
        Some(format!("{}/wechat/pay/v3/notify", app.address).as_str())
    );
    stock_id
}

fn sim_coupon(app: &TestApp, stock_id: &str, code: &str) -> Option<wechat_sim::SimCoupon> {
    app.sim
        .handle()
        .busifavor_coupons(stock_id)
        .into_iter()
        .find(|c| c.coupon_code == code)
}

async fn coupon_json(app: &TestApp, code: &str) -> Value {
    app.get(&format!("/api/v1/coupons/{code}")).await.json().await.unwrap()
}

/// The coupon's audit rows (`card_bag` and redemptions), from the database.
async fn audit_rows(app: &TestApp, code: &str) -> i64 {
    let code = code.to_owned();
    wxkit::db::blocking(&app.state.db, move |conn| {
        let (c, _) = wxkit::features::coupons::repo::coupon_by_code(conn, &code)?.expect("coupon");
        Ok(wxkit::features::coupons::repo::redemption_and_audit_counts(conn, c.id)?.1)
    })
    .await
    .unwrap()
}

/// The owner's H5 path: our link → WeChat's 领券 page → 领取; back on the coupon page it shows in the card bag.
async fn add_through_h5(app: &TestApp, cookie: &str, code: &str, stock_id: &str) {
    let r = app
        .http
        .get(format!("{}/c/{code}/wechat-pay-coupon", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let h5 = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        h5.starts_with(&format!("{}/busifavor/getcouponinfo?", app.sim.base_url())),
        "{h5}"
    );
    assert!(
        h5.ends_with("#wechat_pay&wechat_redirect") && h5.contains(&format!("coupon_code={code}")),
        "{h5}"
    );
    // A link whose signature was tampered with is refused by WeChat's page.
    let tampered = h5.replace("open_id=o-owner", "open_id=o-thief");
    let page = reqwest::get(&tampered).await.unwrap().text().await.unwrap();
    assert!(page.contains("签名错误"), "{page}");
    let page = reqwest::get(&h5).await.unwrap().text().await.unwrap();
    assert!(page.contains("busifavor-receive"), "{page}");
    let query = url::Url::parse(&h5).unwrap();
    let fields: Vec<(String, String)> = query.query_pairs().into_owned().collect();
    let receive = reqwest::Client::new()
        .post(format!("{}/busifavor/getcouponinfo", app.sim.base_url()))
        .form(&fields)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(receive.contains("data-outcome=\"received\""), "{receive}");
    assert_eq!(sim_coupon(app, stock_id, code).unwrap().state, "SENDED");
    // The plain H5 page does not call back (as WeChat documents): nothing was delivered for it.
    assert!(
        !app.sim
            .handle()
            .notifications()
            .iter()
            .any(|n| n.kind == "coupon" && n.out_trade_no == code)
    );
    // Before the owner comes back nothing says so; the coupon page asks WeChat while the attempt is pending.
    assert_eq!(coupon_json(app, code).await["in_wechat_card_bag"], false);
    let page = app
        .http
        .get(format!("{}/c/{code}", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("id=\"in-wallet\"") && !page.contains("id=\"add-busifavor\""),
        "{page}"
    );
    assert_eq!(coupon_json(app, code).await["in_wechat_card_bag"], true);
    // Once there, another attempt is refused.
    let r = app
        .http
        .get(format!("{}/api/v1/coupons/{code}/busifavor-send", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let (s, b) = json(r).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (409, Some("already_in_wallet")),
        "{b}"
    );
}

/// The H5 page's 领取 for `code`, at the simulator, through our link (no callback follows, as WeChat documents).
async fn receive_through_h5(app: &TestApp, cookie: &str, code: &str) {
    let r = app
        .http
        .get(format!("{}/c/{code}/wechat-pay-coupon", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let h5 = r.headers()["location"].to_str().unwrap().to_owned();
    let fields: Vec<(String, String)> = url::Url::parse(&h5).unwrap().query_pairs().into_owned().collect();
    let received = reqwest::Client::new()
        .post(format!("{}/busifavor/getcouponinfo", app.sim.base_url()))
        .form(&fields)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(received.contains("data-outcome=\"received\""), "{received}");
}

/// The mini-program path: plugin parameters from our API, the plugin's send at WeChat (which calls back).
async fn add_through_plugin(app: &TestApp, cookie: &str, code: &str) {
    let r = app
        .http
        .get(format!("{}/api/v1/coupons/{code}/busifavor-send", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let (s, mut params) = json(r).await;
    assert_eq!(s, 200, "{params}");
    assert_eq!(params["send_coupon_params"][0]["coupon_code"], code);
    params["openid"] = json!("o-owner");
    let sent: Value = reqwest::Client::new()
        .post(format!("{}/_sim/pay/busifavor/plugin-send", app.sim.base_url()))
        .json(&params)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["send_coupon_result"][0]["code"], "SUCCESS", "{sent}");
}

async fn a_campaigns_coupons_go_to_the_card_bag_and_are_used_once_at_wechat(kind: DbKind) {
    let Some(app) = spawn_app_busifavor(kind).await else {
        return;
    };
    let shop = shop(&app, json!({"title": "免费咖啡 Free coffee", "per_user_limit": 5})).await;
    let stock_id = create_stock(&app, shop.campaign_id).await;
    // Attaching: a stock WeChat Pay does not know is refused; one that backs another campaign already is 409.
    let (s, other) = json(
        app.admin(
            Method::POST,
            "/api/v1/campaigns",
            json!({"merchant_id": shop.merchant_id, "title": "第二个活动"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{other}");
    let attach = format!("/api/v1/campaigns/{}/wechat-pay-coupon", other["id"]);
    let (s, b) = json(
        app.admin(Method::POST, &attach, json!({"stock_id": "1299999999999999"}))
            .await,
    )
    .await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (400, Some("unknown_stock")),
        "{b}"
    );
    let (s, b) = json(app.admin(Method::POST, &attach, json!({"stock_id": stock_id})).await).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (409, Some("already_stock_backed")),
        "{b}"
    );
    let cookie = web_session(&app, "o-owner").await;
    let mut codes = Vec::new();
    for _ in 0..5 {
        let (s, c) = issue(&app, shop.campaign_id, Some("o-owner")).await;
        assert_eq!(s, 201, "{c}");
        codes.push(c["code"].as_str().unwrap().to_owned());
    }

    // 1. The H5 page.
    add_through_h5(&app, &cookie, &codes[0], &stock_id).await;

    // 1b. Nobody else can send the owner's coupon anywhere, and garbage is answered in words.
    let stranger = web_session(&app, "o-stranger").await;
    let get = async |path: String, cookie: Option<&str>| {
        let mut r = app.http.get(format!("{}{path}", app.address));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send().await.unwrap()
    };
    let r = get(format!("/api/v1/coupons/{}/busifavor-send", codes[1]), None).await;
    assert_eq!(r.status(), 401);
    let r = get(format!("/api/v1/coupons/{}/busifavor-send", codes[1]), Some(&stranger)).await;
    assert_eq!(r.status(), 404, "someone else's coupon is as good as none");
    let r = get("/api/v1/coupons/not-a-code/busifavor-send".to_owned(), Some(&cookie)).await;
    assert_eq!(r.status(), 404);
    let r = get(format!("/c/{}/wechat-pay-coupon", codes[1]), Some(&stranger)).await;
    assert_eq!(r.status(), 404, "no H5 link for someone else's coupon");
    assert!(r.text().await.unwrap().contains("不能加入微信卡包"));
    let staff_scan = async |cookie: &str, scanned: &str| {
        let page = get("/staff/scan".into(), Some(cookie)).await;
        let status = page.status();
        let text = page.text().await.unwrap();
        if status != 200 {
            return (status, text);
        }
        let r = app
            .http
            .post(format!("{}/staff/scan", app.address))
            .header("cookie", cookie)
            .form(&[
                ("csrf", crate::console::form_token(&text).as_str()),
                ("scanned", scanned),
            ])
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    let (s, page) = staff_scan(&stranger, &codes[1]).await;
    assert_eq!(s, 403, "the scanner is for staff: {page}");
    let staff = web_session(&app, "o-staff").await;
    let (s, page) = staff_scan(&staff, "https://evil.example/c/junk").await;
    assert_eq!(s, 404, "{page}");
    assert!(page.contains("不是本店的优惠券码"), "{page}");
    assert_eq!(
        sim_coupon(&app, &stock_id, &codes[0]).unwrap().use_calls,
        0,
        "nothing was used"
    );

    // 2. COUPON.SEND delivered twice at the same moment: one card-bag record, one audit row.
    set_pay_faults(&app, json!({"duplicate_notifies": 1})).await;
    add_through_plugin(&app, &cookie, &codes[1]).await;
    let sends = || {
        app.sim
            .handle()
            .notifications()
            .into_iter()
            .filter(|n| n.kind == "coupon" && n.out_trade_no == codes[1])
            .collect::<Vec<_>>()
    };
    eventually_within("both COUPON.SEND copies acknowledged", WAIT, || {
        let s = sends();
        s.len() == 2 && s.iter().all(|n| n.delivered)
    })
    .await;
    assert_eq!(coupon_json(&app, &codes[1]).await["in_wechat_card_bag"], true);
    assert_eq!(audit_rows(&app, &codes[1]).await, 1, "added once, audited once");

    // 3. A forged COUPON.SEND (a genuine one's body changed, or signed by a key that is not WeChat Pay's): 401,
    //    nothing changes.
    add_through_plugin(&app, &cookie, &codes[2]).await;
    eventually_within("COUPON.SEND delivered", WAIT, || {
        app.sim
            .handle()
            .notifications()
            .iter()
            .any(|n| n.kind == "coupon" && n.out_trade_no == codes[2] && n.delivered)
    })
    .await;
    let genuine = app
        .sim
        .handle()
        .notifications()
        .into_iter()
        .find(|n| n.kind == "coupon" && n.out_trade_no == codes[2])
        .unwrap();
    let before = audit_rows(&app, &codes[2]).await;
    let forged_body = genuine.body().replacen("\"id\":\"EV-", "\"id\":\"EV-X", 1);
    assert_ne!(forged_body, genuine.body());
    let mut r = app
        .http
        .post(format!("{}/wechat/pay/v3/notify", app.address))
        .header("content-type", "application/json");
    for (k, v) in genuine.last_headers() {
        r = r.header(*k, v);
    }
    let (s, _) = json(r.body(forged_body).send().await.unwrap()).await;
    assert_eq!(s, 401);
    let mut r = app
        .http
        .post(format!("{}/wechat/pay/v3/notify", app.address))
        .header("content-type", "application/json");
    for (k, v) in genuine.last_headers() {
        let v = if *k == "Wechatpay-Signature" {
            "Zm9yZ2Vk".to_owned()
        } else {
            v.clone()
        };
        r = r.header(*k, v);
    }
    let (s, _) = json(r.body(genuine.body().to_owned()).send().await.unwrap()).await;
    assert_eq!(s, 401);
    assert_eq!(
        audit_rows(&app, &codes[2]).await,
        before,
        "nothing applied or audited for a forged notify"
    );
    assert_eq!(coupon_json(&app, &codes[3]).await["in_wechat_card_bag"], false);

    // 3b. Twenty arrivals of one coupon at the same moment (callbacks and page queries racing): one record, one audit.
    receive_through_h5(&app, &cookie, &codes[3]).await;
    let before = audit_rows(&app, &codes[3]).await;
    let now = wxkit::platform::clock::Clock::now_ms(&*app.clock);
    let mut racing = Vec::new();
    for i in 0..20 {
        let (db, code, stock) = (app.state.db.clone(), codes[3].clone(), stock_id.clone());
        racing.push(tokio::spawn(async move {
            wxkit::db::blocking(&db, move |conn| {
                let via = if i % 2 == 0 { "callback" } else { "query" };
                wxkit::features::coupons::busifavor::apply_received(conn, &code, &stock, "o-owner", via, now)
            })
            .await
        }));
    }
    let mut added = 0;
    for r in racing {
        match r.await.unwrap().unwrap() {
            wxkit::features::coupons::busifavor::Received::Added => added += 1,
            wxkit::features::coupons::busifavor::Received::Already => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(added, 1, "one arrival recorded");
    assert_eq!(audit_rows(&app, &codes[3]).await, before + 1);

    // 3c. Staff redeem it with the scanner page (session, staff check, CSRF): the scan page's use case — on
    //     PostgreSQL its single-statement write — queues the use too.
    let page = app
        .http
        .get(format!("{}/staff/scan", app.address))
        .header("cookie", &staff)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = crate::console::form_token(&page);
    let forged = app
        .http
        .post(format!("{}/staff/scan", app.address))
        .header("cookie", &staff)
        .form(&[("csrf", "forged"), ("scanned", codes[3].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let r = app
        .http
        .post(format!("{}/staff/scan", app.address))
        .header("cookie", &staff)
        .form(&[("csrf", csrf.as_str()), ("scanned", codes[3].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], format!("/c/{}/result", codes[3]).as_str());
    eventually_within("the scanned coupon used at WeChat", WAIT, || {
        sim_coupon(&app, &stock_id, &codes[3]).is_some_and(|c| c.state == "USED" && c.uses == 1)
    })
    .await;

    // 4. A POS redemption of a card-bag coupon: one use at WeChat, though WeChat's first answer is lost (it used the
    //    coupon, then answered 500): the outbox sends the same use_request_no again and WeChat answers the same.
    let r = app
        .http
        .post(format!("{}/_sim/pay/v3/errors", app.sim.base_url()))
        .json(&json!({"path": "/v3/marketing/busifavor/coupons/use", "status": 500, "code": "SYSTEM_ERROR", "after": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth(&shop.staff_token)
        .json(&json!({"code": codes[0]}))
        .send()
        .await
        .unwrap();
    let (s, b) = json(r).await;
    assert_eq!(s, 200, "{b}");
    eventually_within("used at WeChat after a retry", WAIT, || {
        sim_coupon(&app, &stock_id, &codes[0]).is_some_and(|c| c.state == "USED" && c.use_calls >= 2)
    })
    .await;
    let used = sim_coupon(&app, &stock_id, &codes[0]).unwrap();
    assert_eq!(used.uses, 1, "used exactly once: {used:?}");
    // Redeeming again is refused here and changes nothing there.
    let r = app
        .http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth(&shop.staff_token)
        .json(&json!({"code": codes[0]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // 5. A void: the card-bag copy is deactivated at WeChat.
    let (s, b) = json(
        app.admin(
            Method::POST,
            &format!("/api/v1/coupons/{}/void", codes[1]),
            json!({"reason": "赠错了"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    eventually_within("deactivated at WeChat", WAIT, || {
        sim_coupon(&app, &stock_id, &codes[1]).is_some_and(|c| c.state == "DEACTIVATED")
    })
    .await;
    // A COUPON.SEND for the void coupon (WeChat resending it) is refused and audited.
    let before = audit_rows(&app, &codes[1]).await;
    let n = app
        .sim
        .handle()
        .notifications()
        .into_iter()
        .find(|n| n.kind == "coupon" && n.out_trade_no == codes[1])
        .unwrap();
    let headers = app.sim.handle().sign_v3_notify(TEST_MCH_ID, n.body().as_bytes());
    let mut r = app
        .http
        .post(format!("{}/wechat/pay/v3/notify", app.address))
        .header("content-type", "application/json");
    for (k, v) in headers {
        r = r.header(k, v);
    }
    let r = r.body(n.body().to_owned()).send().await.unwrap();
    assert_eq!(r.status(), 204, "acknowledged: resending would not change the answer");
    assert_eq!(audit_rows(&app, &codes[1]).await, before + 1, "the refusal is audited");
    assert_eq!(sim_coupon(&app, &stock_id, &codes[1]).unwrap().state, "DEACTIVATED");

    // 6. The race no transaction closes: the coupon is redeemed while WeChat's word that it arrived is committing
    //    (the redemption did not see the bag row; the arrival saw the coupon usable), so nobody queued the use. The
    //    sweep (every minute) finds it and WeChat Pay gets the use, once.
    receive_through_h5(&app, &cookie, &codes[4]).await;
    let r = app
        .http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth(&shop.staff_token)
        .json(&json!({"code": codes[4]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let code = codes[4].clone();
    let now = wxkit::platform::clock::Clock::now_ms(&*app.clock);
    wxkit::db::blocking(&app.state.db, move |conn| {
        use diesel::prelude::*;
        use wxkit::db::schema::{coupon_card_bag, coupons};
        let id: i64 = coupons::table
            .filter(coupons::code.eq(&code))
            .select(coupons::id)
            .first(conn)?;
        // The arrival's commit, as it lands just after the redemption's.
        diesel::update(coupon_card_bag::table.find(id))
            .set(coupon_card_bag::received_at.eq(Some(now)))
            .execute(conn)?;
        wxkit::features::coupons::busifavor::sweep(conn, now)
    })
    .await
    .unwrap();
    eventually_within("the swept use delivered", WAIT, || {
        sim_coupon(&app, &stock_id, &codes[4]).is_some_and(|c| c.state == "USED")
    })
    .await;
    assert_eq!(sim_coupon(&app, &stock_id, &codes[4]).unwrap().uses, 1);
}

/// The owner, in the console, backs a campaign with a 商家券 stock: logo and shop name in a multipart form with the
/// page's CSRF token; a forged token changes nothing; the page then names the stock and offers no second one.
async fn the_shop_owner_puts_a_campaign_in_card_bags_from_the_console(kind: DbKind) {
    use crate::console::{Person, form_token, merchant_with_owner};
    let Some(app) = spawn_app_busifavor(kind).await else {
        return;
    };
    let (mid, owner) = merchant_with_owner(&app, "街角咖啡", "o-console-owner").await;
    let (s, c) = json(
        app.admin(
            Method::POST,
            "/api/v1/campaigns",
            json!({"merchant_id": mid, "title": "周末咖啡", "value_fen": 500}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let cid = c["id"].as_i64().unwrap();
    let page_path = format!("/console/{mid}/campaigns/{cid}");
    let (s, page, _) = owner.get(&page_path).await;
    assert_eq!(s, 200);
    assert!(page.contains("id=\"stock-form\""), "{page}");
    let token = form_token(&page);
    let logo = qr_render::render_png("logo", &qr_render::RenderOptions::default()).unwrap();
    let post = |token: String| {
        let (ct, body) = crate::coupons::card_form(
            &[
                ("csrf", token.as_str()),
                ("brand_name", "街角咖啡"),
                ("notice", "任意咖啡一杯"),
            ],
            Some(&logo),
        );
        let (http, url, cookie) = (
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            format!("{}{page_path}/wechat-pay-coupon", app.address),
            owner.cookie.clone(),
        );
        async move {
            http.post(url)
                .header("cookie", cookie)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let forged = post("forged".into()).await;
    assert_eq!(forged.status(), 403);
    let r = post(token).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("?ok=wechat_pay_coupon")
    );
    let (_, page, _) = owner.get(&page_path).await;
    assert!(
        page.contains("WeChat Pay coupon 129") && !page.contains("id=\"stock-form\""),
        "{page}"
    );
    let (_, coupon) = issue(&app, cid, Some("o-someone")).await;
    let code = coupon["code"].as_str().unwrap();
    let stock = coupon_json(&app, code).await["wechat_pay_stock_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(page.contains(&stock));
    // WeChat Pay holds that stock, for this merchant, worth the campaign's value.
    let r = app
        .http
        .get(format!(
            "{}/_sim/pay/busifavor/coupons?stock_id={stock}",
            app.sim.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The owner raises the campaign's quantity: WeChat Pay's budget follows (outbox), never below what it was.
    assert_eq!(app.sim.handle().busifavor_budget(&stock), Some(10_000));
    let token = form_token(&owner.get(&page_path).await.1);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{}{page_path}/edit", app.address))
        .header("cookie", &owner.cookie)
        .form(&[("csrf", token.as_str()), ("title", "周末咖啡"), ("quantity", "20000")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    eventually_within("the stock's budget raised at WeChat Pay", WAIT, || {
        app.sim.handle().busifavor_budget(&stock) == Some(20_000)
    })
    .await;
    // Someone who is not of this shop gets no console page for it.
    let stranger = Person::login(&app, "o-console-stranger").await;
    let (s, page, _) = stranger.get(&page_path).await;
    assert_ne!(s, 200, "{page}");
}

/// A v3 merchant without `pay.key`: the 商家券 paths say which setting is missing (WeChat signs the sends with the v2
/// key), and nothing reaches WeChat Pay.
async fn without_the_v2_key_wechat_pay_coupons_name_the_missing_setting(kind: DbKind) {
    let Some(app) = wxkit_e2e::spawn_app_v3(kind, wxkit_e2e::V3Mode::PublicKey).await else {
        return;
    };
    let shop = shop(&app, json!({"title": "免费咖啡"})).await;
    let (s, b) = json(
        app.admin(
            Method::POST,
            &format!("/api/v1/campaigns/{}/wechat-pay-coupon", shop.campaign_id),
            json!({"stock_id": "1290000000000001"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (503, Some("wechat_pay_coupons_off")),
        "{b}"
    );
    assert!(b["error"]["message"].as_str().unwrap().contains("pay.key"), "{b}");
    assert_eq!(
        app.sim
            .handle()
            .calls("/v3/marketing/busifavor/stocks/1290000000000001"),
        0
    );
    let (_, c) = issue(&app, shop.campaign_id, Some("o-owner")).await;
    let cookie = web_session(&app, "o-owner").await;
    let r = app
        .http
        .get(format!(
            "{}/api/v1/coupons/{}/busifavor-send",
            app.address,
            c["code"].as_str().unwrap()
        ))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
}
