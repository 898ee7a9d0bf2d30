//! Official-account messages through the server: follow to get a coupon (关注领券) — a campaign's parametric QR
//! code scanned by a new follower and by a follower, once per push however often WeChat (or a second instance)
//! sees it, with the reply WeChat shows the user.

use reqwest::Method;
use serde_json::{Value, json};
use wxkit_e2e::{DbKind, TEST_APP_ID, TestApp, eventually, spawn_app};

on_both_backends!(
    following_a_campaigns_code_gives_one_coupon_and_a_news_reply,
    the_mini_programs_json_pushes_are_taken_once_in_safe_mode,
);

/// The mini program's message push URL (`/wechat/miniprogram/push`, `miniprogram.token` and
/// `miniprogram.encoding_aes_key`): a safe-mode JSON push (a `wxa_media_check` verdict) and an XML one (a shipping
/// reminder) are taken once and answered `success`; a replay of the same timestamp and nonce with another body, a
/// plaintext downgrade and a forged signature are refused; the URL check answers `echostr`.
async fn the_mini_programs_json_pushes_are_taken_once_in_safe_mode(kind: DbKind) {
    use wechat_core::push::{MessageCrypto, msg_signature, server_signature};
    let key = wxkit_e2e::TEST_AES_KEY;
    let Some(app) = wxkit_e2e::spawn_app_with(
        kind,
        &[
            ("WXKIT__MINIPROGRAM__TOKEN", "mp-push-token"),
            ("WXKIT__MINIPROGRAM__ENCODING_AES_KEY", key),
        ],
    )
    .await
    else {
        return;
    };
    let crypto = MessageCrypto::new("mp-push-token", key, wxkit_e2e::TEST_MP_APP_ID).unwrap();
    let now = chrono::Utc::now().timestamp().to_string();
    let post = async |nonce: &str, plain: &str, json_format: bool, tamper: bool| {
        let encrypt = crypto.encrypt(plain);
        let body = if json_format {
            json!({"ToUserName": "gh_mp", "Encrypt": encrypt}).to_string()
        } else {
            format!("<xml><ToUserName><![CDATA[gh_mp]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
        };
        let mut signature = msg_signature("mp-push-token", &now, nonce, &encrypt);
        if tamper {
            signature = "0".repeat(40);
        }
        let url = format!(
            "{}/wechat/miniprogram/push?signature={}&timestamp={now}&nonce={nonce}&encrypt_type=aes&msg_signature={signature}",
            app.address,
            server_signature("mp-push-token", &now, nonce)
        );
        let r = app.http.post(url).body(body).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let verdict = json!({"ToUserName": "gh_mp", "FromUserName": "o-system", "CreateTime": 1_700_000_000,
        "MsgType": "event", "Event": "wxa_media_check", "appid": wxkit_e2e::TEST_MP_APP_ID, "trace_id": "trace-1",
        "version": 2, "result": {"suggest": "risky", "label": 20002}})
    .to_string();
    assert_eq!(post("n-1", &verdict, true, false).await, (200, "success".into()));
    // WeChat's resend (same push, fresh nonce): taken once, answered again.
    assert_eq!(post("n-2", &verdict, true, false).await, (200, "success".into()));
    // The same timestamp and nonce with another body: a replay.
    let other = verdict.replace("trace-1", "trace-2");
    assert_eq!(post("n-1", &other, true, false).await.0, 403);
    // A forged msg_signature.
    assert_eq!(post("n-3", &verdict, true, true).await.0, 403);
    // XML is taken too.
    let reminder = "<xml><ToUserName><![CDATA[gh_mp]]></ToUserName><FromUserName><![CDATA[o-system]]></FromUserName><CreateTime>1700000001</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[trade_manage_remind_shipping]]></Event><transaction_id>4200</transaction_id><merchant_trade_no>ORDER1</merchant_trade_no><msg>请尽快发货</msg></xml>";
    assert_eq!(post("n-4", reminder, false, false).await, (200, "success".into()));
    // A plaintext push in safe mode is a downgrade.
    let r = app
        .http
        .post(format!(
            "{}/wechat/miniprogram/push?signature={}&timestamp={now}&nonce=n-5",
            app.address,
            server_signature("mp-push-token", &now, "n-5")
        ))
        .body(verdict.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The URL check.
    let r = app
        .http
        .get(format!(
            "{}/wechat/miniprogram/push?signature={}&timestamp={now}&nonce=n-6&echostr=hello",
            app.address,
            server_signature("mp-push-token", &now, "n-6")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "hello");
    // Without a token configured the URL does not exist.
    let Some(plain) = spawn_app(DbKind::Sqlite).await else {
        return;
    };
    let r = plain
        .http
        .post(format!("{}/wechat/miniprogram/push", plain.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

async fn sim_messages(app: &TestApp) -> Vec<Value> {
    let v: Value = reqwest::get(format!("{}/_sim/messages", app.sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["messages"].as_array().unwrap().clone()
}

async fn following_a_campaigns_code_gives_one_coupon_and_a_news_reply(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    assert!(app.sim.handle().set_push(
        TEST_APP_ID,
        &format!("{}/wechat/push", app.address),
        wxkit_e2e::TEST_PUSH_TOKEN,
        Some(wxkit_e2e::TEST_AES_KEY)
    ));
    let shop = crate::coupons::shop(
        &app,
        json!({"title": "关注有礼", "value_fen": 500, "quantity": 10, "per_user_limit": 1}),
    )
    .await;
    let id = shop.campaign_id;
    // Bad input and unknown campaigns first.
    let r = app
        .admin(
            Method::POST,
            &format!("/api/v1/campaigns/{id}/follow-code"),
            json!({"expire_secs": 5}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = app
        .admin(Method::POST, "/api/v1/campaigns/999999/follow-code", json!({}))
        .await;
    assert_eq!(r.status(), 404);
    // A 7-day code for the campaign: its image at (simulated) WeChat, and when it expires.
    let r = app
        .admin(
            Method::POST,
            &format!("/api/v1/campaigns/{id}/follow-code"),
            json!({"expire_secs": 604800}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let code: Value = r.json().await.unwrap();
    assert!(code["expires_at"].is_string(), "{code}");
    let qr_url = url::Url::parse(code["qr_url"].as_str().unwrap()).unwrap();
    let image = app.http.get(qr_url.as_str()).send().await.unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(
        wxkit_e2e::decode_qr(&image.bytes().await.unwrap()),
        code["url"].as_str().unwrap()
    );
    let ticket = qr_url
        .query_pairs()
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    // A permanent code too (no expiry).
    let r = app
        .admin(Method::POST, &format!("/api/v1/campaigns/{id}/follow-code"), json!({}))
        .await;
    assert_eq!(r.status(), 201);
    let permanent: Value = r.json().await.unwrap();
    assert!(
        permanent["expires_at"].is_null() && permanent["qr_url"].is_string(),
        "{permanent}"
    );

    // A new follower scans: subscribe with the scene → one coupon, and a news reply that opens it.
    assert_eq!(app.sim.handle().scan_qrcode(&ticket, "o-fan"), Ok("subscribe"));
    eventually("the subscribe push answered", || {
        app.sim
            .handle()
            .notifications()
            .iter()
            .filter(|n| n.kind == "push" && n.delivered)
            .count()
            == 1
    })
    .await;
    let held = crate::pay::coupons_held(&app, id, "o-fan");
    assert_eq!(held.len(), 1, "{held:?}");
    let coupon = held[0].0.clone();
    let replies = sim_messages(&app).await;
    let reply = replies[0]["reply"].as_str().unwrap_or_else(|| panic!("{replies:?}"));
    let f = wechat_core::xml::parse_push(reply.as_bytes()).unwrap();
    assert_eq!((f["MsgType"].as_str(), f["ToUserName"].as_str()), ("news", "o-fan"));
    assert!(f["Articles/item/Title"].contains("关注有礼"), "{reply}");
    assert_eq!(f["Articles/item/Url"], format!("{}/c/{coupon}", app.address));

    // WeChat resends the same push (its answer was slow), to this instance and to a second one on the same
    // database: acknowledged, nothing more issued.
    let first = app
        .sim
        .handle()
        .notifications()
        .into_iter()
        .find(|n| n.kind == "push")
        .unwrap();
    let path_and_query = first.url.trim_start_matches(&app.address).to_owned();
    let (second, _) = wxkit_e2e::start_server(&app.db.url, &app.sim).await;
    for base in [app.address.clone(), second.clone()] {
        let r = app
            .http
            .post(format!("{base}{path_and_query}"))
            .body(first.body().to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "success");
    }
    assert_eq!(crate::pay::coupons_held(&app, id, "o-fan").len(), 1);

    // The follower scans again: SCAN → the per-user limit holds, and the reply says so.
    assert_eq!(app.sim.handle().scan_qrcode(&ticket, "o-fan"), Ok("SCAN"));
    eventually("the SCAN push answered", || {
        app.sim
            .handle()
            .notifications()
            .iter()
            .filter(|n| n.kind == "push" && n.delivered)
            .count()
            == 2
    })
    .await;
    assert_eq!(crate::pay::coupons_held(&app, id, "o-fan").len(), 1);
    let replies = sim_messages(&app).await;
    let reply = replies[1]["reply"].as_str().unwrap();
    assert!(reply.contains("你已领取过这张券"), "{reply}");
    // Another user gets their own.
    assert_eq!(app.sim.handle().scan_qrcode(&ticket, "o-friend"), Ok("subscribe"));
    eventually("the friend's coupon", || {
        crate::pay::coupons_held(&app, id, "o-friend").len() == 1
    })
    .await;
}

/// `wxkit qrcode create` and `wxkit msg send-template` with the configured account (against the simulator), the
/// token shared through the database.
#[tokio::test]
async fn the_cli_creates_codes_and_sends_template_messages() {
    let sim = wxkit_e2e::spawn_sim().await;
    let db = wxkit_e2e::TestDatabase::create(DbKind::Sqlite).unwrap();
    let env = vec![
        ("DATABASE_URL".to_owned(), db.url.clone()),
        ("WXKIT__WECHAT__APP_ID".to_owned(), TEST_APP_ID.to_owned()),
        (
            "WXKIT__WECHAT__APP_SECRET".to_owned(),
            wxkit_e2e::TEST_APP_SECRET.to_owned(),
        ),
        ("WXKIT__WECHAT__API_BASE_URL".to_owned(), sim.base_url()),
        ("WXKIT__WECHAT__OPEN_BASE_URL".to_owned(), sim.base_url()),
    ];
    let cli = |args: Vec<&'static str>, env: Vec<(String, String)>| {
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(wxkit_e2e::wxkit_bin())
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("RUST_LOG", "error")
                .envs(env)
                .current_dir(std::env::temp_dir())
                .args(args)
                .output()
                .unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let (code, _, stderr) = cli(vec!["migrate"], env.clone()).await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = cli(
        vec!["qrcode", "create", "--scene", "fc7", "--expire", "600"],
        env.clone(),
    )
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["qr_url"].as_str().unwrap().starts_with(&sim.base_url()), "{v}");
    assert!(v["expires_at"].is_string());
    let ticket = v["ticket"].as_str().unwrap();
    assert_eq!(sim.handle().scan_qrcode(ticket, "o-cli"), Ok("subscribe"));
    let (code, _, stderr) = cli(vec!["qrcode", "create", "--scene", "0"], env.clone())
        .await
        .unwrap();
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = cli(
        vec!["qrcode", "create", "--scene", "x"],
        vec![("DATABASE_URL".into(), db.url.clone())],
    )
    .await
    .unwrap();
    assert_eq!((code, stderr.contains("wechat.app_id")), (2, true), "{stderr}");

    sim.handle().add_template(TEST_APP_ID, "TPL-CLI", &["thing1", "time2"]);
    let send = vec![
        "msg",
        "send-template",
        "--to",
        "o-cli",
        "--template",
        "TPL-CLI",
        "--data",
        "thing1=拿铁",
        "--data",
        "time2=10:00",
        "--url",
        "https://shop.example/c/A",
    ];
    let (code, _, stderr) = cli(send.clone(), env.clone()).await.unwrap();
    assert_eq!(code, 0, "o-cli follows after the scan: {stderr}");
    let (code, _, stderr) = cli(
        vec![
            "msg",
            "send-template",
            "--to",
            "o-stranger",
            "--template",
            "TPL-CLI",
            "--data",
            "thing1=a",
            "--data",
            "time2=b",
        ],
        env.clone(),
    )
    .await
    .unwrap();
    assert_eq!((code, stderr.contains("NotFollowing")), (1, true), "{stderr}");
    let (code, _, stderr) = cli(
        vec![
            "msg",
            "send-template",
            "--to",
            "o-cli",
            "--template",
            "TPL-CLI",
            "--data",
            "oops",
        ],
        env,
    )
    .await
    .unwrap();
    assert_eq!((code, stderr.contains("KEY=VALUE")), (2, true), "{stderr}");
    let sent = sim.handle().sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["data"]["thing1"]["value"], "拿铁");
    // One token for all of it: the CLI calls shared it through the database.
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 1);
    sim.stop().await;
}

on_both_backends!(a_redeemed_coupon_tells_its_owner_and_a_refusal_never_touches_the_redemption);

async fn redeem(app: &TestApp, staff_token: &str, code: &str) -> Value {
    let r = app
        .http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth(staff_token)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn outbox(app: &TestApp, status: &str) -> Vec<Value> {
    let (_, v) = crate::coupons::json(
        app.admin(
            Method::GET,
            &format!("/api/v1/admin/outbox?status={status}"),
            Value::Null,
        )
        .await,
    )
    .await;
    v["items"].as_array().cloned().unwrap_or_default()
}

async fn a_redeemed_coupon_tells_its_owner_and_a_refusal_never_touches_the_redemption(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = crate::coupons::shop(&app, json!({"title": "拿铁券", "value_fen": 1800})).await;
    let id = shop.campaign_id;
    let path = format!("/api/v1/campaigns/{id}/redeemed-message");
    // Bad settings are refused with the reason; none set yet is a 404.
    assert_eq!(app.admin(Method::GET, &path, Value::Null).await.status(), 404);
    for bad in [
        json!({"template_id": "TPL", "fields": {"thing1": "{nope}"}}),
        json!({"template_id": "TPL", "fields": {}}),
        json!({"template_id": "T P L", "fields": {"thing1": "x"}}),
        json!({"template_id": "TPL", "fields": {"thing1": "{title"}}),
    ] {
        assert_eq!(app.admin(Method::PUT, &path, bad.clone()).await.status(), 400, "{bad}");
    }
    let message = json!({"template_id": "TPL-REDEEMED", "fields": {
        "thing1": "{title} · 核销成功", "amount2": "{value}", "time3": "{redeemed_at}", "character_string4": "{code_tail}"}});
    assert_eq!(
        app.admin(
            Method::PUT,
            "/api/v1/campaigns/999999/redeemed-message",
            message.clone()
        )
        .await
        .status(),
        404
    );
    assert_eq!(app.admin(Method::PUT, &path, message.clone()).await.status(), 200);
    let (s, got) = crate::coupons::json(app.admin(Method::GET, &path, Value::Null).await).await;
    assert_eq!((s.as_u16(), &got["fields"]), (200, &message["fields"]));
    app.sim.handle().add_template(
        TEST_APP_ID,
        "TPL-REDEEMED",
        &["thing1", "amount2", "time3", "character_string4"],
    );

    // A follower's coupon: redeemed, and they are told.
    app.sim.handle().follow(TEST_APP_ID, "o-owner");
    let (_, c) = crate::coupons::issue(&app, id, Some("o-owner")).await;
    let code = c["code"].as_str().unwrap().to_owned();
    let r = redeem(&app, &shop.staff_token, &code).await;
    assert_eq!(r["coupon"]["status"], "redeemed", "{r}");
    eventually("the template message", || !app.sim.handle().sent_messages().is_empty()).await;
    let sent = app.sim.handle().sent_messages();
    let m = &sent[0];
    assert_eq!((m.kind, m.touser.as_str()), ("template", "o-owner"));
    assert_eq!(m.body["data"]["thing1"]["value"], "拿铁券 · 核销成功");
    assert_eq!(m.body["data"]["amount2"]["value"], "¥18");
    assert_eq!(m.body["data"]["character_string4"]["value"], &code[code.len() - 4..]);
    assert_eq!(m.body["url"], format!("{}/c/{code}", app.address));
    assert!(m.body["client_msg_id"].as_str().unwrap().starts_with("redeemed-"));

    // Someone who does not follow: WeChat refuses (43004); the redemption stands, the item waits for an operator.
    let (_, c) = crate::coupons::issue(&app, id, Some("o-stranger")).await;
    let r = redeem(&app, &shop.staff_token, c["code"].as_str().unwrap()).await;
    assert_eq!(r["coupon"]["status"], "redeemed", "{r}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let failed = outbox(&app, "failed").await;
        if let Some(item) = failed.iter().find(|i| i["kind"] == "redeemed_message") {
            assert!(item["last_error"].as_str().unwrap_or("").contains("43004"), "{item}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no failed item: {failed:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A coupon without an owner has no one to tell; after DELETE, nobody is told.
    let (_, c) = crate::coupons::issue(&app, id, None).await;
    redeem(&app, &shop.staff_token, c["code"].as_str().unwrap()).await;
    assert_eq!(app.admin(Method::DELETE, &path, Value::Null).await.status(), 204);
    let (_, c) = crate::coupons::issue(&app, id, Some("o-owner")).await;
    redeem(&app, &shop.staff_token, c["code"].as_str().unwrap()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.sim.handle().sent_messages().len(), 1);
    let mut queued = 0;
    for status in ["pending", "done", "failed"] {
        queued += outbox(&app, status)
            .await
            .iter()
            .filter(|i| i["kind"] == "redeemed_message")
            .count();
    }
    assert_eq!(queued, 2, "one message per owned coupon while the campaign had one");
}

on_both_backends!(a_text_message_is_answered_with_the_way_to_the_customers_coupons);

async fn a_text_message_is_answered_with_the_way_to_the_customers_coupons(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    assert!(app.sim.handle().set_push(
        TEST_APP_ID,
        &format!("{}/wechat/push", app.address),
        wxkit_e2e::TEST_PUSH_TOKEN,
        Some(wxkit_e2e::TEST_AES_KEY)
    ));
    app.sim.handle().send_text(TEST_APP_ID, "o-writer", "我的券在哪");
    eventually("the answer", || {
        app.sim
            .handle()
            .notifications()
            .iter()
            .any(|n| n.kind == "push" && n.delivered)
    })
    .await;
    let replies = sim_messages(&app).await;
    let reply = replies[0]["reply"].as_str().unwrap_or_else(|| panic!("{replies:?}"));
    let f = wechat_core::xml::parse_push(reply.as_bytes()).unwrap();
    assert_eq!((f["MsgType"].as_str(), f["ToUserName"].as_str()), ("text", "o-writer"));
    assert!(
        f["Content"].ends_with(&format!("{}/coupons/mine", app.address)),
        "{reply}"
    );
    // The same message resent: acknowledged once, no second reply to show twice.
    let first = app
        .sim
        .handle()
        .notifications()
        .into_iter()
        .find(|n| n.kind == "push")
        .unwrap();
    let r = app
        .http
        .post(format!("{}{}", app.address, first.url.trim_start_matches(&app.address)))
        .body(first.body().to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "success");
}
