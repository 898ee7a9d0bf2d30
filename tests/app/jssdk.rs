//! JS-SDK config: signed with the shared jsapi_ticket, checked by the simulator as WeChat checks it.

use serde_json::{Value, json};
use wxkit_e2e::{DbKind, TestApp, spawn_app};

on_both_backends!(the_jssdk_config_verifies_at_wechat_and_refuses_foreign_pages);

async fn config(app: &TestApp, query: &str) -> (u16, Value) {
    let r = app
        .http
        .get(format!("{}/api/v1/jssdk/config?{query}", app.address))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// What the simulator's `wx.config` says of a config for `page`.
async fn wechat_says(app: &TestApp, cfg: &Value, page: &str) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{}/_sim/js/verify", app.sim.base_url()))
        .header("content-type", "text/plain")
        .body(
            json!({"appId": cfg["appId"], "timestamp": cfg["timestamp"], "nonceStr": cfg["nonceStr"],
                   "signature": cfg["signature"], "url": page})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["errMsg"].as_str().unwrap().to_owned()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn the_jssdk_config_verifies_at_wechat_and_refuses_foreign_pages(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let page = format!("{}/c/some-page?x=1", app.address);
    let (s, cfg) = config(&app, &format!("url={}", enc(&format!("{page}#section")))).await;
    assert_eq!(s, 200, "{cfg}");
    assert_eq!(cfg["appId"], wxkit_e2e::TEST_APP_ID);
    assert_eq!(
        cfg["jsApiList"],
        json!(["updateAppMessageShareData", "updateTimelineShareData"])
    );
    assert_eq!(cfg["nonceStr"].as_str().unwrap().len(), 16);
    // WeChat signs the URL without its fragment: the page's own location (fragment and all) verifies.
    assert_eq!(wechat_says(&app, &cfg, &format!("{page}#section")).await, "config:ok");
    // Another page, or a tampered signature: WeChat's "invalid signature".
    assert_eq!(
        wechat_says(&app, &cfg, &format!("{}/other", app.address)).await,
        "config:invalid signature"
    );
    let mut tampered = cfg.clone();
    tampered["signature"] = json!("0".repeat(40));
    assert_eq!(wechat_says(&app, &tampered, &page).await, "config:invalid signature");

    // Many configs, one ticket fetch.
    for _ in 0..5 {
        assert_eq!(config(&app, &format!("url={}", enc(&page))).await.0, 200);
    }
    assert_eq!(app.sim.handle().calls("/cgi-bin/ticket/getticket"), 1);
    let (_, custom) = config(&app, &format!("url={}&apis=addCard,chooseWXPay", enc(&page))).await;
    assert_eq!(custom["jsApiList"], json!(["addCard", "chooseWXPay"]));

    // Only this account's JS domains, only http(s), and a URL at all.
    for bad in [
        format!("url={}", enc("https://evil.example/page")),
        format!("url={}", enc("javascript:alert(1)")),
        format!("url={}", enc("not a url")),
        "".to_owned(),
    ] {
        let (s, b) = config(&app, &bad).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert!(b["error"]["message"].is_string());
    }
    // WeChat down: 503 with a retry hint (a fresh server has no ticket cached).
    let (second, _) = wxkit_e2e::start_server_with(wxkit_e2e::test_settings_with(
        &wxkit_e2e::TestDatabase::create(DbKind::Sqlite).unwrap().url,
        &app.sim,
        &[],
        &[],
    ))
    .await;
    app.sim.handle().inject(wechat_sim::Fault {
        path: "/cgi-bin/token".into(),
        count: 10,
        errcode: None,
        errmsg: None,
        http_status: Some(503),
        delay_ms: None,
    });
    let r = app
        .http
        .get(format!(
            "{second}/api/v1/jssdk/config?url={}",
            enc(&format!("{second}/x"))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
}
