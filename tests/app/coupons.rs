//! Coupon redemption end to end, on SQLite and PostgreSQL: the scan flow through the simulator's OAuth, exactly-once
//! under concurrency, and every refusal.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wxkit_e2e::{DbKind, TEST_APP_ID, TestApp, spawn_app};

on_both_backends!(
    the_scan_flow_redeems_for_staff_and_shows_details_to_others,
    a_tampered_or_replayed_state_is_refused,
    a_hundred_concurrent_redemptions_succeed_exactly_once,
    mixed_concurrent_attempts_each_get_their_own_outcome,
    one_batch_with_duplicates_and_refusals_is_judged_attempt_by_attempt,
    every_refusal_has_its_status,
    issuing_respects_quantity_and_per_user_limit,
    qr_images_are_cached_by_etag,
    a_database_failure_on_the_scan_page_is_a_503_not_a_customer_view,
    sessions_are_signed_and_end_with_their_csrf_tokens,
);

pub(crate) struct Shop {
    pub(crate) merchant_id: i64,
    pub(crate) staff_id: i64,
    pub(crate) staff_token: String,
    pub(crate) campaign_id: i64,
}

pub(crate) async fn json(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn shop(app: &TestApp, campaign: Value) -> Shop {
    let (s, m) = json(
        app.admin(Method::POST, "/api/v1/merchants", json!({"name": "咖啡店"}))
            .await,
    )
    .await;
    assert_eq!(s, 201, "{m}");
    let merchant_id = m["id"].as_i64().unwrap();
    let (s, staff) = json(
        app.admin(
            Method::POST,
            "/api/v1/staff",
            json!({"merchant_id": merchant_id, "openid": "o-staff", "name": "小王"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{staff}");
    let mut body = campaign;
    body["merchant_id"] = merchant_id.into();
    let (s, c) = json(app.admin(Method::POST, "/api/v1/campaigns", body).await).await;
    assert_eq!(s, 201, "{c}");
    Shop {
        merchant_id,
        staff_id: staff["id"].as_i64().unwrap(),
        staff_token: staff["api_token"].as_str().unwrap().to_owned(),
        campaign_id: c["id"].as_i64().unwrap(),
    }
}

pub(crate) async fn issue(app: &TestApp, campaign_id: i64, owner: Option<&str>) -> (StatusCode, Value) {
    json(
        app.admin(
            Method::POST,
            &format!("/api/v1/campaigns/{campaign_id}/coupons"),
            json!({"owner_openid": owner}),
        )
        .await,
    )
    .await
}

fn default_campaign() -> Value {
    json!({"title": "免费咖啡 Free coffee", "value_fen": 1800})
}

/// A browser of one simulated WeChat user: cookies kept, redirects followed by hand.
pub(crate) struct Browser {
    pub(crate) http: reqwest::Client,
    openid: String,
}

impl Browser {
    pub(crate) fn new(openid: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .cookie_store(true)
                .build()
                .unwrap(),
            openid: openid.to_owned(),
        }
    }

    /// Opens a page; on the way to WeChat's authorize page, approves as this user (what the person taps).
    pub(crate) async fn open(&self, app: &TestApp, path: &str) -> (StatusCode, String) {
        let first = self.http.get(format!("{}{path}", app.address)).send().await.unwrap();
        if first.status() != 302 {
            let status = first.status();
            return (status, first.text().await.unwrap());
        }
        let authorize = first.headers()["location"].to_str().unwrap().to_owned();
        let callback = self.approve(&authorize).await;
        let back = self.http.get(callback).send().await.unwrap();
        assert_eq!(back.status(), 302, "callback redirects back");
        let target = back.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(target, path, "back to where the user started");
        let page = self.http.get(format!("{}{target}", app.address)).send().await.unwrap();
        let status = page.status();
        (status, page.text().await.unwrap())
    }

    /// Approves on the simulator's authorize page; returns our callback URL with code and state.
    async fn approve(&self, authorize: &str) -> String {
        let url = url::Url::parse(authorize).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["scope"], "snsapi_base");
        let confirm_url = format!(
            "{}://{}/connect/oauth2/authorize/confirm",
            url.scheme(),
            url.host_str().unwrap()
        )
        .replace("://127.0.0.1/", &format!("://127.0.0.1:{}/", url.port().unwrap()));
        let r = self
            .http
            .post(confirm_url)
            .form(&[
                ("appid", q["appid"].as_str()),
                ("redirect_uri", q["redirect_uri"].as_str()),
                ("scope", "snsapi_base"),
                ("state", q["state"].as_str()),
                ("openid", self.openid.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        r.headers()["location"].to_str().unwrap().to_owned()
    }
}

fn csrf(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

async fn the_scan_flow_redeems_for_staff_and_shows_details_to_others(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, default_campaign()).await;
    let (_, coupon) = issue(&app, shop.campaign_id, Some("o-customer")).await;
    let code = coupon["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 26);
    assert_eq!(coupon["url"], format!("{}/c/{code}", app.address));
    let path = format!("/c/{code}");

    // The customer sees their QR, no confirm button.
    let (s, page) = Browser::new("o-customer").open(&app, &path).await;
    assert_eq!(s, 200);
    assert!(page.contains("id=\"qr\"") && !page.contains("id=\"confirm\""), "{page}");
    assert!(page.contains("免费咖啡"));

    // Anyone else sees the public details only.
    let (s, page) = Browser::new("o-passer-by").open(&app, &path).await;
    assert_eq!(s, 200);
    assert!(page.contains("免费咖啡") && page.contains("data-status=\"issued\""));
    assert!(
        !page.contains("id=\"qr\"") && !page.contains("id=\"confirm\"") && !page.contains("csrf"),
        "{page}"
    );

    // Staff get a confirm form; a forged form is refused; the real one redeems.
    let staff = Browser::new("o-staff");
    let (s, page) = staff.open(&app, &path).await;
    assert_eq!(s, 200);
    assert!(page.contains("id=\"confirm\""), "{page}");
    let token = csrf(&page);
    let forged = staff
        .http
        .post(format!("{}{path}/redeem", app.address))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let done = staff
        .http
        .post(format!("{}{path}/redeem", app.address))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    // Redirect after POST: a reload or Back never submits again.
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], format!("{path}/result"));
    let result = staff
        .http
        .get(format!("{}{path}/result", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(result.status(), 200);
    let result = result.text().await.unwrap();
    assert!(result.contains("核销成功") && result.contains("by 小王"), "{result}");
    // A double submit (a stale confirm page) answers with the current state, not a second redemption.
    let again = staff
        .http
        .post(format!("{}{path}/redeem", app.address))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 303);
    let (_, rescan) = staff.open(&app, &path).await;
    assert!(
        rescan.contains("id=\"cannot\"") && rescan.contains("此券已核销") && rescan.contains("by 小王"),
        "a re-scan says when and by whom: {rescan}"
    );
    assert!(!rescan.contains("id=\"confirm\""), "{rescan}");
    // The customer's token is not the staff's: posting as the customer is refused (not staff).
    let customer = Browser::new("o-customer");
    let (_, _) = customer.open(&app, &path).await;
    let (_, public) = json(app.get(&format!("/api/v1/coupons/{code}")).await).await;
    assert_eq!(public["status"], "redeemed");
    assert!(public.get("owner_openid").is_none(), "the public view hides the owner");

    // Another visitor's session can't redeem even with a valid-looking form.
    let visitor = Browser::new("o-passer-by");
    visitor.open(&app, &path).await;
    let r = visitor
        .http
        .post(format!("{}{path}/redeem", app.address))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // My coupons.
    let (s, mine) = Browser::new("o-customer").open(&app, "/coupons/mine").await;
    assert_eq!(s, 200);
    assert!(mine.contains(&code) && mine.contains("已核销"), "{mine}");
    let _ = shop.merchant_id;
}

async fn a_tampered_or_replayed_state_is_refused(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, default_campaign()).await;
    let (_, coupon) = issue(&app, shop.campaign_id, None).await;
    let path = format!("/c/{}", coupon["code"].as_str().unwrap());
    let browser = Browser::new("o-x");
    let first = browser.http.get(format!("{}{path}", app.address)).send().await.unwrap();
    let authorize = first.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&app.sim.base_url()), "{authorize}");
    assert!(authorize.contains(&format!("appid={TEST_APP_ID}")) && authorize.ends_with("#wechat_redirect"));
    let callback = browser.approve(&authorize).await;

    let mut tampered = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = tampered.query_pairs().into_owned().collect();
    let flipped: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| {
            if k == "state" {
                let mut c: Vec<char> = v.chars().collect();
                c[5] = if c[5] == 'A' { 'B' } else { 'A' };
                (k.clone(), c.into_iter().collect())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(flipped);
    let r = browser.http.get(tampered.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("set-cookie").is_none());

    let ok = browser.http.get(&callback).send().await.unwrap();
    assert_eq!(ok.status(), 302);
    let replay = browser.http.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 400, "a state is single-use");
    // From another browser, the captured link is refused before its state is even looked up as spent.
    let elsewhere = Browser::new("o-x").http.get(&callback).send().await.unwrap();
    assert_eq!(elsewhere.status(), 403, "bound to the browser that started the login");
    let missing = browser
        .http
        .get(format!("{}/auth/callback?code=x", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
}

async fn a_hundred_concurrent_redemptions_succeed_exactly_once(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, default_campaign()).await;
    let (_, coupon) = issue(&app, shop.campaign_id, Some("o-c")).await;
    let code = coupon["code"].as_str().unwrap().to_owned();

    let mut calls = Vec::new();
    for _ in 0..100 {
        let (http, url, token, code) = (
            app.http.clone(),
            format!("{}/api/v1/redemptions", app.address),
            shop.staff_token.clone(),
            code.clone(),
        );
        calls.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({"code": code}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut ok = 0;
    let mut conflict = 0;
    for c in calls {
        match c.await.unwrap().as_u16() {
            200 => ok += 1,
            409 => conflict += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, conflict), (1, 99));

    let pool = app.state.db.clone();
    let code_for_db = code.clone();
    let (redemptions, audits) = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().unwrap();
        let (row, _) = wxkit::features::coupons::repo::coupon_by_code(&mut conn, &code_for_db)
            .unwrap()
            .unwrap();
        wxkit::features::coupons::repo::redemption_and_audit_counts(&mut conn, row.id).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(redemptions, 1, "one redemption row");
    assert_eq!(audits, 100, "an audit row per attempt");

    let r = app
        .http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth(&shop.staff_token)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    let (s, body) = json(r).await;
    assert_eq!(s, 409);
    assert_eq!(body["error"]["code"], "already_redeemed");
    assert_eq!(body["error"]["redeemed_by"]["name"], "小王");
    assert!(body["error"]["redeemed_at"].is_string());
}

/// A second merchant with one staff member; returns that staff member's POS token.
async fn stranger_token(app: &TestApp) -> String {
    let (_, other) = json(
        app.admin(Method::POST, "/api/v1/merchants", json!({"name": "其他店"}))
            .await,
    )
    .await;
    let (s, stranger) = json(
        app.admin(
            Method::POST,
            "/api/v1/staff",
            json!({"merchant_id": other["id"], "openid": "o-stranger", "name": "x"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{stranger}");
    stranger["api_token"].as_str().unwrap().to_owned()
}

/// (redemption rows, audit rows) of a coupon.
async fn counts(app: &TestApp, code: &str) -> (i64, i64) {
    let pool = app.state.db.clone();
    let code = code.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().unwrap();
        let (row, _) = wxkit::features::coupons::repo::coupon_by_code(&mut conn, &code)
            .unwrap()
            .unwrap();
        wxkit::features::coupons::repo::redemption_and_audit_counts(&mut conn, row.id).unwrap()
    })
    .await
    .unwrap()
}

/// Many coupons at once, each attempted several times by its staff (some in lower case), once by another
/// merchant's staff and once with a bogus token, plus unknown codes — all in flight together, so that POS attempts
/// share batches. Every attempt gets its own answer; every coupon is redeemed exactly once.
async fn mixed_concurrent_attempts_each_get_their_own_outcome(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, default_campaign()).await;
    let stranger = stranger_token(&app).await;
    let mut codes = Vec::new();
    for _ in 0..20 {
        let (s, c) = issue(&app, shop.campaign_id, None).await;
        assert_eq!(s, 201);
        codes.push(c["code"].as_str().unwrap().to_owned());
    }
    // (code index or None for an unknown code, token, code as sent)
    let mut plan: Vec<(Option<usize>, String, String)> = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        for k in 0..6 {
            let sent = if k % 2 == 0 { code.clone() } else { code.to_lowercase() };
            plan.push((Some(i), shop.staff_token.clone(), sent));
        }
        plan.push((Some(i), stranger.clone(), code.clone()));
        plan.push((Some(i), "bogus-token".into(), code.clone()));
    }
    for _ in 0..10 {
        plan.push((None, shop.staff_token.clone(), "A".repeat(26)));
    }
    // Interleave deterministically (a fixed stride through the plan) so that batches mix coupons and cases.
    let n = plan.len();
    let order: Vec<usize> = (0..n).map(|k| (k * 37) % n).collect();
    assert_eq!(order.iter().collect::<std::collections::HashSet<_>>().len(), n);
    let mut calls = Vec::new();
    for k in order {
        let (idx, token, sent) = plan[k].clone();
        let (http, url) = (app.http.clone(), format!("{}/api/v1/redemptions", app.address));
        calls.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(&token)
                .json(&json!({"code": sent}))
                .send()
                .await
                .unwrap();
            let (s, b) = json(r).await;
            (idx, token, s.as_u16(), b)
        }));
    }
    let mut ok = vec![0; codes.len()];
    let mut conflict = vec![0; codes.len()];
    for c in calls {
        let (idx, token, status, body) = c.await.unwrap();
        match (idx, token.as_str(), status) {
            (Some(i), t, 200) if t == shop.staff_token => {
                ok[i] += 1;
                assert_eq!(body["coupon"]["code"], codes[i].as_str());
                assert_eq!(body["coupon"]["status"], "redeemed");
                assert_eq!(body["redeemed_by"]["name"], "小王");
            }
            (Some(i), t, 409) if t == shop.staff_token => {
                conflict[i] += 1;
                assert_eq!(body["error"]["code"], "already_redeemed", "{body}");
                assert_eq!(body["error"]["redeemed_by"]["name"], "小王", "{body}");
            }
            (Some(_), t, 403) if t == stranger => assert_eq!(body["error"]["code"], "not_staff"),
            (Some(_), "bogus-token", 401) => assert_eq!(body["error"]["code"], "unauthorized"),
            (None, _, 404) => assert_eq!(body["error"]["code"], "not_found"),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(ok, vec![1; codes.len()], "each coupon redeemed exactly once");
    let stats = app.state.pos.stats();
    // Every POS call went through the batcher (the redemption in `shop` setup made none).
    assert_eq!(stats.attempts, n as u64, "{stats:?}");
    assert!(stats.batches >= 1 && stats.batches <= stats.attempts, "{stats:?}");
    eprintln!("POS batches: {stats:?}");
    assert_eq!(conflict, vec![5; codes.len()]);
    for code in &codes {
        // Six attempts by the shop's staff and one by the stranger are audited; the bogus token is not staff.
        assert_eq!(counts(&app, code).await, (1, 7), "{code}");
    }
}

/// One batch straight through the repository, deterministically: duplicates (the first attempt wins), lower case,
/// unknown code, unknown token, another merchant's staff, and an already redeemed coupon.
async fn one_batch_with_duplicates_and_refusals_is_judged_attempt_by_attempt(kind: DbKind) {
    use redemption_core::Outcome;
    use wxkit::features::coupons::pos::{PosAttempt, PosReply, redeem_batch};
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, default_campaign()).await;
    let stranger = stranger_token(&app).await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(
            issue(&app, shop.campaign_id, None).await.1["code"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // The third coupon is redeemed before the batch.
    let r = app
        .http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth(&shop.staff_token)
        .json(&json!({"code": codes[2]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hash = |t: &str| wxkit::platform::crypto::sha256_hex(t);
    let attempt = |token: &str, code: &str| PosAttempt {
        token_hash: hash(token),
        code: code.to_owned(),
    };
    let staff = shop.staff_token.as_str();
    let attempts = vec![
        attempt(&stranger, &codes[0]),            // refused before the winner: not staff
        attempt(staff, &codes[0].to_lowercase()), // wins coupon 0
        attempt(staff, &codes[0]),                // same batch, same coupon: already redeemed
        attempt(staff, &codes[1]),                // wins coupon 1
        attempt("bogus", &codes[1]),              // unknown token
        attempt(staff, &"B".repeat(26)),          // unknown code
        attempt(staff, "not a code"),             // unparsable code
        attempt(staff, &codes[2]),                // redeemed before
    ];
    let pool = app.state.db.clone();
    let now = chrono::Utc::now().timestamp_millis();
    let replies = tokio::task::spawn_blocking(move || redeem_batch(&mut pool.get().unwrap(), &attempts, now).unwrap())
        .await
        .unwrap();
    let outcomes: Vec<Option<Outcome>> = replies
        .into_iter()
        .map(|r| match r.expect("every attempt judged and recorded") {
            PosReply::UnknownToken => None,
            PosReply::Done(d) => Some(d.outcome),
        })
        .collect();
    let by = Some(redemption_core::StaffId(shop.staff_id));
    assert_eq!(outcomes[0], Some(Outcome::NotStaff));
    assert_eq!(outcomes[1], Some(Outcome::Redeemed { at: now }));
    assert_eq!(outcomes[2], Some(Outcome::AlreadyRedeemed { at: Some(now), by }));
    assert_eq!(outcomes[3], Some(Outcome::Redeemed { at: now }));
    assert_eq!(outcomes[4], None);
    assert_eq!(outcomes[5], Some(Outcome::NotFound));
    assert_eq!(outcomes[6], Some(Outcome::NotFound));
    assert!(matches!(outcomes[7], Some(Outcome::AlreadyRedeemed { by: b, .. }) if b == by));
    assert_eq!(counts(&app, &codes[0]).await, (1, 3));
    assert_eq!(counts(&app, &codes[1]).await, (1, 1));
    assert_eq!(counts(&app, &codes[2]).await, (1, 2));

    if kind == DbKind::Postgres {
        // A batch whose statement fails writes nothing: PostgreSQL text cannot hold a NUL byte, so this one attempt
        // fails the whole statement — and the good attempt beside it must leave its coupon untouched.
        let (_, fresh) = issue(&app, shop.campaign_id, None).await;
        let fresh = fresh["code"].as_str().unwrap().to_owned();
        let attempts = vec![
            attempt(staff, &fresh),
            PosAttempt {
                token_hash: "bad\0hash".into(),
                code: fresh.clone(),
            },
        ];
        let pool = app.state.db.clone();
        let failed = tokio::task::spawn_blocking(move || redeem_batch(&mut pool.get().unwrap(), &attempts, now))
            .await
            .unwrap();
        assert!(failed.is_err());
        assert_eq!(counts(&app, &fresh).await, (0, 0), "a failed batch wrote nothing");

        // Pooled connections plan prepared statements once (see docs/benchmarks.md: re-planning the batch
        // statement on every execution cost two thirds of its throughput).
        #[derive(diesel::QueryableByName)]
        struct Setting {
            #[diesel(sql_type = diesel::sql_types::Text)]
            plan_cache_mode: String,
        }
        let pool = app.state.db.clone();
        let mode = tokio::task::spawn_blocking(move || {
            use diesel::RunQueryDsl;
            let mut conn = pool.get().unwrap();
            let wxkit::db::DbConnection::Postgresql(pg) = &mut **conn else {
                panic!("a PostgreSQL pool")
            };
            diesel::sql_query("SHOW plan_cache_mode")
                .get_result::<Setting>(pg)
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(mode.plan_cache_mode, "force_generic_plan");
    }
}

async fn every_refusal_has_its_status(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, default_campaign()).await;
    // The coupons the table needs, each in the state it names.
    // A campaign that has ended (creating one already over is refused, so it is ended through the API).
    let ended = dated_campaign(
        &app,
        shop.merchant_id,
        "2020-01-01T00:00:00+08:00",
        "2099-02-01T00:00:00+08:00",
    )
    .await;
    let (s, _) = json(
        app.admin(Method::POST, &format!("/api/v1/campaigns/{ended}/end"), json!({}))
            .await,
    )
    .await;
    assert_eq!(s, 200);
    // An ended campaign issues nothing (an expired coupon is in the table below).
    let (s, _) = issue(&app, ended, None).await;
    assert_eq!(s, 409);
    let future = dated_campaign(
        &app,
        shop.merchant_id,
        "2099-01-01T00:00:00+08:00",
        "2099-02-01T00:00:00+08:00",
    )
    .await;
    let code_of = |v: serde_json::Value| v["code"].as_str().unwrap().to_owned();
    let later = code_of(issue(&app, future, None).await.1);
    let void = code_of(issue(&app, shop.campaign_id, None).await.1);
    let pool = app.state.db.clone();
    let vc = void.clone();
    tokio::task::spawn_blocking(move || {
        wxkit::features::coupons::repo::void_coupon(&mut pool.get().unwrap(), &vc).unwrap()
    })
    .await
    .unwrap();
    let ending = code_of(issue(&app, shop.campaign_id, None).await.1);
    let valid = code_of(issue(&app, shop.campaign_id, None).await.1);
    let stranger = stranger_token(&app).await;
    let staff = shop.staff_token.clone();

    /// What happens just before a row is tried.
    enum Before {
        Nothing,
        /// The server's clock moves this many days (and back after the row).
        AdvanceDays(i64),
        /// The merchant removes the shop's staff member.
        RemoveStaff,
    }
    use Before::*;
    /// (what, before, bearer token, code, expected status, expected error code)
    type Row = (&'static str, Before, Option<String>, String, u16, &'static str);
    let table: Vec<Row> = vec![
        (
            "unknown code",
            Nothing,
            Some(staff.clone()),
            "A".repeat(26),
            404,
            "not_found",
        ),
        (
            "not a code at all",
            Nothing,
            Some(staff.clone()),
            "garbage".into(),
            404,
            "not_found",
        ),
        // A NUL byte (valid JSON, not storable in PostgreSQL text) is refused up front, the same on both backends.
        (
            "NUL in the code",
            Nothing,
            Some(staff.clone()),
            "AB\u{0}CD".into(),
            400,
            "invalid_text",
        ),
        ("no token", Nothing, None, valid.clone(), 401, "unauthorized"),
        (
            "unknown token",
            Nothing,
            Some("not-a-token".into()),
            valid.clone(),
            401,
            "unauthorized",
        ),
        (
            "not yet valid",
            Nothing,
            Some(staff.clone()),
            later,
            409,
            "not_yet_valid",
        ),
        ("void", Nothing, Some(staff.clone()), void, 410, "void"),
        // Issued while valid; the campaign runs 30 days, and 31 days later the server refuses it.
        ("expired", AdvanceDays(31), Some(staff.clone()), ending, 410, "expired"),
        (
            "staff of another merchant",
            Nothing,
            Some(stranger),
            valid.clone(),
            403,
            "not_staff",
        ),
        (
            "removed staff",
            RemoveStaff,
            Some(staff.clone()),
            valid.clone(),
            403,
            "not_staff",
        ),
    ];
    for (what, before, token, code, status, error) in table {
        let mut back = 0;
        match before {
            Nothing => {}
            AdvanceDays(days) => {
                app.clock.advance_secs(days * 86_400);
                back = -days * 86_400;
            }
            RemoveStaff => {
                let r = app
                    .admin(Method::DELETE, &format!("/api/v1/staff/{}", shop.staff_id), json!(null))
                    .await;
                assert_eq!(r.status(), 204, "{what}: removing the staff member");
            }
        }
        let mut request = app
            .http
            .post(format!("{}/api/v1/redemptions", app.address))
            .json(&json!({"code": code}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let (s, b) = json(request.send().await.unwrap()).await;
        app.clock.advance_secs(back);
        assert_eq!(
            (s.as_u16(), b["error"]["code"].as_str()),
            (status, Some(error)),
            "{what}: {b}"
        );
        assert!(
            b["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {b}"
        );
    }
    // None of the refusals redeemed anything: the valid coupon is still issued.
    let r = app
        .admin(Method::GET, &format!("/api/v1/coupons/{valid}"), json!(null))
        .await;
    let (s, b) = json(r).await;
    assert_eq!((s.as_u16(), b["status"].as_str()), (200, Some("issued")), "{b}");
    assert_eq!(
        app.admin(Method::DELETE, &format!("/api/v1/staff/{}", shop.staff_id), json!(null))
            .await
            .status(),
        404
    );

    // Admin calls without (or with a wrong) token.
    let r = app
        .http
        .post(format!("{}/api/v1/merchants", app.address))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    let (s, b) = json(r).await;
    assert_eq!((s.as_u16(), b["error"]["code"].as_str()), (401, Some("unauthorized")));
    let r = app
        .http
        .post(format!("{}/api/v1/merchants", app.address))
        .bearer_auth("wrong")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Bad input: clear 4xx envelopes.
    for body in [
        json!({"merchant_id": shop.merchant_id}),
        json!({"merchant_id": shop.merchant_id, "title": ""}),
        json!({"merchant_id": shop.merchant_id, "title": "t", "valid_from": "yesterday"}),
        json!({"merchant_id": shop.merchant_id, "title": "t", "quantity": 0}),
        json!({"merchant_id": shop.merchant_id, "title": "t", "unknown_field": 1}),
        json!({"merchant_id": shop.merchant_id, "title": "t", "valid_from": "2026-01-02T00:00:00Z", "valid_until": "2026-01-01T00:00:00Z"}),
    ] {
        let (s, b) = json(app.admin(Method::POST, "/api/v1/campaigns", body.clone()).await).await;
        assert_eq!(s, 400, "{body} → {b}");
        assert!(b["error"]["code"].is_string() && b["error"]["message"].is_string());
    }
    let (s, _) = json(
        app.admin(
            Method::POST,
            "/api/v1/campaigns",
            json!({"merchant_id": 999999, "title": "t"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = json(
        app.admin(
            Method::POST,
            "/api/v1/staff",
            json!({"merchant_id": 999999, "openid": "o", "name": "n"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 404);
    let r = app
        .http
        .post(format!("{}/api/v1/merchants", app.address))
        .bearer_auth(wxkit_e2e::TEST_ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (s, b) = json(r).await;
    assert_eq!((s.as_u16(), b["error"]["code"].as_str()), (400, Some("invalid_json")));
    // The audit log has every attempt, failures included.
    let pool = app.state.db.clone();
    let audited: i64 = tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        use wxkit::db::schema::audit_log;
        audit_log::table
            .filter(audit_log::action.eq("redeem"))
            .count()
            .get_result(&mut **pool.get().unwrap())
            .unwrap()
    })
    .await
    .unwrap();
    // (The NUL-byte code is refused as malformed input before it is an attempt: not audited.)
    assert_eq!(audited, 7, "every attempt by a known staff token is audited");
}

/// A campaign with the given RFC 3339 window; returns its id.
async fn dated_campaign(app: &TestApp, merchant_id: i64, from: &str, until: &str) -> i64 {
    let body = json!({"merchant_id": merchant_id, "title": "dated", "valid_from": from, "valid_until": until});
    let (s, c) = json(app.admin(Method::POST, "/api/v1/campaigns", body).await).await;
    assert_eq!(s, 201, "{c}");
    c["id"].as_i64().unwrap()
}

/// Moves a campaign's end, straight in the database.
async fn issuing_respects_quantity_and_per_user_limit(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(
        &app,
        json!({"title": "限量 limited", "quantity": 20, "per_user_limit": 2}),
    )
    .await;
    assert_eq!(issue(&app, shop.campaign_id, Some("o-a")).await.0, 201);
    assert_eq!(issue(&app, shop.campaign_id, Some("o-a")).await.0, 201);
    let (s, b) = issue(&app, shop.campaign_id, Some("o-a")).await;
    assert_eq!((s.as_u16(), b["error"]["code"].as_str()), (409, Some("not_issuable")));
    // 30 concurrent issues against the 18 left: exactly 18 succeed.
    let mut calls = Vec::new();
    for i in 0..30 {
        let (http, url) = (
            app.http.clone(),
            format!("{}/api/v1/campaigns/{}/coupons", app.address, shop.campaign_id),
        );
        calls.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(wxkit_e2e::TEST_ADMIN_TOKEN)
                .json(&json!({"owner_openid": format!("o-{i}")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut created = 0;
    for c in calls {
        if c.await.unwrap() == 201 {
            created += 1;
        }
    }
    assert_eq!(created, 18, "quantity 20, 2 issued before");
    let (s, _) = issue(&app, 987654, None).await;
    assert_eq!(s, 404);
    // A malformed body is refused, not taken as "no owner".
    let r = app
        .http
        .post(format!("{}/api/v1/campaigns/{}/coupons", app.address, shop.campaign_id))
        .bearer_auth(wxkit_e2e::TEST_ADMIN_TOKEN)
        .body("{owner_openid: oops")
        .send()
        .await
        .unwrap();
    let (s, b) = json(r).await;
    assert_eq!((s.as_u16(), b["error"]["code"].as_str()), (400, Some("invalid_json")));
    let r = app
        .http
        .post(format!("{}/api/v1/campaigns/{}/coupons", app.address, shop.campaign_id))
        .bearer_auth(wxkit_e2e::TEST_ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    // An empty body is accepted (no owner) and reaches the quantity check: the campaign is full.
    let (s, b) = json(r).await;
    assert_eq!((s.as_u16(), b["error"]["code"].as_str()), (409, Some("not_issuable")));
}

async fn qr_images_are_cached_by_etag(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, default_campaign()).await;
    let (_, coupon) = issue(&app, shop.campaign_id, None).await;
    let code = coupon["code"].as_str().unwrap();
    let png = app.get(&format!("/c/{code}/qr.png")).await;
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    let etag = png.headers()["etag"].to_str().unwrap().to_owned();
    let bytes = png.bytes().await.unwrap();
    assert_eq!(&bytes[..4], b"\x89PNG");
    let cached = app
        .http
        .get(format!("{}/c/{code}/qr.png", app.address))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    let svg = app.get(&format!("/c/{code}/qr.svg?size=600")).await;
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert_ne!(svg.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(app.get(&format!("/c/{code}/qr.png?size=5")).await.status(), 400);
    assert_eq!(app.get(&format!("/c/{code}/qr.gif")).await.status(), 404);
    assert_eq!(app.get(&format!("/c/{}/qr.png", "B".repeat(26))).await.status(), 404);
}

on_both_backends!(card_backed_coupons_are_redeemed_once_whichever_side_consumes_first);

async fn card_backed_coupons_are_redeemed_once_whichever_side_consumes_first(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    assert!(app.sim.handle().set_push(
        TEST_APP_ID,
        &format!("{}/wechat/push", app.address),
        wxkit_e2e::TEST_PUSH_TOKEN,
        Some(wxkit_e2e::TEST_AES_KEY)
    ));
    // Server-URL verification.
    let sig = wechat_core::push::server_signature(wxkit_e2e::TEST_PUSH_TOKEN, "1", "n");
    let echo = app
        .get(&format!(
            "/wechat/push?signature={sig}&timestamp=1&nonce=n&echostr=hello"
        ))
        .await;
    assert_eq!(echo.text().await.unwrap(), "hello");
    let wrong = app
        .get("/wechat/push?signature=bad&timestamp=1&nonce=n&echostr=x")
        .await;
    assert_eq!(wrong.status(), 403);
    // The operator filling in WeChat's server configuration is told which setting to match.
    let said = wrong.text().await.unwrap();
    assert!(said.contains("wechat.token"), "{said}");
    // A path that does not parse says so in words, not in serde's.
    let r = app.admin(Method::GET, "/api/v1/campaigns/abc", Value::Null).await;
    let (s, e) = json(r).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_path")),
        "{e}"
    );
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"abc\"") && !message.contains("deserialize") && !message.contains("i64"),
        "{message}"
    );
    let forged = app
        .http
        .post(format!("{}/wechat/push?signature=bad&timestamp=1&nonce=n", app.address))
        .body("<xml/>")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "an unsigned push is refused");

    // A WeChat card backs the campaign.
    let cards = &app.state.cards;
    let card_id = app.create_card(10).await;
    let shop = shop(&app, json!({"title": "card-backed", "wechat_card_id": card_id})).await;

    let sim_http = reqwest::Client::new();
    let add_to_bag = |code: String| {
        let (http, url) = (
            sim_http.clone(),
            format!("{}/_sim/cards/{card_id}/add", app.sim.base_url()),
        );
        async move {
            let r: Value = http
                .post(url)
                .json(&json!({"openid": "o-holder", "outer_str": code}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["code"].as_str().unwrap().to_owned()
        }
    };
    let linked = |code: String| {
        let pool = app.state.db.clone();
        async move {
            for _ in 0..250 {
                let c = code.clone();
                let p = pool.clone();
                let row = tokio::task::spawn_blocking(move || {
                    wxkit::features::coupons::repo::coupon_by_code(&mut p.get().unwrap(), &c).unwrap()
                })
                .await
                .unwrap();
                if let Some((row, _)) = row
                    && row.wechat_card_code.is_some()
                {
                    return row;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("the user_get_card push never linked the coupon");
        }
    };

    // 1. Consumed at WeChat's side first: the push redeems our coupon; our POS then gets 409.
    let (_, first) = issue(&app, shop.campaign_id, Some("o-holder")).await;
    let first_code = first["code"].as_str().unwrap().to_owned();
    let card_code = add_to_bag(first_code.clone()).await;
    assert_eq!(
        linked(first_code.clone()).await.wechat_card_code.as_deref(),
        Some(card_code.as_str())
    );
    let r = sim_http
        .post(format!(
            "{}/_sim/cards/{card_id}/codes/{card_code}/consume",
            app.sim.base_url()
        ))
        .json(&json!({"staff_openid": "o-wx-staff"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    for _ in 0..250 {
        let (_, v) = json(app.get(&format!("/api/v1/coupons/{first_code}")).await).await;
        if v["status"] == "redeemed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pos = app
        .http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth(&shop.staff_token)
        .json(&json!({"code": first_code}))
        .send()
        .await
        .unwrap();
    let (s, b) = json(pos).await;
    assert_eq!(s, 409, "{b}");
    assert!(
        b["error"]["redeemed_by"].is_null(),
        "redeemed at WeChat's side: no staff"
    );

    // 2. Redeemed at our POS first: we consume the card code on WeChat; WeChat's push then changes nothing.
    let (_, second) = issue(&app, shop.campaign_id, Some("o-holder")).await;
    let second_code = second["code"].as_str().unwrap().to_owned();
    let second_card = add_to_bag(second_code.clone()).await;
    let row = linked(second_code.clone()).await;
    let pos = app
        .http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth(&shop.staff_token)
        .json(&json!({"code": second_code}))
        .send()
        .await
        .unwrap();
    assert_eq!(pos.status(), 200);
    // The consume is owed to WeChat through the outbox: delivered in the background, the POS did not wait on it.
    let mut status = String::new();
    for _ in 0..250 {
        status = cards
            .get_code(&second_card, Some(&card_id), false)
            .await
            .unwrap()
            .user_card_status;
        if status == "CONSUMED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, "CONSUMED", "consumed on WeChat too");
    // The FROM_API push comes back; wait until it is delivered, then check nothing was redeemed twice.
    for _ in 0..250 {
        if app
            .sim
            .handle()
            .notifications()
            .iter()
            .filter(|n| n.kind == "push" && n.delivered)
            .count()
            >= 5
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pool = app.state.db.clone();
    let (redemptions, _) = tokio::task::spawn_blocking(move || {
        wxkit::features::coupons::repo::redemption_and_audit_counts(&mut pool.get().unwrap(), row.id).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(redemptions, 1);
}

async fn a_database_failure_on_the_scan_page_is_a_503_not_a_customer_view(kind: DbKind) {
    use diesel::RunQueryDsl;
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, default_campaign()).await;
    let (_, coupon) = issue(&app, shop.campaign_id, None).await;
    let path = format!("/c/{}", coupon["code"].as_str().unwrap());
    let staff = Browser::new("o-staff");
    let (s, page) = staff.open(&app, &path).await;
    assert_eq!(s, 200);
    assert!(page.contains("id=\"confirm\""), "{page}");
    // The staff lookup fails (its table is gone for a moment): the staff member must not be shown the coupon's QR
    // as if they were a customer.
    let rename = |from: &'static str, to: &'static str| {
        let pool = app.state.db.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                diesel::sql_query(format!("ALTER TABLE {from} RENAME TO {to}"))
                    .execute(&mut **pool.get().unwrap())
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    rename("staff", "staff_away").await;
    let (s, page) = staff.open(&app, &path).await;
    rename("staff_away", "staff").await;
    assert_eq!(s, 503, "{page}");
    assert!(!page.contains("id=\"qr\""), "{page}");
}

async fn sessions_are_signed_and_end_with_their_csrf_tokens(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, default_campaign()).await;
    let (_, coupon) = issue(&app, shop.campaign_id, None).await;
    let path = format!("/c/{}", coupon["code"].as_str().unwrap());
    // A forged cookie is no session: the visitor is sent to WeChat to log in.
    let forged = app
        .http
        .get(format!("{}{path}", app.address))
        .header("cookie", "wxkit_session=99999999999.o-staff")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 302);
    assert!(
        forged.headers()["location"]
            .to_str()
            .unwrap()
            .contains("/connect/oauth2/authorize")
    );

    let staff = Browser::new("o-staff");
    let confirm = async |token: &str| {
        staff
            .http
            .post(format!("{}{path}/redeem", app.address))
            .form(&[("csrf", token)])
            .send()
            .await
            .unwrap()
            .status()
    };
    let (s, page) = staff.open(&app, &path).await;
    assert_eq!(s, 200);
    let old_token = csrf(&page);
    // A week and a day later the session is over, and so is its form.
    app.clock.advance_secs(8 * 86_400);
    assert_eq!(confirm(&old_token).await, 401, "expired session");
    // Logging in again gives a new session; the old form's token does not carry over.
    let (s, page) = staff.open(&app, &path).await;
    assert_eq!(s, 200);
    assert_ne!(csrf(&page), old_token, "tokens are bound to the session's expiry");
    assert_eq!(confirm(&old_token).await, 403, "a token from the previous session");
    assert_eq!(confirm(&csrf(&page)).await, 303);
}

on_both_backends!(a_campaign_gets_a_wechat_card_from_a_logo_and_its_fields);

/// A `multipart/form-data` body: fields, then the logo file part (when given).
pub(crate) fn card_form(fields: &[(&str, &str)], logo: Option<&[u8]>) -> (String, Vec<u8>) {
    let boundary = "wxkitBoundary7MA4YWxk";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        );
    }
    if let Some(logo) = logo {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"logo\"; filename=\"logo.png\"\r\nContent-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(logo);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn a_campaign_gets_a_wechat_card_from_a_logo_and_its_fields(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, json!({"title": "甜点券", "quantity": 50})).await;
    let url = format!("{}/api/v1/campaigns/{}/wechat-card", app.address, shop.campaign_id);
    let post = |content_type: String, body: Vec<u8>, token: Option<&'static str>| {
        let (http, url) = (app.http.clone(), url.clone());
        async move {
            let mut r = http.post(url).header("content-type", content_type).body(body);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            json(r.send().await.unwrap()).await
        }
    };
    let logo = qr_render::render_png("logo", &qr_render::RenderOptions::default()).unwrap();
    let admin = Some(wxkit_e2e::TEST_ADMIN_TOKEN);
    // Refusals first: no admin token, no logo, not an image, a colour WeChat does not offer, a title too long.
    let (ct, body) = card_form(&[("brand_name", "咖啡店")], Some(&logo));
    assert_eq!(post(ct, body, None).await.0, 401);
    let (ct, body) = card_form(&[("brand_name", "咖啡店")], None);
    let (s, b) = post(ct, body, admin).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (400, Some("missing_field")),
        "{b}"
    );
    let (ct, body) = card_form(&[("brand_name", "咖啡店")], Some(b"GIF89a not a logo"));
    let (s, b) = post(ct, body, admin).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (400, Some("invalid_card")),
        "{b}"
    );
    let (ct, body) = card_form(&[("brand_name", "咖啡店"), ("color", "Color999")], Some(&logo));
    let (s, b) = post(ct, body, admin).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (400, Some("invalid_field")),
        "{b}"
    );
    assert!(b["error"]["message"].as_str().unwrap().contains("Color010"), "{b}");
    let (ct, body) = card_form(
        &[("brand_name", "咖啡店"), ("title", "一二三四五六七八九十")],
        Some(&logo),
    );
    let (s, b) = post(ct, body, admin).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (400, Some("invalid_card")),
        "{b}"
    );
    assert!(b["error"]["message"].as_str().unwrap().contains("title"), "{b}");
    assert_eq!(
        app.sim.handle().calls("/cgi-bin/media/uploadimg"),
        0,
        "no logo is uploaded for a form that cannot make a card"
    );

    // Created: logo uploaded, card created at WeChat (simulated) in one of its colours, stored on the campaign.
    let (ct, body) = card_form(
        &[("brand_name", "咖啡店"), ("notice", "出示核销"), ("color", "Color020")],
        Some(&logo),
    );
    let (s, campaign) = post(ct.clone(), body.clone(), admin).await;
    assert_eq!(s.as_u16(), 201, "{campaign}");
    let card_id = campaign["wechat_card_id"].as_str().unwrap().to_owned();
    assert_eq!(app.sim.handle().calls("/cgi-bin/media/uploadimg"), 1);
    let added = app
        .http
        .post(format!("{}/_sim/cards/{card_id}/add", app.sim.base_url()))
        .json(&json!({"openid": "o-someone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200, "the card exists at WeChat");
    // A campaign has one card.
    let (s, b) = post(ct, body, admin).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (409, Some("already_card_backed")),
        "{b}"
    );

    // Or an existing card, by id (JSON).
    let other = shop_campaign(&app, shop.merchant_id).await;
    let existing_url = format!("{}/api/v1/campaigns/{other}/wechat-card", app.address);
    let r = app
        .http
        .post(&existing_url)
        .bearer_auth(wxkit_e2e::TEST_ADMIN_TOKEN)
        .json(&json!({"card_id": "pXYZ-existing_card"}))
        .send()
        .await
        .unwrap();
    let (s, b) = json(r).await;
    assert_eq!(
        (s.as_u16(), b["wechat_card_id"].as_str()),
        (200, Some("pXYZ-existing_card")),
        "{b}"
    );
    let r = app
        .http
        .post(format!("{}/api/v1/campaigns/999999/wechat-card", app.address))
        .bearer_auth(wxkit_e2e::TEST_ADMIN_TOKEN)
        .json(&json!({"card_id": "p1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Another campaign of the merchant.
async fn shop_campaign(app: &TestApp, merchant_id: i64) -> i64 {
    let (s, c) = json(
        app.admin(
            Method::POST,
            "/api/v1/campaigns",
            json!({"merchant_id": merchant_id, "title": "其他"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{c}");
    c["id"].as_i64().unwrap()
}

on_both_backends!(the_pos_accepts_what_a_till_scans_or_a_cashier_types);

async fn the_pos_accepts_what_a_till_scans_or_a_cashier_types(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, default_campaign()).await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        let (_, c) = issue(&app, shop.campaign_id, None).await;
        codes.push(c["code"].as_str().unwrap().to_owned());
    }
    let grouped = |c: &str| {
        c.as_bytes()
            .chunks(4)
            .map(|g| std::str::from_utf8(g).unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let pos = |code: String| {
        let (http, url, token) = (
            app.http.clone(),
            format!("{}/api/v1/redemptions", app.address),
            shop.staff_token.clone(),
        );
        async move {
            json(
                http.post(url)
                    .bearer_auth(token)
                    .json(&json!({"code": code}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    // The owner's page prints the code in groups under the QR, for typing when scanning fails.
    let (_, owned) = issue(&app, shop.campaign_id, Some("o-typist")).await;
    let owned = owned["code"].as_str().unwrap().to_owned();
    let cookie = crate::pay::web_session(&app, "o-typist").await;
    let page = app
        .http
        .get(format!("{}/c/{owned}", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("id=\"code-text\">{}</p>", grouped(&owned))),
        "{page}"
    );
    let forms = [
        codes[0].to_lowercase(),
        grouped(&codes[1]),
        format!("  {}  ", grouped(&codes[2]).replace(' ', "-")),
        format!("{}/c/{}", app.address, codes[3]),
    ];
    for form in forms {
        let (s, b) = pos(form.clone()).await;
        assert_eq!(s, 200, "{form:?}: {b}");
    }
    // Anything else stays not found: another site's URL with one of our codes, a path that is not a coupon's, junk.
    let (_, extra) = issue(&app, shop.campaign_id, None).await;
    let extra = extra["code"].as_str().unwrap().to_owned();
    for form in [
        format!("https://evil.example/c/{extra}"),
        format!("{}/api/v1/coupons/{extra}", app.address),
        "hello".to_owned(),
    ] {
        let (s, b) = pos(form.clone()).await;
        assert_eq!(
            (s.as_u16(), b["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{form:?}: {b}"
        );
    }
    // The refusals redeemed nothing.
    let (_, public) = json(app.get(&format!("/api/v1/coupons/{extra}")).await).await;
    assert_eq!(public["status"], "issued");
}

on_both_backends!(four_byte_text_round_trips_everywhere);

/// utf8mb4 (MySQL's `utf8` is three bytes and would refuse 🎉), and text that differs only by case stays two keys
/// (MySQL's default `_ci` collations would make `abc` and `ABC` one): the same on every backend.
async fn four_byte_text_round_trips_everywhere(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let title = "拿铁 ☕️ 买一送一 🎉🧋";
    let shop = shop(
        &app,
        json!({"title": title, "description": "𠀀 (a CJK Extension B character) 👩‍👩‍👧"}),
    )
    .await;
    let (s, c) = json(
        app.admin(
            Method::GET,
            &format!("/api/v1/campaigns/{}", shop.campaign_id),
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["title"], title);
    assert_eq!(c["description"], "𠀀 (a CJK Extension B character) 👩‍👩‍👧");
    // A staff member whose name is an emoji, and two whose openids differ only by case: three people.
    for (openid, name) in [("o-case", "🙂"), ("O-CASE", "大写"), ("o-CASE", "混合")] {
        let (s, staff) = json(
            app.admin(
                Method::POST,
                "/api/v1/staff",
                json!({"merchant_id": shop.merchant_id, "openid": openid, "name": name}),
            )
            .await,
        )
        .await;
        assert_eq!(s, 201, "{openid}: {staff}");
        assert_eq!(staff["name"], name);
    }
    // A nickname with emoji, as WeChat hands them out.
    let url = app.db.url.clone();
    let nickname: String = tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        use wxkit::db::schema::users;
        let mut c = wxkit::db::Backend::from_url(&url).unwrap().establish().unwrap();
        diesel::insert_into(users::table)
            .values((
                users::openid.eq("o-emoji"),
                users::nickname.eq("小李🐱"),
                users::created_at.eq(1i64),
                users::updated_at.eq(1i64),
            ))
            .execute(&mut c)
            .unwrap();
        users::table
            .filter(users::openid.eq("o-emoji"))
            .select(users::nickname.assume_not_null())
            .first(&mut c)
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(nickname, "小李🐱");
}
