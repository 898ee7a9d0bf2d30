//! The server on WeChat Pay v3 (`pay.api_version = "v3"`): the purchase flow end to end, reconciliation and refunds
//! with the same exactly-once guarantees as v2, notifies that are forged, probed or replayed, and the three ways of
//! verifying WeChat Pay (public key, certificates shared through the database, the switch-over).

use crate::pay::{
    all_notifies_delivered, coupons_held, notifications, order, order_status, refund, set_pay_faults, wait_paid,
    wait_status, web_session,
};
use serde_json::{Value, json};
use wxkit_e2e::{DbKind, TEST_MCH_ID, TestApp, V3Mode, spawn_app_v3};

on_both_backends!(
    a_coupon_is_bought_paid_and_refunded_on_pay_v3,
    forged_probed_and_replayed_v3_notifies_pay_once_or_not_at_all,
    certificate_and_switch_over_servers_share_one_download,
    a_mini_program_buyer_pays_on_pay_v3_under_its_appid,
    the_public_key_migration_drill_fails_no_call_and_no_notify,
);

/// One purchase through an instance at `address`: a NATIVE order placed (prepay), paid at WeChat (the notify), looked
/// up (query), refunded (refund and its notify) — every answer and notify verified under whatever key signs it.
async fn full_cycle(app: &TestApp, address: &str, cookie: &str, step: &str) {
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{address}/api/v1/pay/orders"))
        .header("cookie", cookie)
        .json(&json!({"description": step, "total_fee": 10, "trade_type": "NATIVE"}))
        .send()
        .await
        .unwrap();
    let (s, b) = (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null));
    assert_eq!(s, 201, "{step}: prepay {b}");
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    app.sim.handle().pay_order(&no, None, None).unwrap();
    let status = async |want: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let st: Value = http
                .get(format!("{address}/api/v1/pay/orders/{no}"))
                .bearer_auth(wxkit_e2e::TEST_ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if st["status"] == want {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{step}: not {want}: {st}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    status("paid").await;
    let r = http
        .post(format!("{address}/api/v1/pay/orders/{no}/refunds"))
        .bearer_auth(wxkit_e2e::TEST_ADMIN_TOKEN)
        .json(&json!({"refund_fee": 10}))
        .send()
        .await
        .unwrap();
    let (s, b) = (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null));
    assert_eq!(s, 201, "{step}: refund {b}");
    status("refunded").await;
}

/// docs/architecture.md's migration guide, run on the server over HTTP: certificate mode → the switch-over on days 1,
/// 4 and 7 (public key and certificates) → certificates dropped once notifies arrive by public key (day 7, WeChat
/// still switching) → WeChat on the public key alone. Every prepay, query and refund answer and every notify at every
/// step verifies: WeChat signs an answer with the key the request's `Wechatpay-Serial` names, so an instance without
/// certificates must name its public key (before, it named nothing and got certificate-signed answers it could not
/// check: an outage).
async fn the_public_key_migration_drill_fails_no_call_and_no_notify(kind: DbKind) {
    let Some(app) = spawn_app_v3(kind, V3Mode::Certificates).await else {
        return;
    };
    let cookie = web_session(&app, "o-migrating").await;
    full_cycle(&app, &app.address, &cookie, "certificate mode").await;
    let files = app.files.as_ref().unwrap().path().to_owned();
    let instance = async |mode: V3Mode| {
        let env = wxkit_e2e::v3_env_files(&files, &app.sim, mode);
        let set: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let settings = wxkit_e2e::test_settings_with(&app.db.url, &app.sim, &set, &["WXKIT__PAY__KEY"]);
        wxkit_e2e::start_server_with(settings).await
    };
    // The merchant applies for a public key; WeChat starts switching: both keys configured.
    let (switching, _) = instance(V3Mode::SwitchOver).await;
    for day in [1u8, 4, 7] {
        let share = wechat_sim::switch_over_share(day);
        app.sim
            .handle()
            .set_v3_signing(TEST_MCH_ID, wechat_sim::SigningMode::SwitchOver, share)
            .unwrap();
        for i in 0..3 {
            full_cycle(&app, &switching, &cookie, &format!("switch-over day {day} #{i}")).await;
        }
    }
    // Day 7: notifies all arrive by public key, so the guide drops the certificates — WeChat is still switching.
    let (public_only, state) = instance(V3Mode::PublicKey).await;
    for i in 0..3 {
        full_cycle(
            &app,
            &public_only,
            &cookie,
            &format!("public key only, WeChat still switching #{i}"),
        )
        .await;
    }
    // WeChat done: the public key alone; `/v3/certificates` now answers RESOURCE_NOT_EXISTS, never asked.
    app.sim
        .handle()
        .set_v3_signing(TEST_MCH_ID, wechat_sim::SigningMode::PublicKey, 100)
        .unwrap();
    full_cycle(&app, &public_only, &cookie, "public key mode").await;
    let client = state.pay.as_ref().and_then(|p| p.v3()).unwrap().clone();
    assert_eq!(
        client.keys().downloads(),
        0,
        "public-key mode never calls /v3/certificates"
    );
    let failed = app.sim.handle().notifications().iter().filter(|n| !n.delivered).count();
    assert_eq!(failed, 0, "every notify was delivered and acknowledged");
}

