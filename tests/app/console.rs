//! The merchant console over HTTP, on both backends: an owner joins by the platform's invite and runs the shop;
//! staff join by a scanned invite (approved, single use, revocable, expiring); every console route of another
//! merchant is refused and changes nothing; ending a campaign keeps faith with buyers (dry run, refund once, open
//! orders, a payment after the end refunded); the admin order list; a cancelled purchase retried holds one unit.

use crate::coupons::{Browser, issue, json, shop};
use crate::pay::{campaign_issued, order, order_status, wait_paid, web_session};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wxkit_e2e::{DbKind, TEST_ADMIN_TOKEN, TestApp, spawn_app};

on_both_backends!(
    the_console_is_one_merchants_for_the_people_who_run_it,
    ending_a_campaign_refunds_its_buyers_once,
    ending_a_campaign_can_keep_sold_coupons_usable,
    racing_joins_and_racing_ends_take_effect_once,
);

/// A logged-in person (a web session through the simulated WeChat login), following no redirects.
pub(crate) struct Person {
    http: reqwest::Client,
    pub(crate) cookie: String,
    base: String,
}

impl Person {
    pub(crate) async fn login(app: &TestApp, openid: &str) -> Person {
        Person {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: web_session(app, openid).await,
            base: app.address.clone(),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, String, Option<String>) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (status, r.text().await.unwrap(), location)
    }

    async fn bytes(&self, path: &str) -> (StatusCode, Vec<u8>) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status(), r.bytes().await.unwrap().to_vec())
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String, Option<String>) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (status, r.text().await.unwrap(), location)
    }

    /// The console form token on a page.
    async fn csrf(&self, path: &str) -> String {
        let (s, page, _) = self.get(path).await;
        assert_eq!(s, 200, "{path}: {page}");
        form_token(&page)
    }

    /// Joins by an invite URL (the join page, then its button).
    async fn join(&self, url: &str) -> (StatusCode, String) {
        let path = url.split_once("/join/").map(|(_, t)| format!("/join/{t}")).unwrap();
        let (s, page, _) = self.get(&path).await;
        if s != 200 {
            return (s, page);
        }
        let name = "小张";
        let (s, page, _) = self.post(&path, &[("csrf", &form_token(&page)), ("name", name)]).await;
        (s, page)
    }
}

