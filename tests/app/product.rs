//! The coupon product's edges as merchants, cashiers, customers and operators meet them: the admin lists (paged),
//! void, end, the redemption log and its CSV; 404 pages vs the JSON envelope, 405 with `Allow`; a 503 page when
//! WeChat fails; rate limits (429 with `Retry-After`); the OpenAPI document against the running server; PostgreSQL
//! over TLS.

use crate::coupons::{Shop, issue, json, shop};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wxkit_e2e::{DbKind, TestApp, spawn_app};

fn campaign() -> Value {
    json!({"title": "免费咖啡 Free coffee", "value_fen": 1800})
}

async fn pos(app: &TestApp, token: &str, code: &str) -> (StatusCode, Value) {
    json(
        app.http
            .post(format!("{}/api/v1/redemptions", app.address))
            .bearer_auth(token)
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get_admin(app: &TestApp, path: &str) -> (StatusCode, Value) {
    json(app.admin(Method::GET, path, Value::Null).await).await
}

/// Follows `next_cursor` to the end; returns every item.
async fn all_pages(app: &TestApp, path: &str, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let sep = if path.contains('?') { '&' } else { '?' };
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let (s, page) = get_admin(app, &url).await;
        assert_eq!(s, 200, "{url}: {page}");
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit as usize);
        items.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

async fn the_admin_api_runs_a_business(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let Shop {
        merchant_id,
        staff_id,
        staff_token,
        campaign_id,
    } = shop(&app, campaign()).await;

    // Merchants and staff: lists are paged, single rows found, the token never shown again.
    let (s, m) = get_admin(&app, &format!("/api/v1/merchants/{merchant_id}")).await;
    assert_eq!((s, m["name"].as_str()), (StatusCode::OK, Some("咖啡店")));
    assert_eq!(get_admin(&app, "/api/v1/merchants/999999").await.0, 404);
    for n in 0..4 {
        let (s, _) = json(
            app.admin(Method::POST, "/api/v1/merchants", json!({"name": format!("店 {n}")}))
                .await,
        )
        .await;
        assert_eq!(s, 201);
    }
    let merchants = all_pages(&app, "/api/v1/merchants", 2).await;
    assert_eq!(merchants.len(), 5, "every merchant once across pages");
    let ids: Vec<i64> = merchants.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let staff = all_pages(&app, &format!("/api/v1/staff?merchant_id={merchant_id}"), 10).await;
    assert_eq!(staff.len(), 1);
    assert_eq!(staff[0]["id"], staff_id);
    assert!(staff[0].get("api_token").is_none() && !staff[0].to_string().contains(&staff_token));
    let (s, e) = get_admin(&app, "/api/v1/merchants?limit=0").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_limit"))
    );
    let (s, e) = get_admin(&app, "/api/v1/merchants?cursor=forged").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_cursor"))
    );
    assert_eq!(
        app.http
            .get(format!("{}/api/v1/merchants", app.address))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "admin only"
    );

    // A campaign and its coupons, filtered by status and owner.
    let (s, c) = get_admin(&app, &format!("/api/v1/campaigns/{campaign_id}")).await;
    assert_eq!((s, c["status"].as_str()), (StatusCode::OK, Some("active")));
    let mut codes = Vec::new();
    for owner in ["o-a", "o-a", "o-b"] {
        let (s, coupon) = issue(&app, campaign_id, Some(owner)).await;
        assert_eq!(s, 201);
        codes.push(coupon["code"].as_str().unwrap().to_owned());
    }
    let (s, done) = pos(&app, &staff_token, &codes[0]).await;
    assert_eq!(s, 200, "{done}");
    let path = format!("/api/v1/campaigns/{campaign_id}/coupons");
    assert_eq!(all_pages(&app, &path, 2).await.len(), 3);
    let redeemed = all_pages(&app, &format!("{path}?status=redeemed"), 10).await;
    assert_eq!(redeemed.len(), 1);
    assert_eq!(redeemed[0]["code"], codes[0].as_str());
    assert_eq!(redeemed[0]["redeemed_by"], staff_id);
    assert_eq!(all_pages(&app, &format!("{path}?owner_openid=o-a"), 10).await.len(), 2);
    assert_eq!(
        all_pages(&app, &format!("{path}?status=issued&owner_openid=o-a"), 10)
            .await
            .len(),
        1
    );
    assert_eq!(get_admin(&app, &format!("{path}?status=nope")).await.0, 400);
    assert_eq!(get_admin(&app, "/api/v1/campaigns/999999/coupons").await.0, 404);

    // Void: audited with its reason, the page says 已作废, the POS answers 410; a retry is the same answer; a
    // redeemed coupon cannot be voided.
    let void = |code: String, reason: &'static str| {
        let app = &app;
        async move {
            json(
                app.admin(
                    Method::POST,
                    &format!("/api/v1/coupons/{code}/void"),
                    json!({"reason": reason}),
                )
                .await,
            )
            .await
        }
    };
    let (s, v) = void(codes[1].clone(), "顾客投诉，作废重发 · reissued").await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("void")), "{v}");
    assert_eq!(void(codes[1].clone(), "again").await.0, 200, "idempotent");
    let (s, e) = void(codes[0].clone(), "too late").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("coupon_redeemed"))
    );
    assert_eq!(void("A".repeat(26), "none").await.0, 404);
    let (s, e) = json(
        app.admin(
            Method::POST,
            &format!("/api/v1/coupons/{}/void", codes[2]),
            json!({"reason": ""}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_field"))
    );
    let (s, e) = pos(&app, &staff_token, &codes[1]).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::GONE, Some("void")));
    assert!(e["error"]["message"].as_str().unwrap().contains("已作废"), "{e}");
    let audited = wxkit::db::blocking(&app.state.db, |conn| {
        use diesel::prelude::*;
        use wxkit::db::schema::audit_log;
        Ok(audit_log::table
            .filter(audit_log::action.eq("void"))
            .select(audit_log::detail)
            .load::<Option<String>>(conn)?)
    })
    .await
    .unwrap();
    assert_eq!(audited, vec![Some("顾客投诉，作废重发 · reissued".to_owned())]);

    // The redemption log: JSON pages and CSV, filtered by merchant, campaign and time.
    let (s, b) = pos(&app, &staff_token, &codes[2]).await;
    assert_eq!(s, 200, "{b}");
    let log = all_pages(&app, &format!("/api/v1/redemptions?merchant_id={merchant_id}"), 1).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["coupon_code"], codes[2].as_str(), "newest first");
    assert_eq!(log[0]["staff"]["name"], "小王");
    assert_eq!(log[0]["channel"], "pos");
    assert_eq!(
        all_pages(
            &app,
            &format!("/api/v1/redemptions?campaign_id={campaign_id}&since=2099-01-01T00:00:00Z"),
            5
        )
        .await
        .len(),
        0
    );
    assert_eq!(get_admin(&app, "/api/v1/redemptions?since=yesterday").await.0, 400);
    let csv = app
        .http
        .get(format!("{}/api/v1/redemptions?campaign_id={campaign_id}", app.address))
        .bearer_auth(wxkit_e2e::TEST_ADMIN_TOKEN)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    // A bookkeeper's file: Beijing times, every text quoted (a BOM first, which a text decoder may drop).
    assert!(
        lines[0]
            .trim_start_matches('\u{feff}')
            .starts_with("redemption_id,redeemed_at_beijing,merchant_id,merchant_name"),
        "{csv}"
    );
    assert!(
        lines[1].contains(&codes[2]) && lines[1].contains("\"小王\"") && lines[1].contains("\"咖啡店\""),
        "{csv}"
    );

    // End: no more issuing after now, and (nothing was sold, so nothing to keep or refund) the coupons given away
    // are voided; ending again changes nothing; an ended campaign cannot be made.
    let (s, fresh) = issue(&app, campaign_id, Some("o-c")).await;
    assert_eq!(s, 201);
    let (s, ended) = json(
        app.admin(
            Method::POST,
            &format!("/api/v1/campaigns/{campaign_id}/end"),
            json!({"reason": "售罄"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, ended["status"].as_str()),
        (StatusCode::OK, Some("ended")),
        "{ended}"
    );
    app.clock.advance_secs(1);
    assert_eq!(
        json(
            app.admin(
                Method::POST,
                &format!("/api/v1/campaigns/{campaign_id}/end"),
                Value::Null
            )
            .await
        )
        .await
        .0,
        200
    );
    let (s, e) = pos(&app, &staff_token, fresh["code"].as_str().unwrap()).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::GONE, Some("void")),
        "{e}"
    );
    assert_eq!(issue(&app, campaign_id, Some("o-d")).await.0, 409);
    let (s, e) = json(
        app.admin(
            Method::POST,
            "/api/v1/campaigns",
            json!({"merchant_id": merchant_id, "title": "过去的活动", "valid_from": "2020-01-01T00:00:00Z",
                   "valid_until": "2020-02-01T00:00:00Z"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_time")),
        "{e}"
    );
}

on_both_backends!(the_admin_api_runs_a_business);

/// A plain HTTP client that follows no redirects.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn pages_and_machines_get_their_own_errors(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let http = client();
    // Unknown page: HTML with the way on; unknown API path: the envelope.
    let r = http.get(format!("{}/no/such/page", app.address)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(
        page.contains("页面不存在") && page.contains("id=\"next-steps\"") && page.contains("href=\"/\""),
        "{page}"
    );
    let r = http
        .get(format!("{}/api/v1/no/such/thing", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (_, body) = json(r).await;
    assert_eq!(body["error"]["code"], "not_found");
    // A wrong method on a known path: 405 with Allow, in the shape of its side.
    let r = http
        .delete(format!("{}/api/v1/redemptions", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let allow = r.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("POST") && allow.contains("GET"), "{allow}");
    let (_, body) = json(r).await;
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let r = http.put(format!("{}/coupons/mine", app.address)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers()["allow"].to_str().unwrap().contains("GET"));
    assert!(r.text().await.unwrap().contains("请求方式不支持"));
    let r = http
        .get(format!("{}/c/ABCDEFGHJKLMNPQRSTUVWXYZ23/redeem", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    // An unknown coupon: a page that says what to do next.
    let r = http
        .get(format!("{}/c/ABCDEFGHJKLMNPQRSTUVWXYZ23", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("优惠券不存在") && page.contains("/coupons/mine"),
        "{page}"
    );

    // WeChat failing during login is a 503 page with a retry, not a 400.
    let shop = shop(&app, campaign()).await;
    let (_, coupon) = issue(&app, shop.campaign_id, Some("o-customer")).await;
    let path = format!("/c/{}", coupon["code"].as_str().unwrap());
    let r = http.get(format!("{}{path}", app.address)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let binding = wxkit_e2e::oauth_binding(&r);
    let authorize = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    let r = app
        .http
        .post(format!("{}/_sim/faults", app.sim.base_url()))
        .json(&json!({"path": "/sns/oauth2/access_token", "errcode": -1, "errmsg": "system error", "count": 10}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let callback = format!(
        "{}/auth/callback?code=anycode&state={}",
        app.address,
        url::form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>()
    );
    let r = http.get(callback).header("cookie", binding).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let page = r.text().await.unwrap();
    assert!(
        page.contains("微信") && page.contains(&format!("href=\"{path}\"")),
        "retry goes back: {page}"
    );
}

on_both_backends!(pages_and_machines_get_their_own_errors);

const TOKEN_ONE: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const TOKEN_TWO: &str = "2222222222222222222222222222222222222222222222222222222222222222";

async fn public_endpoints_are_rate_limited_with_retry_after(kind: DbKind) {
    let Some(db) = wxkit_testkit::TestDatabase::create(kind) else {
        return;
    };
    let sim = wxkit_testkit::spawn_sim().await;
    let settings = wxkit_e2e::test_settings_with(
        &db.url,
        &sim,
        &[
            ("WXKIT__RATE_LIMITS__POS_PER_MINUTE", "3"),
            ("WXKIT__RATE_LIMITS__COUPON_PAGES_PER_MINUTE", "2"),
            ("WXKIT__RATE_LIMITS__LOGIN_PER_MINUTE", "1"),
        ],
        &[],
    );
    let (address, _state) = wxkit_e2e::start_server_with(settings).await;
    let http = client();
    let pos = |token: &'static str| {
        let http = http.clone();
        let address = address.clone();
        async move {
            http.post(format!("{address}/api/v1/redemptions"))
                .bearer_auth(token)
                .json(&json!({"code": "ABCDEFGHJKLMNPQRSTUVWXYZ23"}))
                .send()
                .await
                .unwrap()
        }
    };
    // Per staff token (unknown tokens are judged after the limit, so each token has its own budget).
    for _ in 0..3 {
        assert_ne!(pos(TOKEN_ONE).await.status(), 429);
    }
    let r = pos(TOKEN_ONE).await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let (_, body) = json(r).await;
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_ne!(pos(TOKEN_TWO).await.status(), 429, "another token has its own budget");

    // Coupon pages per address: an HTML 429 page with Retry-After.
    for _ in 0..2 {
        let r = http
            .get(format!("{address}/c/ABCDEFGHJKLMNPQRSTUVWXYZ23"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    let r = http
        .get(format!("{address}/c/ABCDEFGHJKLMNPQRSTUVWXYZ23"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.text().await.unwrap().contains("请求太频繁"));

    // Login APIs per address.
    let scene = || {
        http.post(format!("{address}/api/v1/login/scenes"))
            .json(&json!({}))
            .send()
    };
    assert_ne!(scene().await.unwrap().status(), 429);
    let r = scene().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

on_both_backends!(public_endpoints_are_rate_limited_with_retry_after);

/// An operator voids a coupon while cashiers scan it: exactly one side wins, and what the losers are told matches what
/// was written (no redemption of a void coupon, no void of a redeemed one, one redemption row at most).
async fn void_and_redeem_race_and_exactly_one_wins(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, campaign()).await;
    for _ in 0..5 {
        let (_, coupon) = issue(&app, shop.campaign_id, Some("o-customer")).await;
        let code = coupon["code"].as_str().unwrap().to_owned();
        let mut tasks = Vec::new();
        for i in 0..12 {
            let http = app.http.clone();
            let address = app.address.clone();
            let code = code.clone();
            let token = shop.staff_token.clone();
            tasks.push(tokio::spawn(async move {
                let voiding = i % 3 == 0;
                let r = if voiding {
                    http.post(format!("{address}/api/v1/coupons/{code}/void"))
                        .bearer_auth(wxkit_e2e::TEST_ADMIN_TOKEN)
                        .json(&json!({"reason": "race"}))
                } else {
                    http.post(format!("{address}/api/v1/redemptions"))
                        .bearer_auth(token)
                        .json(&json!({"code": code}))
                };
                let r = r.send().await.unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                (voiding, status, body["error"]["code"].as_str().map(str::to_owned))
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        // Every answer is a decision, never a 5xx.
        assert!(outcomes.iter().all(|(_, s, _)| *s < 500), "{outcomes:?}");
        let (_, public) = json(app.get(&format!("/api/v1/coupons/{code}")).await).await;
        let redeemed_ok = outcomes.iter().filter(|(v, s, _)| !v && *s == 200).count();
        let voids_ok = outcomes.iter().filter(|(v, s, _)| *v && *s == 200).count();
        let final_status = public["status"].as_str().unwrap().to_owned();
        match final_status.as_str() {
            "redeemed" => {
                assert_eq!((redeemed_ok, voids_ok), (1, 0), "{outcomes:?}");
                let refused = |(v, s, c): &(bool, u16, Option<String>)| {
                    !v || (*s == 409 && c.as_deref() == Some("coupon_redeemed"))
                };
                assert!(outcomes.iter().all(refused), "{outcomes:?}");
            }
            "void" => {
                assert_eq!(redeemed_ok, 0, "{outcomes:?}");
                assert!(voids_ok >= 1, "{outcomes:?}");
                let refused =
                    |(v, s, c): &(bool, u16, Option<String>)| *v || (*s == 410 && c.as_deref() == Some("void"));
                assert!(outcomes.iter().all(refused), "{outcomes:?}");
            }
            other => panic!("{other}: {outcomes:?}"),
        }
        let id = code.clone();
        let (redemptions, voids) = wxkit::db::blocking(&app.state.db, move |conn| {
            use diesel::prelude::*;
            use wxkit::db::schema::{audit_log, coupons, redemptions};
            let cid: i64 = coupons::table
                .filter(coupons::code.eq(&id))
                .select(coupons::id)
                .first(conn)?;
            let r: i64 = redemptions::table
                .filter(redemptions::coupon_id.eq(cid))
                .count()
                .get_result(conn)?;
            let v: i64 = audit_log::table
                .filter(audit_log::coupon_id.eq(cid).and(audit_log::action.eq("void")))
                .count()
                .get_result(conn)?;
            Ok((r, v))
        })
        .await
        .unwrap();
        assert_eq!(redemptions, i64::from(final_status == "redeemed"), "{outcomes:?}");
        assert_eq!(
            voids,
            i64::from(final_status == "void"),
            "one void audit row, only when it voided"
        );
    }
}

on_both_backends!(void_and_redeem_race_and_exactly_one_wins);

async fn every_documented_route_exists(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let (s, doc) = json(app.get("/api/v1/openapi.json").await).await;
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 30, "{}", paths.len());
    let http = client();
    for (path, item) in paths {
        let concrete = path
            .replace("{code}", "ABCDEFGHJKLMNPQRSTUVWXYZ23")
            .replace("{id}", "999999")
            .replace("{scene}", "nosuchscene")
            .replace("{out_trade_no}", "NOSUCHORDER");
        for (method, op) in item.as_object().unwrap() {
            let r = http
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{concrete}", app.address),
                )
                .bearer_auth(wxkit_e2e::TEST_ADMIN_TOKEN)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = r.status();
            let (_, body) = json(r).await;
            // The route exists: no "no such route" 404 and no 405; and the status is one the document lists.
            assert_ne!(status, 405, "{method} {path} is documented but not served");
            assert_ne!(
                body["error"]["message"], "no such route",
                "{method} {path} is documented but not served"
            );
            assert!(
                op["responses"][status.as_str()].is_object(),
                "{method} {path} answered {status}, which its document does not list: {body}"
            );
            assert!(!status.is_server_error(), "{method} {path}: {status} {body}");
        }
    }
}

on_both_backends!(every_documented_route_exists);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_over_tls_require_and_verify_full() {
    let Some(tls) = wxkit_testkit::tls_postgres() else {
        assert!(
            !wxkit_testkit::is_ci(),
            "CI=true: the TLS cluster must start (initdb, openssl)"
        );
        eprintln!("SKIPPING: no initdb/openssl for a TLS PostgreSQL cluster");
        return;
    };
    let bin = wxkit_e2e::wxkit_bin();
    let migrate = |url: String| {
        let out = std::process::Command::new(&bin)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "warn")
            .current_dir(std::env::temp_dir())
            .args(["migrate", "--create-database"])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let port = tls.port;
    // The cluster refuses clear-text connections: what succeeds below went over TLS.
    let (code, out) = migrate(format!(
        "postgres://postgres@127.0.0.1:{port}/wxkit_tls?sslmode=disable"
    ));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("no encryption") || out.contains("reject") || out.contains("pg_hba"),
        "{out}"
    );
    // sslmode=require: encrypted; the database is created by `migrate --create-database`, then migrated.
    let (code, out) = migrate(format!(
        "postgres://postgres@127.0.0.1:{port}/wxkit_tls?sslmode=require"
    ));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("created") && out.contains("applied"), "{out}");
    // verify-full: the server's certificate checked against our root and its name.
    let root = tls.root_cert.display().to_string();
    let (code, out) = migrate(format!(
        "postgres://postgres@localhost:{port}/wxkit_tls?sslmode=verify-full&sslrootcert={root}"
    ));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("up to date"), "{out}");
    // A certificate for another name is refused under verify-full.
    let (code, out) = migrate(format!(
        "postgres://postgres@127.0.0.2:{port}/wxkit_tls?sslmode=verify-full&sslrootcert={root}"
    ));
    assert_eq!(code, 2, "{out}");
    // And the server itself runs on it (pool, migrations, a request that reads the database).
    let sim = wxkit_testkit::spawn_sim().await;
    let settings = wxkit_e2e::test_settings(
        &format!("postgres://postgres@127.0.0.1:{port}/wxkit_tls?sslmode=require"),
        &sim,
    );
    let (address, state) = wxkit_e2e::start_server_with(settings).await;
    let r = reqwest::get(format!("{address}/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
    // Its scan-login LISTEN connection (tokio-postgres, not libpq) speaks TLS too.
    wxkit_testkit::eventually("the login listener over TLS", || state.login_hub.listening()).await;
    // And with the certificate checked (verify-full: chain and host name).
    let settings = wxkit_e2e::test_settings(
        &format!("postgres://postgres@localhost:{port}/wxkit_tls?sslmode=verify-full&sslrootcert={root}"),
        &sim,
    );
    let (_, state) = wxkit_e2e::start_server_with(settings).await;
    wxkit_testkit::eventually("the login listener with verify-full", || state.login_hub.listening()).await;
    tls.stop();
}

/// schemathesis (PyPI), from `WXKIT_SCHEMATHESIS` (CI installs it into a virtualenv) or `PATH`.
fn schemathesis() -> Option<std::path::PathBuf> {
    if let Ok(p) = std::env::var("WXKIT_SCHEMATHESIS") {
        return Some(p.into());
    }
    std::env::var("PATH")
        .ok()?
        .split(':')
        .map(|d| std::path::Path::new(d).join("schemathesis"))
        .find(|p| p.exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_no_server_error_or_undocumented_response() {
    let Some(bin) = schemathesis() else {
        assert!(
            !wxkit_testkit::is_ci(),
            "CI=true: schemathesis must be installed (.ci/run puts it in a virtualenv, WXKIT_SCHEMATHESIS)"
        );
        eprintln!("SKIPPING: schemathesis not installed (pip install schemathesis; or set WXKIT_SCHEMATHESIS)");
        return;
    };
    let Some(db) = wxkit_testkit::TestDatabase::create(DbKind::Sqlite) else {
        return;
    };
    let sim = wxkit_testkit::spawn_sim().await;
    // Every capability on, so that each operation reaches its logic rather than "not configured": the merchant on
    // Pay v3 with its v2 key too (WeChat Pay 商家券). schemathesis also tries wrong credentials: the
    // failed-authentication lockout would answer the rest with 429.
    let files = tempfile::tempdir().unwrap();
    let mut env = wxkit_e2e::v3_env(files.path(), &sim, wxkit_e2e::V3Mode::PublicKey);
    env.push((
        "WXKIT__SERVER__AUTH_FAILURES_PER_MINUTE".to_owned(),
        "1000000".to_owned(),
    ));
    let set: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let settings = wxkit_e2e::test_settings_with(&db.url, &sim, &set, &[]);
    let (address, _state) = wxkit_e2e::start_server_with(settings).await;
    let spec = format!("{address}/api/v1/openapi.json");
    // The document itself validates as OpenAPI 3 (openapi-spec-validator sits beside schemathesis).
    let validator = bin.with_file_name("openapi-spec-validator");
    if validator.exists() {
        let doc = reqwest::get(&spec).await.unwrap().text().await.unwrap();
        let file = tempfile::NamedTempFile::with_suffix(".json").unwrap();
        std::fs::write(file.path(), doc).unwrap();
        let path = file.path().to_owned();
        let out = tokio::task::spawn_blocking(move || std::process::Command::new(validator).arg(path).output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            out.status.success(),
            "openapi-spec-validator: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(
            !wxkit_testkit::is_ci(),
            "CI=true: openapi-spec-validator must be installed beside schemathesis"
        );
    }
    let admin = format!("Authorization: Bearer {}", wxkit_e2e::TEST_ADMIN_TOKEN);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(["run", &spec, "--checks"])
            .arg("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance")
            .args([
                "-H",
                &admin,
                "--max-examples",
                "20",
                "--seed",
                "20261126",
                "--request-timeout",
                "20",
            ])
            // One worker: hypothesis parses sources with `ast`, which is not thread-safe in CPython 3.11 ("AST
            // constructor recursion depth mismatch" under two workers).
            .args(["--workers", "1", "--no-shrink"])
            .env("NO_COLOR", "1")
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found failures:\n{report}");
    assert!(report.contains("passed") || report.contains("PASSED"), "{report}");
}

/// Every state a coupon page can be in, as the holder and as staff (this shop's, another shop's, removed) see it.
async fn each_page_state_says_what_it_is_and_what_to_do(kind: DbKind) {
    use crate::coupons::Browser;
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, campaign()).await;
    let code_of = |v: Value| v["code"].as_str().unwrap().to_owned();
    let post = async |path: String, body: Value| {
        let (s, v) = json(app.admin(Method::POST, &path, body).await).await;
        assert!(s.is_success(), "{path}: {s} {v}");
        v
    };
    // Not valid yet (a campaign that starts in 2099), void, expired (an ended campaign), redeemed, usable.
    let later = post(
        "/api/v1/campaigns".into(),
        json!({"merchant_id": shop.merchant_id, "title": "以后 Later", "valid_from": "2099-01-01T00:00:00+08:00",
               "valid_until": "2099-02-01T00:00:00+08:00"}),
    )
    .await;
    let pending = code_of(issue(&app, later["id"].as_i64().unwrap(), Some("o-customer")).await.1);
    let void = code_of(issue(&app, shop.campaign_id, Some("o-customer")).await.1);
    post(format!("/api/v1/coupons/{void}/void"), json!({"reason": "测试 test"})).await;
    let ending = post(
        "/api/v1/campaigns".into(),
        json!({"merchant_id": shop.merchant_id, "title": "结束 Ending"}),
    )
    .await;
    let expired = code_of(issue(&app, ending["id"].as_i64().unwrap(), Some("o-customer")).await.1);
    post(format!("/api/v1/campaigns/{}/end", ending["id"]), json!({})).await;
    let redeemed = code_of(issue(&app, shop.campaign_id, Some("o-customer")).await.1);
    let (s, _) = pos(&app, &shop.staff_token, &redeemed).await;
    assert_eq!(s, 200);
    let usable = code_of(issue(&app, shop.campaign_id, Some("o-customer")).await.1);

    let customer = Browser::new("o-customer");
    for (code, status, words) in [
        (&pending, "pending", "未到使用时间"),
        (&void, "void", "已作废"),
        // Given away, then the campaign ended early: void, and the page says why.
        (&expired, "void", "活动已提前结束"),
        (&redeemed, "redeemed", "核销成功"),
    ] {
        let (s, page) = customer.open(&app, &format!("/c/{code}")).await;
        assert_eq!(s, 200);
        assert!(page.contains(&format!("data-status=\"{status}\"")), "{status}: {page}");
        assert!(
            page.contains("id=\"notice\"") && page.contains(words),
            "{status}: {page}"
        );
        assert!(!page.contains("id=\"qr\""), "no QR to scan when {status}: {page}");
        assert!(page.contains("北京时间"), "times are labelled: {page}");
    }
    assert!(
        customer
            .open(&app, &format!("/c/{pending}"))
            .await
            .1
            .contains("2099-01-01 00:00")
    );
    let (_, page) = customer.open(&app, &format!("/c/{usable}")).await;
    assert!(
        page.contains("id=\"qr\"") && page.contains("id=\"live\"") && page.contains("/static/coupon.js"),
        "{page}"
    );
    assert!(page.contains("面值 ¥18 · face value"), "a value, not a price: {page}");

    // The page's live status: the holder's session only.
    let status = customer
        .http
        .get(format!("{}/c/{usable}/status", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    let (_, v) = json(status).await;
    assert_eq!(v["status"], "issued");
    assert_eq!(
        client()
            .get(format!("{}/c/{usable}/status", app.address))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let passer_by = Browser::new("o-passer-by");
    passer_by.open(&app, "/coupons/mine").await;
    let r = passer_by
        .http
        .get(format!("{}/c/{usable}/status", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "someone else's coupon");
    let (s, _) = pos(&app, &shop.staff_token, &usable).await;
    assert_eq!(s, 200);
    let (_, v) = json(
        customer
            .http
            .get(format!("{}/c/{usable}/status", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["status"], "redeemed");
    assert!(v["notice"].as_str().unwrap().contains("核销成功"), "{v}");

    // Staff of this shop: the reason in words, no confirm button.
    let staff = Browser::new("o-staff");
    for (code, words) in [
        (&pending, "未到使用时间"),
        (&void, "已作废"),
        (&expired, "已作废"),
        (&redeemed, "此券已核销"),
    ] {
        let (_, page) = staff.open(&app, &format!("/c/{code}")).await;
        assert!(
            page.contains("id=\"cannot\"") && page.contains(words),
            "{words}: {page}"
        );
        assert!(
            !page.contains("id=\"confirm\"") && !page.contains("id=\"qr\""),
            "{page}"
        );
    }
    assert!(staff.open(&app, &format!("/c/{redeemed}")).await.1.contains("by 小王"));

    // Staff of another shop, and removed staff.
    let (_, other) = json(
        app.admin(Method::POST, "/api/v1/merchants", json!({"name": "隔壁 Next door"}))
            .await,
    )
    .await;
    let (s, _) = json(
        app.admin(
            Method::POST,
            "/api/v1/staff",
            json!({"merchant_id": other["id"], "openid": "o-other-staff", "name": "小李"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201);
    let fresh = code_of(issue(&app, shop.campaign_id, Some("o-customer")).await.1);
    let (_, page) = Browser::new("o-other-staff").open(&app, &format!("/c/{fresh}")).await;
    assert!(
        page.contains("不是本店的券") && !page.contains("id=\"confirm\"") && !page.contains("id=\"qr\""),
        "{page}"
    );
    let (s, _) = json(
        app.admin(Method::DELETE, &format!("/api/v1/staff/{}", shop.staff_id), Value::Null)
            .await,
    )
    .await;
    assert_eq!(s, 204);
    let (_, page) = Browser::new("o-staff").open(&app, &format!("/c/{fresh}")).await;
    assert!(
        page.contains("店员权限已停用") && !page.contains("id=\"confirm\""),
        "{page}"
    );

    // The customer's list: statuses in Chinese with English, values labelled.
    let (_, mine) = customer.open(&app, "/coupons/mine").await;
    for words in [
        "未到使用时间 · not valid yet",
        "已作废 · void",
        "已核销 · redeemed",
        "面值 ¥18",
    ] {
        assert!(mine.contains(words), "{words}: {mine}");
    }
}

on_both_backends!(each_page_state_says_what_it_is_and_what_to_do);

fn sandbox_settings(db: &std::path::Path) -> wxkit::configuration::Settings {
    wxkit::configuration::Settings::load_from(
        None,
        vec![
            ("DATABASE_URL".to_owned(), format!("sqlite://{}", db.display())),
            ("WXKIT__SERVER__ADDR".to_owned(), "127.0.0.1:0".to_owned()),
            ("WXKIT__SERVER__MODE".to_owned(), "sandbox".to_owned()),
        ],
    )
    .unwrap()
}

/// What the sandbox's simulator says of the share demo's `wx.config` (as its `jweixin` stand-in asks it).
async fn share_config_verdict(http: &reqwest::Client, base: &str) -> String {
    let page = http
        .get(format!("{base}/demo/share"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sim = page
        .split("src=\"")
        .find_map(|s| s.split('"').next().and_then(|u| u.strip_suffix("/_sim/js/jweixin.js")))
        .expect("the share demo loads the simulator's jweixin")
        .to_owned();
    let url = format!("{base}/demo/share");
    let cfg: Value = http
        .get(format!("{base}/api/v1/jssdk/config"))
        .query(&[("url", url.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let verdict: Value = http
        .post(format!("{sim}/_sim/js/verify"))
        .json(
            &json!({"appId": cfg["appId"], "timestamp": cfg["timestamp"], "nonceStr": cfg["nonceStr"],
                      "signature": cfg["signature"], "url": url}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    verdict["errMsg"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sandbox_replaces_an_ended_demo_and_keeps_its_tokens() {
    use wxkit::startup::Application;
    use wxkit_e2e::AppState as _;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let first = Application::build(sandbox_settings(&db)).await.unwrap();
    let demo = first.demo().unwrap().clone();
    let admin = first.state().admin_token.as_ref().unwrap().secret().to_owned();
    let base = format!("http://127.0.0.1:{}", first.port());
    tokio::spawn(first.run_until_stopped());
    let http = reqwest::Client::new();
    // The share demo's JS-SDK config verifies at the run's simulator (its jsapi_ticket is now cached in the database).
    assert_eq!(share_config_verdict(&http, &base).await, "config:ok");
    // The operator ends every campaign of the demo.
    let list: Value = http
        .get(format!("{base}/api/v1/campaigns"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for c in list["items"].as_array().unwrap() {
        let r = http
            .post(format!("{base}/api/v1/campaigns/{}/end", c["id"]))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // A restart on the same database: not a start-up error; a usable demo again, with the same tokens.
    let second = Application::build(sandbox_settings(&db))
        .await
        .expect("an ended demo campaign is replaced, never a start-up error");
    let again = second.demo().unwrap().clone();
    assert_eq!(
        again.staff_token, demo.staff_token,
        "the POS token is kept in the database"
    );
    assert_eq!(second.state().admin_token.as_ref().unwrap().secret(), admin);
    assert!(
        again
            .customer_coupons
            .iter()
            .all(|c| !demo.customer_coupons.contains(c)),
        "new coupons"
    );
    let base = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());
    // The new run's simulator never issued the old run's tickets: the sandbox forgot them at start, so the share demo
    // still verifies (before, `config:invalid signature` until the cached ticket expired).
    assert_eq!(share_config_verdict(&http, &base).await, "config:ok");
    // Every coupon the banner lists, the printed staff token redeems.
    for code in &again.customer_coupons {
        let r = http
            .post(format!("{base}/api/v1/redemptions"))
            .bearer_auth(&again.staff_token)
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{code}");
    }
}
