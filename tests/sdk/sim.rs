//! The simulator answers like WeChat, strictly, over HTTP; and its control API validates its input.

use serde_json::{Value, json};
use wxkit_testkit::{TEST_APP_ID, TEST_APP_SECRET, spawn_sim};

async fn get(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn token(base: &str) -> String {
    let body = get(format!(
        "{base}/cgi-bin/token?grant_type=client_credential&appid={TEST_APP_ID}&secret={TEST_APP_SECRET}"
    ))
    .await;
    assert_eq!(body["expires_in"], 7200);
    body["access_token"].as_str().unwrap().to_owned()
}

async fn ticket_errcode(base: &str, token: &str) -> i64 {
    let body = get(format!(
        "{base}/cgi-bin/ticket/getticket?access_token={token}&type=jsapi"
    ))
    .await;
    body["errcode"].as_i64().unwrap()
}

#[tokio::test]
async fn credentials_are_checked_with_wechats_errcodes() {
    let sim = spawn_sim().await;
    let base = sim.base_url();
    let cases = [
        (
            format!("grant_type=client_credential&appid=wxnope&secret={TEST_APP_SECRET}"),
            40013,
        ),
        (
            format!("grant_type=client_credential&appid={TEST_APP_ID}&secret=bad"),
            40125,
        ),
        (
            format!("grant_type=password&appid={TEST_APP_ID}&secret={TEST_APP_SECRET}"),
            40002,
        ),
        (format!("grant_type=client_credential&secret={TEST_APP_SECRET}"), 41002),
        (format!("grant_type=client_credential&appid={TEST_APP_ID}"), 41004),
    ];
    for (query, code) in cases {
        let body = get(format!("{base}/cgi-bin/token?{query}")).await;
        assert_eq!(body["errcode"], code, "{query}");
        assert!(
            body["errmsg"].as_str().unwrap().contains("rid:"),
            "errmsg carries a request id like WeChat's"
        );
        assert!(body.get("access_token").is_none());
    }
}

#[tokio::test]
async fn a_replaced_token_works_for_five_minutes_then_gets_40001() {
    let sim = spawn_sim().await;
    let base = sim.base_url();
    let old = token(&base).await;
    let new = token(&base).await;
    assert_ne!(old, new);

    assert_eq!(ticket_errcode(&base, &old).await, 0, "still inside the overlap");
    sim.handle().advance_clock(301);
    assert_eq!(ticket_errcode(&base, &old).await, 40001);
    assert_eq!(ticket_errcode(&base, &new).await, 0);
}

#[tokio::test]
async fn expired_missing_and_unknown_tokens_get_their_errcodes() {
    let sim = spawn_sim().await;
    let base = sim.base_url();
    let t = token(&base).await;
    assert_eq!(ticket_errcode(&base, "not-a-token").await, 40001);
    let missing = get(format!("{base}/cgi-bin/ticket/getticket?type=jsapi")).await;
    assert_eq!(missing["errcode"], 41001);
    let bad_type = get(format!("{base}/cgi-bin/ticket/getticket?access_token={t}&type=nope")).await;
    assert_eq!(bad_type["errcode"], 40097);

    sim.handle().advance_clock(7200);
    assert_eq!(ticket_errcode(&base, &t).await, 42001);
}

#[tokio::test]
async fn tickets_stay_the_same_until_they_expire() {
    let sim = spawn_sim().await;
    let base = sim.base_url();
    let t = token(&base).await;
    let url = format!("{base}/cgi-bin/ticket/getticket?access_token={t}&type=wx_card");
    let first = get(url.clone()).await;
    let second = get(url.clone()).await;
    assert_eq!(first["ticket"], second["ticket"]);
    assert_eq!(first["errcode"], 0);
    sim.handle().advance_clock(7000);
    let t2 = token(&base).await;
    sim.handle().advance_clock(300);
    let third = get(format!(
        "{base}/cgi-bin/ticket/getticket?access_token={t2}&type=wx_card"
    ))
    .await;
    assert_ne!(first["ticket"], third["ticket"]);
}

#[tokio::test]
async fn stable_token_is_stable_and_force_refresh_is_rate_limited() {
    let sim = spawn_sim().await;
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let call = |force: bool| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.post(format!("{base}/cgi-bin/stable_token"))
                .json(&json!({"grant_type": "client_credential", "appid": TEST_APP_ID, "secret": TEST_APP_SECRET, "force_refresh": force}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let a = call(false).await;
    let b = call(false).await;
    assert_eq!(a["access_token"], b["access_token"]);
    let forced = call(true).await;
    assert_ne!(forced["access_token"], a["access_token"]);
    let too_soon = call(true).await;
    assert_eq!(too_soon["errcode"], 45011);
    // Not JSON at all.
    let junk: Value = http
        .post(format!("{base}/cgi-bin/stable_token"))
        .body("appid=x")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(junk["errcode"], 47001);
    // The classic endpoint is isolated: a classic token does not replace the stable one.
    let _classic = token(&base).await;
    assert_eq!(ticket_errcode(&base, forced["access_token"].as_str().unwrap()).await, 0);
}

#[tokio::test]
async fn the_control_api_injects_faults_counts_calls_and_resets() {
    let sim = spawn_sim().await;
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/_sim/faults"))
        .json(&json!({"path": "/cgi-bin/token", "count": 2, "http_status": 502}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let url = format!("{base}/cgi-bin/token?grant_type=client_credential&appid={TEST_APP_ID}&secret={TEST_APP_SECRET}");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 502);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 502);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);

    let counters: Value = get(format!("{base}/_sim/counters")).await;
    assert_eq!(counters["counters"]["/cgi-bin/token"], 3);

    let before = get(format!("{base}/_sim/clock")).await["now"].as_i64().unwrap();
    let advanced: Value = http
        .post(format!("{base}/_sim/clock/advance"))
        .json(&json!({"seconds": 600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(advanced["now"].as_i64().unwrap() >= before + 600);

    let reset = http.post(format!("{base}/_sim/reset")).send().await.unwrap();
    assert_eq!(reset.status(), 204);
    let counters: Value = get(format!("{base}/_sim/counters")).await;
    assert_eq!(counters["counters"], json!({}));
}

#[tokio::test]
async fn the_control_api_rejects_bad_input_with_the_error_envelope() {
    let sim = spawn_sim().await;
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let bodies = [
        ("/_sim/faults", json!({"path": "/cgi-bin/token"})),
        ("/_sim/faults", json!({"path": "cgi-bin/token", "errcode": 1})),
        (
            "/_sim/faults",
            json!({"path": "/cgi-bin/token", "count": 0, "errcode": 1}),
        ),
        ("/_sim/faults", json!({"path": "/cgi-bin/token", "http_status": 99})),
        ("/_sim/clock/advance", json!({"seconds": -5})),
        ("/_sim/clock/advance", json!({"secs": 5})),
        ("/_sim/apps", json!({"appid": "", "secret": "x"})),
    ];
    for (path, body) in bodies {
        let response = http.post(format!("{base}{path}")).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{path} {body}");
        let json: Value = response.json().await.unwrap();
        assert!(
            json["error"]["code"].is_string() && json["error"]["message"].is_string(),
            "{json}"
        );
    }
    let unknown = http.get(format!("{base}/no/such/api")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
}