pub(crate) fn form_token(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no form token: {page}"))
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// A merchant with an owner who joined by the platform's invite: (merchant id, owner).
pub(crate) async fn merchant_with_owner(app: &TestApp, name: &str, owner: &str) -> (i64, Person) {
    let (s, m) = json(
        app.admin(Method::POST, "/api/v1/merchants", json!({"name": name}))
            .await,
    )
    .await;
    assert_eq!(s, 201);
    let mid = m["id"].as_i64().unwrap();
    let (s, invite) = json(
        app.admin(Method::POST, &format!("/api/v1/merchants/{mid}/invites"), json!({}))
            .await,
    )
    .await;
    assert_eq!(
        (s, invite["role"].as_str()),
        (StatusCode::CREATED, Some("owner")),
        "{invite}"
    );
    let person = Person::login(app, owner).await;
    let (s, page) = person.join(invite["url"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("店主") && page.contains("message-title"), "{page}");
    // The owner invite was single use: a second scan lets nobody else in.
    let (s, _) = Person::login(app, &format!("{owner}-friend"))
        .await
        .join(invite["url"].as_str().unwrap())
        .await;
    assert_eq!(s, 410);
    (mid, person)
}

/// The id in a 303's `Location` (`/console/{mid}/campaigns/{id}?ok=…`).
fn id_in(location: &str) -> i64 {
    location
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

async fn admin_get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    json(app.admin(Method::GET, path, Value::Null).await).await
}

async fn the_console_is_one_merchants_for_the_people_who_run_it(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let (a, owner) = merchant_with_owner(&app, "甲咖啡 Cafe A", "o-owner-a").await;
    let (b, _owner_b) = merchant_with_owner(&app, "乙面包 Bakery B", "o-owner-b").await;

    // The owner lands on their shop's dashboard.
    let (s, _, to) = owner.get("/console").await;
    assert_eq!(
        (s.as_u16(), to.as_deref()),
        (302, Some(format!("/console/{a}").as_str()))
    );
    let (s, page, _) = owner.get(&format!("/console/{a}")).await;
    assert_eq!(s, 200);
    assert!(page.contains("甲咖啡") && page.contains("id=\"dashboard\""), "{page}");

    // A campaign made in the console.
    let token = owner.csrf(&format!("/console/{a}/campaigns")).await;
    let (s, _, to) = owner
        .post(
            &format!("/console/{a}/campaigns"),
            &[
                ("csrf", &token),
                ("title", "拿铁券 Latte"),
                ("value", "28"),
                ("price", "9.9"),
                ("quantity", "10"),
                ("per_user_limit", "2"),
            ],
        )
        .await;
    assert_eq!(s, 303);
    let cid = id_in(&to.unwrap());
    let (_, c) = admin_get(&app, &format!("/api/v1/campaigns/{cid}")).await;
    assert_eq!(
        (
            c["price_fen"].as_i64(),
            c["value_fen"].as_i64(),
            c["merchant_id"].as_i64()
        ),
        (Some(990), Some(2800), Some(a))
    );

    // A refused edit changes nothing (a quantity below what is issued, with a new title in the same form).
    issue(&app, cid, Some("o-c1")).await;
    issue(&app, cid, Some("o-c2")).await;
    let (s, page, _) = owner
        .post(
            &format!("/console/{a}/campaigns/{cid}/edit"),
            &[("csrf", &token), ("title", "改名 Renamed"), ("quantity", "1")],
        )
        .await;
    assert_eq!(s, 400, "{page}");
    let (_, c) = admin_get(&app, &format!("/api/v1/campaigns/{cid}")).await;
    assert_eq!(
        (c["title"].as_str(), c["quantity"].as_i64()),
        (Some("拿铁券 Latte"), Some(10))
    );
    let (s, _, _) = owner
        .post(
            &format!("/console/{a}/campaigns/{cid}/edit"),
            &[
                ("csrf", &token),
                ("title", "拿铁券 Latte"),
                ("quantity", "20"),
                ("price", "9.90"),
            ],
        )
        .await;
    assert_eq!(s, 303);
    let (_, c) = admin_get(&app, &format!("/api/v1/campaigns/{cid}")).await;
    assert_eq!(c["quantity"].as_i64(), Some(20));

    // A staff invite that needs approval, scanned from its QR code.
    let (s, _, _) = owner
        .post(
            &format!("/console/{a}/invites"),
            &[
                ("csrf", &token),
                ("role", "staff"),
                ("max_uses", "1"),
                ("hours", "1"),
                ("approval", "1"),
            ],
        )
        .await;
    assert_eq!(s, 303);
    let (_, page, _) = owner.get(&format!("/console/{a}/staff")).await;
    let qr_path = page
        .split("src=\"/console/")
        .nth(1)
        .map(|p| format!("/console/{}", p.split('"').next().unwrap()))
        .unwrap();
    let (s, png) = owner.bytes(&qr_path).await;
    assert_eq!(s, 200);
    let url = wxkit_testkit::decode_qr(&png);
    assert!(url.contains("/join/"), "{url}");
    // Nobody else sees the invite's QR code.
    let (s, _) = Person::login(&app, "o-nosy").await.bytes(&qr_path).await;
    assert_eq!(s, 404);

    let staff = Person::login(&app, "o-staff-zhang").await;
    let (s, page) = staff.join(&url).await;
    assert_eq!(s, 200);
    assert!(page.contains("已申请加入"), "{page}");
    // Waiting for approval: not staff yet (the coupon page gives a pending person no confirm button).
    let (_, coupon) = issue(&app, cid, Some("o-c3")).await;
    let code = coupon["code"].as_str().unwrap().to_owned();
    let (_, page) = Browser::new("o-staff-zhang").open(&app, &format!("/c/{code}")).await;
    assert!(!page.contains("id=\"confirm\""), "{page}");
    // The invite was single use.
    let (s, _) = Person::login(&app, "o-latecomer").await.join(&url).await;
    assert_eq!(s, 410);
    let (_, page, _) = owner.get(&format!("/console/{a}/staff")).await;
    assert!(
        page.contains("小张") && page.contains("data-state=\"pending\""),
        "{page}"
    );
    let sid: i64 = page
        .split("/approve\"")
        .next()
        .unwrap()
        .rsplit("/staff/")
        .next()
        .unwrap()
        .parse()
        .unwrap();

    // Another owner cannot approve A's staff, nor see, change or void anything of A's (404), and nothing changes.
    let (_, b_owner) = (b, Person::login(&app, "o-owner-b").await);
    let b_token = b_owner.csrf(&format!("/console/{b}/campaigns")).await;
    for path in [
        format!("/console/{a}"),
        format!("/console/{a}/campaigns"),
        format!("/console/{a}/campaigns/{cid}"),
        format!("/console/{a}/campaigns/{cid}/end"),
        format!("/console/{a}/coupons?q={}", &code[22..]),
        format!("/console/{a}/staff"),
        format!("/console/{a}/redemptions"),
        format!("/console/{a}/redemptions.csv"),
        format!("/console/{a}/orders"),
        qr_path.clone(),
        // A's campaign through B's own console.
        format!("/console/{b}/campaigns/{cid}"),
        format!("/console/{b}/campaigns/{cid}/end"),
    ] {
        let (s, body, _) = b_owner.get(&path).await;
        assert_eq!(s, 404, "{path}: {body}");
    }
    for (path, form) in [
        (format!("/console/{a}/staff/{sid}/approve"), vec![]),
        (format!("/console/{b}/staff/{sid}/approve"), vec![]),
        (format!("/console/{b}/staff/{sid}/remove"), vec![]),
        (
            format!("/console/{b}/campaigns/{cid}/edit"),
            vec![("title", "hijacked")],
        ),
        (format!("/console/{b}/campaigns/{cid}/end"), vec![("sold", "keep")]),
        (format!("/console/{b}/campaigns/{cid}/issue"), vec![("count", "1")]),
        (format!("/console/{b}/coupons/{code}/void"), vec![("reason", "x")]),
        (format!("/console/{a}/campaigns"), vec![("title", "hijacked")]),
    ] {
        let mut fields = vec![("csrf", b_token.as_str())];
        fields.extend(form);
        let (s, body, _) = b_owner.post(&path, &fields).await;
        assert_eq!(s, 404, "{path}: {body}");
    }
    let (_, c) = admin_get(&app, &format!("/api/v1/campaigns/{cid}")).await;
    assert_eq!(
        (c["title"].as_str(), c["status"].as_str(), c["issued"].as_i64()),
        (Some("拿铁券 Latte"), Some("active"), Some(3))
    );
    let (_, got) = admin_get(&app, &format!("/api/v1/coupons/{code}")).await;
    assert_eq!(got["status"], "issued", "{got}");
    // A forged form (no token) is refused even by the owner.
    let (s, _, _) = owner
        .post(&format!("/console/{a}/staff/{sid}/approve"), &[("csrf", "forged")])
        .await;
    assert_eq!(s, 403);

    // Approved, the staff member redeems; staff cannot open the console.
    let (s, _, _) = owner
        .post(&format!("/console/{a}/staff/{sid}/approve"), &[("csrf", &token)])
        .await;
    assert_eq!(s, 303);
    let (s, page, _) = staff.get("/console").await;
    assert_eq!(s, 403);
    assert!(page.contains("店员"), "{page}");
    let (s, _, _) = staff.get(&format!("/console/{a}")).await;
    assert_eq!(s, 404);
    let scanner = Browser::new("o-staff-zhang");
    let (_, page) = scanner.open(&app, &format!("/c/{code}")).await;
    assert!(page.contains("id=\"confirm\""), "{page}");
    let done = scanner
        .http
        .post(format!("{}/c/{code}/redeem", app.address))
        .form(&[("csrf", form_token(&page).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    let (_, got) = admin_get(&app, &format!("/api/v1/coupons/{code}")).await;
    assert_eq!(got["status"], "redeemed", "{got}");

    // The dashboard, the list and the CSV (UTF-8 BOM, quoted, the month-end columns) show it.
    let (_, page, _) = owner.get(&format!("/console/{a}")).await;
    assert!(page.contains("id=\"today-redeemed\">1<"), "{page}");
    let (_, page, _) = owner.get(&format!("/console/{a}/redemptions")).await;
    assert!(page.contains(&code[22..]) && page.contains("小张"), "{page}");
    let (s, csv) = owner.bytes(&format!("/console/{a}/redemptions.csv")).await;
    assert_eq!(s, 200);
    assert_eq!(&csv[..3], b"\xEF\xBB\xBF", "a BOM first");
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[0].contains("merchant_name")
            && lines[0].contains("price_paid_yuan")
            && lines[0].contains("refunded_yuan")
    );
    assert!(
        lines[1].contains("\"甲咖啡 Cafe A\"") && lines[1].contains("\"28.00\"") && lines[1].contains("\"小张\""),
        "{csv}"
    );
    // Coupons are found by the last group the customer reads out; removing staff is one click.
    let (_, page, _) = owner.get(&format!("/console/{a}/coupons?q={}", &code[22..])).await;
    assert!(page.contains(&format!("data-code=\"{code}\"")), "{page}");
    let (s, _, _) = owner
        .post(&format!("/console/{a}/staff/{sid}/remove"), &[("csrf", &token)])
        .await;
    assert_eq!(s, 303);

    // A revoked invite and an expired one let nobody in.
    for (hours, revoke) in [("1", true), ("1", false)] {
        let (s, _, _) = owner
            .post(
                &format!("/console/{a}/invites"),
                &[("csrf", &token), ("role", "staff"), ("max_uses", "5"), ("hours", hours)],
            )
            .await;
        assert_eq!(s, 303);
        let (_, page, _) = owner.get(&format!("/console/{a}/staff")).await;
        let qr = page
            .split("src=\"/console/")
            .nth(1)
            .map(|p| format!("/console/{}", p.split('"').next().unwrap()))
            .unwrap();
        let url = wxkit_testkit::decode_qr(&owner.bytes(&qr).await.1);
        if revoke {
            let iid = qr.split("/invites/").nth(1).unwrap().split('/').next().unwrap();
            let (s, _, _) = owner
                .post(&format!("/console/{a}/invites/{iid}/revoke"), &[("csrf", &token)])
                .await;
            assert_eq!(s, 303);
        } else {
            app.clock.advance_secs(2 * 3600);
        }
        let (s, page) = Person::login(&app, &format!("o-late-{hours}-{revoke}"))
            .await
            .join(&url)
            .await;
        assert_eq!(s, 410, "{page}");
    }
    let (_, list) = admin_get(&app, &format!("/api/v1/staff?merchant_id={a}")).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "only 小张 ever joined: {list}"
    );
}

/// A bought coupon: (out_trade_no, coupon code).
async fn buy(app: &TestApp, cookie: &str, campaign_id: i64) -> (String, String) {
    let (s, b) = order(app, cookie, json!({"campaign_id": campaign_id, "trade_type": "NATIVE"})).await;
    assert_eq!(s, 201, "{b}");
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    app.sim.handle().pay_order(&no, None, None).unwrap();
    wait_paid(app, cookie, &no).await;
    let (_, st) = order_status(app, Some(cookie), &no).await;
    (no, st["coupon_code"].as_str().unwrap().to_owned())
}

/// Waits until the admin order list shows `no` as `status`.
async fn wait_order(app: &TestApp, merchant: i64, no: &str, status: &str) -> Value {
    for _ in 0..200 {
        let (_, list) = admin_get(app, &format!("/api/v1/pay/orders?merchant_id={merchant}")).await;
        if let Some(o) = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["out_trade_no"] == no)
            && o["status"] == status
        {
            return o.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("order {no} never became {status}");
}

async fn pos(app: &TestApp, token: &str, code: &str) -> StatusCode {
    app.http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth(token)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn ending_a_campaign_refunds_its_buyers_once(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(
        &app,
        json!({"title": "团购券 Voucher", "price_fen": 990, "value_fen": 2800, "quantity": 10}),
    )
    .await;
    let (buyer1, buyer2, buyer3) = (
        web_session(&app, "o-buyer-1").await,
        web_session(&app, "o-buyer-2").await,
        web_session(&app, "o-buyer-3").await,
    );
    let (no1, c1) = buy(&app, &buyer1, shop.campaign_id).await;
    let (_no2, c2) = buy(&app, &buyer2, shop.campaign_id).await;
    assert_eq!(pos(&app, &shop.staff_token, &c2).await, 200);
    let (_, gift) = issue(&app, shop.campaign_id, Some("o-gift")).await;
    let gift = gift["code"].as_str().unwrap().to_owned();
    // Buyer 3 ordered and has not paid yet; a repeated tap (after a cancel) offers the same order, one unit held.
    let (s, open) = order(
        &app,
        &buyer3,
        json!({"campaign_id": shop.campaign_id, "trade_type": "NATIVE"}),
    )
    .await;
    assert_eq!(s, 201);
    let no3 = open["out_trade_no"].as_str().unwrap().to_owned();
    let before = campaign_issued(&app, shop.campaign_id).await;
    let (s, again) = order(
        &app,
        &buyer3,
        json!({"campaign_id": shop.campaign_id, "trade_type": "NATIVE"}),
    )
    .await;
    assert_eq!(
        (s, again["out_trade_no"].as_str()),
        (201, Some(no3.as_str())),
        "{again}"
    );
    assert_eq!(
        campaign_issued(&app, shop.campaign_id).await,
        before,
        "a retry holds no second unit"
    );
    // Buyer 4's order stays open through the end.
    let buyer4 = web_session(&app, "o-buyer-4").await;
    let (s, open4) = order(
        &app,
        &buyer4,
        json!({"campaign_id": shop.campaign_id, "trade_type": "NATIVE"}),
    )
    .await;
    assert_eq!(s, 201);
    let no4 = open4["out_trade_no"].as_str().unwrap().to_owned();

    // The dry run says what the end touches and changes nothing.
    let end = format!("/api/v1/campaigns/{}/end", shop.campaign_id);
    let (s, dry) = json(app.admin(Method::POST, &end, json!({"dry_run": true})).await).await;
    assert_eq!(s, 200, "{dry}");
    let e = &dry["ending"];
    assert_eq!(
        (
            e["sold_unused"].as_i64(),
            e["sold_amount_fen"].as_i64(),
            e["unsold_unused"].as_i64(),
            e["open_orders"].as_i64()
        ),
        (Some(1), Some(990), Some(1), Some(2)),
        "{dry}"
    );
    assert_eq!(dry["status"], "active");
    // Without a choice for the sold coupon, the end is refused with the numbers.
    let (s, refused) = json(app.admin(Method::POST, &end, json!({})).await).await;
    assert_eq!(
        (s, refused["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("choose_sold")),
        "{refused}"
    );
    let (s, bad) = json(app.admin(Method::POST, &end, json!({"sold": "burn"})).await).await;
    assert_eq!(s, 400, "{bad}");

    let (s, ended) = json(
        app.admin(Method::POST, &end, json!({"sold": "refund", "reason": "闭店装修"}))
            .await,
    )
    .await;
    assert_eq!(s, 200, "{ended}");
    assert_eq!(
        (ended["status"].as_str(), ended["ending"]["refunds_requested"].as_i64()),
        (Some("ended"), Some(1))
    );
    assert!(ended["ended_at"].is_string());
    assert!(
        ended["valid_until"].as_str().unwrap().starts_with("20"),
        "the original validity is kept"
    );
    let refunded = wait_order(&app, shop.merchant_id, &no1, "refunded").await;
    assert_eq!(refunded["refunded_fee"], 990);
    let status = |code: String| {
        let app = &app;
        async move { admin_get(app, &format!("/api/v1/coupons/{code}")).await.1["status"].clone() }
    };
    assert_eq!(status(c1.clone()).await, "void");
    assert_eq!(status(c2.clone()).await, "redeemed");
    assert_eq!(status(gift.clone()).await, "void");
    // The buyer's page explains it.
    let (_, page) = Browser::new("o-buyer-1").open(&app, &format!("/c/{c1}")).await;
    assert!(
        page.contains("id=\"ended-early\"") && page.contains("活动已提前结束") && page.contains("¥9.90"),
        "{page}"
    );

    // Ending again refunds nothing more; nobody can buy any more.
    let (s, again) = json(app.admin(Method::POST, &end, json!({"sold": "refund"})).await).await;
    assert_eq!(
        (s, again["ending"]["already_ended"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (s, late) = order(
        &app,
        &web_session(&app, "o-late").await,
        json!({"campaign_id": shop.campaign_id, "trade_type": "NATIVE"}),
    )
    .await;
    assert_eq!(
        (s, late["error"]["code"].as_str()),
        (409, Some("campaign_ended")),
        "{late}"
    );

    // The open order paid anyway after the end: no coupon, refunded in full, once.
    app.sim.handle().pay_order(&no3, None, None).unwrap();
    let o3 = wait_order(&app, shop.merchant_id, &no3, "refunded").await;
    assert!(o3["coupon_code"].is_null(), "{o3}");
    let (_, list) = admin_get(
        &app,
        &format!("/api/v1/pay/orders?merchant_id={}&status=refunded", shop.merchant_id),
    )
    .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert!(items.iter().all(|o| o["refunded_fee"] == 990), "{list}");

    // Buyer 4's open order is closed at WeChat once WeChat's 5 minutes allow, then here: nobody can pay it.
    app.clock.advance_secs(301);
    app.sim.handle().advance_clock(301);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while order_status(&app, None, &no4).await.1["status"] != "closed" {
        assert!(std::time::Instant::now() < deadline, "buyer 4's order was not closed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(app.sim.handle().pay_order(&no4, None, None).is_err());

    // The order list: filters, refusals, and only for the admin.
    let (s, _) = admin_get(&app, "/api/v1/pay/orders?status=bogus").await;
    assert_eq!(s, 400);
    let (_, paid) = admin_get(
        &app,
        &format!("/api/v1/pay/orders?merchant_id={}&status=paid", shop.merchant_id),
    )
    .await;
    assert_eq!(
        paid["items"].as_array().unwrap().len(),
        1,
        "buyer 2's redeemed order: {paid}"
    );
    let (_, page1) = admin_get(
        &app,
        &format!("/api/v1/pay/orders?merchant_id={}&limit=1", shop.merchant_id),
    )
    .await;
    let cursor = page1["next_cursor"].as_str().unwrap().to_owned();
    let (_, page2) = admin_get(
        &app,
        &format!(
            "/api/v1/pay/orders?merchant_id={}&limit=1&cursor={cursor}",
            shop.merchant_id
        ),
    )
    .await;
    assert_ne!(page1["items"][0]["out_trade_no"], page2["items"][0]["out_trade_no"]);
    let anon = app
        .http
        .get(format!("{}/api/v1/pay/orders", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let wrong = app
        .http
        .get(format!("{}/api/v1/pay/orders", app.address))
        .bearer_auth(format!("{TEST_ADMIN_TOKEN}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

async fn ending_a_campaign_can_keep_sold_coupons_usable(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, json!({"title": "团购券 Voucher", "price_fen": 500})).await;
    let buyer = web_session(&app, "o-keeper").await;
    let (no, code) = buy(&app, &buyer, shop.campaign_id).await;
    let end = format!("/api/v1/campaigns/{}/end", shop.campaign_id);
    let (s, ended) = json(app.admin(Method::POST, &end, json!({"sold": "keep"})).await).await;
    assert_eq!(
        (s, ended["ending"]["refunds_requested"].as_i64()),
        (StatusCode::OK, Some(0)),
        "{ended}"
    );
    let (_, page) = Browser::new("o-keeper").open(&app, &format!("/c/{code}")).await;
    assert!(
        page.contains("活动已提前结束") && page.contains("stays usable"),
        "{page}"
    );
    // Kept: still redeemable after the end, never refunded; nothing new is issued.
    assert_eq!(pos(&app, &shop.staff_token, &code).await, 200);
    assert_eq!(issue(&app, shop.campaign_id, Some("o-new")).await.0, 409);
    let o = wait_order(&app, shop.merchant_id, &no, "paid").await;
    assert_eq!(o["refunded_fee"], 0);
}

/// Races: five people scanning one single-use invite at once — one joins; four ends of one campaign at once — one
/// ends it, and its buyer is refunded once.
async fn racing_joins_and_racing_ends_take_effect_once(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let (mid, _owner) = merchant_with_owner(&app, "抢码 Race", "o-race-owner").await;
    let (s, invite) = json(
        app.admin(
            Method::POST,
            &format!("/api/v1/merchants/{mid}/invites"),
            json!({"role": "staff", "max_uses": 1}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{invite}");
    let url = invite["url"].as_str().unwrap().to_owned();
    let mut people = Vec::new();
    for i in 0..5 {
        people.push(Person::login(&app, &format!("o-racer-{i}")).await);
    }
    let joined = futures_util::future::join_all(people.iter().map(|p| p.join(&url))).await;
    let ok = joined.iter().filter(|(s, _)| *s == 200).count();
    let gone = joined.iter().filter(|(s, _)| *s == 410).count();
    assert_eq!((ok, gone), (1, 4), "{joined:?}");
    let (_, list) = admin_get(&app, &format!("/api/v1/staff?merchant_id={mid}")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");

    let shop = shop(&app, json!({"title": "竞速券", "price_fen": 880})).await;
    let buyer = web_session(&app, "o-race-buyer").await;
    let (no, _) = buy(&app, &buyer, shop.campaign_id).await;
    let end = format!("/api/v1/campaigns/{}/end", shop.campaign_id);
    let ends = futures_util::future::join_all(
        (0..4).map(|_| async { json(app.admin(Method::POST, &end, json!({"sold": "refund"})).await).await }),
    )
    .await;
    assert!(ends.iter().all(|(s, _)| *s == 200), "{ends:?}");
    let requested: i64 = ends
        .iter()
        .map(|(_, v)| v["ending"]["refunds_requested"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(requested, 1, "one end refunds: {ends:?}");
    let o = wait_order(&app, shop.merchant_id, &no, "refunded").await;
    assert_eq!(
        (o["refunded_fee"].as_i64(), o["refunding_fee"].as_i64()),
        (Some(880), Some(0)),
        "{o}"
    );
}