async fn a_mini_program_buyer_pays_on_pay_v3_under_its_appid(kind: DbKind) {
    let Some(app) = spawn_app_v3(kind, V3Mode::PublicKey).await else {
        return;
    };
    let (token, _) = crate::login::mp_login(&app, "o-mp-buyer").await;
    let r = app
        .http
        .post(format!("{}/api/v1/pay/orders", app.address))
        .bearer_auth(&token)
        .json(&json!({"description": "小程序下单", "total_fee": 300, "trade_type": "JSAPI"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let b: Value = r.json().await.unwrap();
    // The mini program's wx.requestPayment takes the same v3 parameters, under its own appid.
    assert_eq!(b["pay_params"]["appId"], wxkit_e2e::TEST_MP_APP_ID);
    assert_eq!(b["pay_params"]["signType"], "RSA");
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    app.sim.handle().pay_order(&no, None, None).unwrap();
    wait_status(&app, &no, "paid").await;
    let sent = app.sim.handle().notifications();
    assert!(
        sent.iter()
            .any(|n| n.out_trade_no == no && n.api == "v3" && n.delivered)
    );
    let (s, b) = refund(&app, &no, json!({"refund_fee": 300})).await;
    assert_eq!(s, 201, "{b}");
    wait_status(&app, &no, "refunded").await;
}

/// The headers and body of the simulator's last delivery of `no`'s payment notify.
fn delivered_notify(app: &TestApp, no: &str) -> (Vec<(&'static str, String)>, String) {
    let n = app
        .sim
        .handle()
        .notifications()
        .into_iter()
        .find(|n| n.out_trade_no == no && n.kind == "payment" && n.delivered)
        .unwrap();
    (n.last_headers().to_vec(), n.body().to_owned())
}

async fn post_v3(app: &TestApp, headers: &[(&str, String)], body: String) -> (u16, Value) {
    let mut r = app
        .http
        .post(format!("{}/wechat/pay/v3/notify", app.address))
        .header("content-type", "application/json");
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    let r = r.body(body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn a_coupon_is_bought_paid_and_refunded_on_pay_v3(kind: DbKind) {
    let Some(app) = spawn_app_v3(kind, V3Mode::PublicKey).await else {
        return;
    };
    let shop = crate::coupons::shop(
        &app,
        json!({"title": "拿铁团购券", "value_fen": 2800, "price_fen": 990, "quantity": 3, "per_user_limit": 2}),
    )
    .await;
    let cookie = web_session(&app, "o-buyer").await;
    let (s, b) = order(
        &app,
        &cookie,
        json!({"campaign_id": shop.campaign_id, "total_fee": 990, "trade_type": "JSAPI"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    // v3 payment parameters: signType RSA, accepted by the cashier, which checks paySign with the merchant's key.
    let params = b["pay_params"].clone();
    assert_eq!(params["signType"], "RSA");
    let cashier = |pay_sign: &str| {
        let mut url = url::Url::parse(&format!("{}/_sim/pay/cashier", app.sim.base_url())).unwrap();
        for k in ["appId", "timeStamp", "nonceStr", "package", "signType"] {
            url.query_pairs_mut().append_pair(k, params[k].as_str().unwrap());
        }
        url.query_pairs_mut()
            .append_pair("paySign", pay_sign)
            .append_pair("return_url", &format!("{}/c/buy/{}", app.address, shop.campaign_id));
        url
    };
    let page = app
        .http
        .get(cashier(params["paySign"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("¥9.90") && page.contains("id=\"pay\""), "{page}");
    let forged = app
        .http
        .get(cashier("AAAA"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(forged.contains("支付验证签名失败"), "{forged}");

    // Paid; WeChat delivers the notify twice at once: one payment, one coupon.
    set_pay_faults(&app, json!({"duplicate_notifies": 1})).await;
    let transaction_id = app.sim.handle().pay_order(&no, None, None).unwrap();
    wait_paid(&app, &cookie, &no).await;
    all_notifies_delivered(&app, &no).await;
    let (_, st) = order_status(&app, Some(&cookie), &no).await;
    assert_eq!(st["transaction_id"], transaction_id.as_str());
    let code = st["coupon_code"].as_str().unwrap().to_owned();
    assert_eq!(
        coupons_held(&app, shop.campaign_id, "o-buyer"),
        vec![(code.clone(), "issued".to_owned())]
    );
    assert_eq!(notifications(&app, "applied").await.len(), 1);

    // A lost notify: the reconciler asks WeChat (v3 query) and settles it through the same path.
    set_pay_faults(&app, json!({"drop_notifies": 1})).await;
    let (_, b) = order(
        &app,
        &cookie,
        json!({"description": "PC", "total_fee": 1, "trade_type": "NATIVE"}),
    )
    .await;
    let no2 = b["out_trade_no"].as_str().unwrap().to_owned();
    assert!(b["code_url"].as_str().unwrap().starts_with("weixin://"), "{b}");
    app.sim.handle().pay_order(&no2, None, None).unwrap();
    wait_paid(&app, &cookie, &no2).await;

    // Refund the bought coupon: requested, then settled by the REFUND.SUCCESS notify; the coupon is void.
    let (s, b) = refund(&app, &no, json!({"refund_fee": 990, "reason": "不想要了"})).await;
    assert_eq!((s, b["status"].as_str()), (201, Some("requested")), "{b}");
    let st = wait_status(&app, &no, "refunded").await;
    assert_eq!(st["refunds"][0]["status"], "succeeded", "{st}");
    assert_eq!(
        coupons_held(&app, shop.campaign_id, "o-buyer"),
        vec![(code, "void".to_owned())]
    );
    // Nothing left to refund: refused here, before WeChat hears of it.
    assert_eq!(refund(&app, &no, json!({"refund_fee": 1})).await.0, 409);

    // An ABNORMAL refund (the payer's account cannot take it) is a failed refund for the operator.
    app.sim.handle().set_v3_abnormal_refunds(1);
    let (s, _) = refund(&app, &no2, json!({"refund_fee": 1})).await;
    assert_eq!(s, 201);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, st) = order_status(&app, None, &no2).await;
        if st["refunds"][0]["status"] == "failed" {
            assert_eq!(st["status"], "paid", "{st}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{st}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Closing an unpaid order goes through v3's close (after WeChat's 5 minutes).
    let (_, b) = order(
        &app,
        &cookie,
        json!({"description": "x", "total_fee": 5, "trade_type": "NATIVE"}),
    )
    .await;
    let no3 = b["out_trade_no"].as_str().unwrap().to_owned();
    app.clock.advance_secs(301);
    let r = app
        .http
        .post(format!("{}/api/v1/pay/orders/{no3}/close", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        app.sim.handle().pay_order(&no3, None, None).is_err(),
        "closed at WeChat too"
    );
}

async fn forged_probed_and_replayed_v3_notifies_pay_once_or_not_at_all(kind: DbKind) {
    let Some(app) = spawn_app_v3(kind, V3Mode::PublicKey).await else {
        return;
    };
    let cookie = web_session(&app, "o-buyer").await;
    let (_, b) = order(
        &app,
        &cookie,
        json!({"description": "r", "total_fee": 1800, "trade_type": "NATIVE"}),
    )
    .await;
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    app.sim.handle().pay_order(&no, None, None).unwrap();
    wait_paid(&app, &cookie, &no).await;
    all_notifies_delivered(&app, &no).await;
    let (headers, body) = delivered_notify(&app, &no);

    // No headers, a probe, an altered body, a foreign serial: 401 with WeChat's FAIL body, nothing applied.
    let (s, b) = post_v3(&app, &[], body.clone()).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("FAIL")), "{b}");
    let with = |name: &str, value: &str| {
        let mut h = headers.clone();
        for (k, v) in h.iter_mut() {
            if k.eq_ignore_ascii_case(name) {
                *v = value.to_owned();
            }
        }
        h
    };
    assert_eq!(
        post_v3(&app, &with("Wechatpay-Signature", "WECHATPAY/SIGNTEST/x"), body.clone())
            .await
            .0,
        401
    );
    assert_eq!(
        post_v3(&app, &headers, body.replace("支付成功", "支付失败")).await.0,
        401
    );
    assert_eq!(
        post_v3(
            &app,
            &with("Wechatpay-Serial", "PUB_KEY_ID_0000000000000000000000000000000000"),
            body.clone()
        )
        .await
        .0,
        401
    );
    assert_eq!(
        post_v3(&app, &with("Wechatpay-Timestamp", "1600000000"), body.clone())
            .await
            .0,
        401,
        "stale"
    );

    // The genuine notify replayed a hundred times at once (within its five minutes): acknowledged, applied once.
    let calls = (0..100).map(|_| post_v3(&app, &headers, body.clone()));
    for (s, _) in futures_util::future::join_all(calls).await {
        assert_eq!(s, 204);
    }
    assert_eq!(notifications(&app, "applied").await.len(), 1);
    assert!(notifications(&app, "duplicate").await.len() >= 100);
    let (_, st) = order_status(&app, None, &no).await;
    assert_eq!(st["status"], "paid");
}

async fn certificate_and_switch_over_servers_share_one_download(kind: DbKind) {
    for mode in [V3Mode::Certificates, V3Mode::SwitchOver] {
        let Some(app) = spawn_app_v3(kind, mode).await else {
            return;
        };
        if mode == V3Mode::SwitchOver {
            app.sim
                .handle()
                .set_v3_signing(TEST_MCH_ID, wechat_sim::SigningMode::SwitchOver, 50)
                .unwrap();
        }
        let cookie = web_session(&app, "o-buyer").await;
        let mut nos = Vec::new();
        for _ in 0..4 {
            let (s, b) = order(
                &app,
                &cookie,
                json!({"description": "c", "total_fee": 10, "trade_type": "JSAPI"}),
            )
            .await;
            assert_eq!(s, 201, "{b}");
            let no = b["out_trade_no"].as_str().unwrap().to_owned();
            app.sim.handle().pay_order(&no, None, None).unwrap();
            // Paid before the next: a buyer holds at most `pay.max_open_orders` unpaid orders.
            wait_paid(&app, &cookie, &no).await;
            nos.push(no);
        }
        for no in &nos {
            wait_paid(&app, &cookie, no).await;
        }
        let client = app.state.pay.as_ref().and_then(|p| p.v3()).unwrap().clone();
        assert_eq!(client.keys().downloads(), 1, "{mode:?}: one download for everything");
        // A second instance on the same database takes the certificates from it instead of downloading.
        let files = app.files.as_ref().unwrap().path().to_owned();
        let env = wxkit_e2e::v3_env_files(&files, &app.sim, mode);
        let set: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let settings = wxkit_e2e::test_settings_with(&app.db.url, &app.sim, &set, &["WXKIT__PAY__KEY"]);
        let (address, state) = wxkit_e2e::start_server_with(settings).await;
        let second = state.pay.as_ref().and_then(|p| p.v3()).unwrap().clone();
        let b: Value = reqwest::Client::new()
            .post(format!("{address}/api/v1/pay/orders"))
            .header("cookie", &cookie)
            .json(&json!({"description": "c", "total_fee": 10, "trade_type": "NATIVE"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(b["code_url"].is_string(), "{b}");
        assert_eq!(
            second.keys().downloads(),
            0,
            "{mode:?}: the second instance downloaded nothing"
        );
    }
}

/// `wxkit pay v3 certificates` against the simulator: the configured merchant's certificates, checked and listed;
/// a wrong APIv3 key cannot open them.
#[tokio::test]
async fn the_cli_downloads_and_lists_platform_certificates() {
    let sim = wxkit_e2e::spawn_sim().await;
    let files = tempfile::tempdir().unwrap();
    let env = wxkit_e2e::v3_env(files.path(), &sim, V3Mode::Certificates);
    let serial = sim.handle().v3_merchant(TEST_MCH_ID).unwrap().platform_serial;
    let cli = |args: &'static [&'static str], extra: Vec<(String, String)>| {
        let mut env = env.clone();
        env.push(("WXKIT__PAY__MCH_ID".into(), TEST_MCH_ID.into()));
        env.push(("WXKIT__PAY__BASE_URL".into(), sim.base_url()));
        env.extend(extra);
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
    let (code, stdout, stderr) = cli(&["pay", "v3", "certificates"], vec![]).await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&serial) && stdout.contains("2036-"), "{stdout}");
    // After a rotation both are listed, as JSON on request.
    let new_serial = sim.handle().rotate_platform_certificate(TEST_MCH_ID).unwrap();
    let (code, stdout, _) = cli(&["--json", "pay", "v3", "certificates"], vec![]).await.unwrap();
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let serials: Vec<&str> = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap())
        .collect();
    assert_eq!(serials, vec![serial.as_str(), new_serial.as_str()]);
    let (code, _, stderr) = cli(
        &["pay", "v3", "certificates"],
        vec![(
            "WXKIT__PAY__V3__API_V3_KEY".into(),
            "vutsrqponmlkjihgfedcba9876543210".into(),
        )],
    )
    .await
    .unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("does not decrypt"), "{stderr}");
    sim.stop().await;
}

/// A Python with the `wechatpayv3` package (PyPI): `WXKIT_PYTHON` (CI puts one in a virtualenv), else `python3`.
fn wechatpayv3_python() -> Option<String> {
    let python = std::env::var("WXKIT_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import wechatpayv3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    assert!(
        !wxkit_e2e::is_ci(),
        "CI=true: wechatpayv3 must be installed (.ci/run puts it in a virtualenv, WXKIT_PYTHON)"
    );
    eprintln!("SKIP: no Python with wechatpayv3 (pip install wechatpayv3, or set WXKIT_PYTHON)");
    None
}

/// An independent client runs unmodified against the simulator (tests/interop/wechatpayv3_sim.py): the PyPI package
/// `wechatpayv3` places, queries, closes and refunds orders, downloads platform certificates and verifies and
/// decrypts notifies, in certificate mode and in public-key mode. (Before the simulator sent
/// `Wechatpay-Signature-Type`, as WeChat does, wechatpayv3 refused every answer and notify.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechatpayv3_runs_unmodified_against_the_simulator() {
    let Some(python) = wechatpayv3_python() else { return };
    for (mode, sim_mode) in [
        ("certificate", wechat_sim::SigningMode::Certificate),
        ("public_key", wechat_sim::SigningMode::PublicKey),
    ] {
        let sim = wxkit_e2e::spawn_sim().await;
        let info = wxkit_testkit::register_v3_merchant(&sim, sim_mode);
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let key = write("apiclient_key.pem", wechat_sim::SANDBOX_MERCHANT_KEY);
        let public_key = write("pub_key.pem", &info.public_key_pem);
        let platform = write("platform.pem", &info.platform_certificate_pem);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/wechatpayv3_sim.py");
        let (python, script) = (python.clone(), script.to_owned());
        let envs = [
            ("SIM", sim.base_url()),
            ("MODE", mode.to_owned()),
            ("MCHID", TEST_MCH_ID.to_owned()),
            ("APPID", wxkit_e2e::TEST_APP_ID.to_owned()),
            ("KEY", key),
            ("SERIAL", wechat_sim::SANDBOX_MERCHANT_SERIAL.to_owned()),
            ("APIV3_KEY", wxkit_testkit::TEST_API_V3_KEY.to_owned()),
            ("PUBLIC_KEY", public_key),
            ("PUBLIC_KEY_ID", info.public_key_id.clone()),
            ("PLATFORM_CERT", platform),
            // 商家券's sends are signed with the API v2 key (the simulator knows it for this merchant).
            ("V2_KEY", wxkit_e2e::TEST_PAY_KEY.to_owned()),
        ];
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(python)
                .arg(script)
                .envs(envs)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{text}");
        assert!(out.status.success(), "wechatpayv3 in {mode} mode:\n{text}");
        assert!(text.contains("all calls and notifies verified"), "{text}");
    }
}

/// Decrypts a base64 RSA-OAEP (SHA-1) ciphertext with a private key file through OpenSSL's command line: an
/// independent implementation checking ours. `None` when there is no `openssl`.
fn openssl_oaep_decrypt(key_path: &str, sealed: &str) -> Option<String> {
    use base64::Engine as _;
    use std::io::Write as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(sealed.trim()).unwrap();
    let mut child = std::process::Command::new("openssl")
        .args(["pkeyutl", "-decrypt", "-inkey", key_path])
        .args(["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take().unwrap().write_all(&raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl refused the ciphertext");
    Some(String::from_utf8(out.stdout).unwrap())
}

/// Sensitive fields: the client encrypts under the key its requests name (the public key here), and
/// `wxkit pay v3 encrypt` does the same from the command line; OpenSSL decrypts both with the simulator's private key.
#[tokio::test]
async fn sensitive_fields_are_encrypted_for_the_key_requests_name() {
    let Some(app) = spawn_app_v3(DbKind::Sqlite, V3Mode::PublicKey).await else {
        return;
    };
    let client = app.state.pay.as_ref().and_then(|p| p.v3()).unwrap().clone();
    let (serial, sealed) = client.encrypt_sensitive("张三").await.unwrap();
    assert_eq!(serial, wechat_sim::public_key_id(TEST_MCH_ID));
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/wechat-sim/keys/wechatpay-public-key.key"
    );
    let Some(plain) = openssl_oaep_decrypt(key, &sealed) else {
        eprintln!("SKIP: no openssl to cross-check with");
        return;
    };
    assert_eq!(plain, "张三");
    let files = app.files.as_ref().unwrap().path().join("pub_key.pem");
    let out = std::process::Command::new(wxkit_e2e::wxkit_bin())
        .args(["pay", "v3", "encrypt", "--public-key"])
        .arg(&files)
        .arg("13800138000")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sealed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(openssl_oaep_decrypt(key, &sealed).unwrap(), "13800138000");
    // Neither key nor a PEM that is not one: exit 2 with the reason.
    let out = std::process::Command::new(wxkit_e2e::wxkit_bin())
        .args(["pay", "v3", "encrypt", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// H5 on Pay v3 (and v2): `trade_type: "H5"` answers the cashier page on the simulator's host (WeChat's
/// `wx.tenpay.com` path), which shows the order; v2 sends `scene_info` (the simulator refuses MWEB without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h5_orders_answer_wechats_cashier_page_on_v3_and_v2() {
    for v3 in [true, false] {
        let app = if v3 {
            spawn_app_v3(DbKind::Sqlite, V3Mode::PublicKey).await
        } else {
            wxkit_e2e::spawn_app(DbKind::Sqlite).await
        };
        let Some(app) = app else { return };
        let cookie = web_session(&app, "o-h5-buyer").await;
        let (s, b) = order(
            &app,
            &cookie,
            json!({"description": "H5", "total_fee": 10, "trade_type": "H5"}),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        let url = b["h5_url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!(
                "{}/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=",
                app.sim.base_url()
            )),
            "{url}"
        );
        let page = reqwest::get(format!("{url}&redirect_url=http%3A%2F%2F127.0.0.1%2Fback"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("0.10") && page.contains("id=\"pay\""), "{page}");
        // A second order gets its own page too.
        let (_, again) = order(
            &app,
            &cookie,
            json!({"description": "H5", "total_fee": 10, "trade_type": "H5"}),
        )
        .await;
        assert!(again["h5_url"].is_string(), "{again}");
    }
}
