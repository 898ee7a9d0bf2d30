//! Login: H5 (web OAuth), mini program (login, phone, profile), and scanning a mini-program code to log in on a
//! website (scene lifecycle over the WebSocket, two instances on one PostgreSQL).

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use wechat_sim::SimUser;
use wxkit_e2e::{DbKind, TEST_APP_ID, TEST_MP_APP_ID, TestApp, spawn_app};

on_both_backends!(
    h5_login_returns_to_the_page_and_logout_revokes_the_session,
    miniprogram_login_phone_profile_and_refused_codes,
    a_unionid_links_the_web_and_mini_program_logins,
    the_scene_lifecycle_over_the_websocket,
    scenes_expire_cancel_and_refuse_strangers,
);

pub(crate) fn sim_user(appid: &str, openid: &str, nickname: &str, unionid: Option<&str>) -> SimUser {
    SimUser {
        appid: appid.into(),
        openid: openid.into(),
        nickname: nickname.into(),
        sex: 0,
        province: String::new(),
        city: String::new(),
        country: String::new(),
        headimgurl: "https://thirdwx.qlogo.cn/a.png".into(),
        unionid: unionid.map(Into::into),
        snapshot: false,
        blocked: false,
        phone: None,
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn body(r: reqwest::Response) -> (StatusCode, Value) {
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Follows `/auth/wechat?...` through the simulator's authorize page as `openid`; returns the callback response.
pub(crate) async fn web_login(app: &TestApp, http: &reqwest::Client, query: &str, openid: &str) -> reqwest::Response {
    let start = http
        .get(format!("{}/auth/wechat?{query}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302, "{}", start.text().await.unwrap_or_default());
    let authorize = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    let code = app
        .sim
        .handle()
        .issue_oauth_code(TEST_APP_ID, openid, &q["scope"])
        .unwrap();
    http.get(format!(
        "{}/auth/callback?code={code}&state={}",
        app.address,
        url::form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>()
    ))
    .header("cookie", wxkit_e2e::oauth_binding(&start))
    .send()
    .await
    .unwrap()
}

pub(crate) fn session_cookie(r: &reqwest::Response) -> String {
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("wxkit_session="))
        .expect("a session cookie");
    set.split(';').next().unwrap().to_owned()
}

async fn me(app: &TestApp, cookie: Option<&str>, bearer: Option<&str>) -> (StatusCode, Value) {
    let mut r = app.http.get(format!("{}/api/v1/me", app.address));
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    body(r.send().await.unwrap()).await
}

async fn h5_login_returns_to_the_page_and_logout_revokes_the_session(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    app.sim
        .handle()
        .add_user(sim_user(TEST_APP_ID, "o-web-1", "小红", Some("u-1")));
    let http = client();
    // userinfo scope: the profile comes along.
    let back = web_login(&app, &http, "return=/account%3Ftab%3D2&scope=userinfo", "o-web-1").await;
    assert_eq!(back.status(), 302);
    assert_eq!(
        back.headers()["location"],
        "/account?tab=2",
        "back where the user started"
    );
    let raw = back
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("wxkit_session="))
        .unwrap();
    assert!(raw.contains("HttpOnly") && raw.contains("SameSite=Lax"), "{raw}");
    assert!(!raw.contains("Secure"), "plain http base URL: no Secure flag ({raw})");
    let cookie = session_cookie(&back);
    let (s, b) = me(&app, Some(&cookie), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["user"]["openid"], "o-web-1");
    assert_eq!(b["user"]["nickname"], "小红");
    assert_eq!(b["user"]["unionid"], "u-1");
    // The account page shows the user and a logout form.
    let page = http
        .get(format!("{}/account", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("小红"), "{page}");

    // Logout needs a same-origin request: a cross-site form post is refused and changes nothing.
    let forged = http
        .post(format!("{}/auth/logout", app.address))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(me(&app, Some(&cookie), None).await.0, 200);
    let out = http
        .post(format!("{}/auth/logout", app.address))
        .header("cookie", &cookie)
        .header("origin", &app.address)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/");
    // The cookie a thief copied earlier is worthless now: the session was revoked on the server.
    let (s, b) = me(&app, Some(&cookie), None).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{b}"
    );

    // The page's own form token also works (no Origin header, as some WebViews send).
    let again = web_login(&app, &http, "return=/account", "o-web-1").await;
    let cookie = session_cookie(&again);
    let page = http
        .get(format!("{}/account", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let out = http
        .post(format!("{}/auth/logout", app.address))
        .header("cookie", &cookie)
        .form(&[("csrf", token.as_str()), ("return", "/login")])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/login");
    assert_eq!(me(&app, Some(&cookie), None).await.0, 401);

    // Only same-site return paths; only the two scopes.
    for bad in [
        "return=//evil.example/x",
        "return=https://evil.example/",
        "scope=snsapi_login",
    ] {
        let r = http
            .get(format!("{}/auth/wechat?{bad}", app.address))
            .send()
            .await
            .unwrap();
        let (s, b) = body(r).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert!(b["error"]["message"].is_string());
    }
    // No session: 401 with the envelope.
    let (s, b) = me(&app, None, None).await;
    assert_eq!((s.as_u16(), b["error"]["code"].as_str()), (401, Some("unauthorized")));
}

/// `POST /api/v1/miniprogram/login` with a fresh `wx.login` code for `openid`.
pub(crate) async fn mp_login(app: &TestApp, openid: &str) -> (String, Value) {
    let code = app.sim.handle().issue_js_code(TEST_MP_APP_ID, openid).unwrap();
    let (s, b) = body(
        app.http
            .post(format!("{}/api/v1/miniprogram/login", app.address))
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    (b["token"].as_str().unwrap().to_owned(), b["user"].clone())
}

async fn mp_post(app: &TestApp, path: &str, token: Option<&str>, json: Value) -> (StatusCode, Value) {
    let mut r = app.http.post(format!("{}/api/v1{path}", app.address)).json(&json);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    body(r.send().await.unwrap()).await
}

async fn miniprogram_login_phone_profile_and_refused_codes(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    app.sim.handle().add_user(SimUser {
        phone: Some("13912345678".into()),
        ..sim_user(TEST_MP_APP_ID, "o-mp-1", "阿明", None)
    });
    let code = app.sim.handle().issue_js_code(TEST_MP_APP_ID, "o-mp-1").unwrap();
    let (s, b) = mp_post(&app, "/miniprogram/login", None, json!({"code": code})).await;
    assert_eq!(s, 200, "{b}");
    let token = b["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 43, "a long random token");
    assert!(b["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(b["user"]["mini_openid"], "o-mp-1");
    let text = b.to_string();
    let session_key = app.sim.handle().session_key(TEST_MP_APP_ID, "o-mp-1").unwrap();
    assert!(
        !text.contains(&session_key),
        "the session_key never leaves the server: {text}"
    );
    assert!(!text.contains("session_key"), "{text}");
    // The same code again: WeChat says it was used, and the client is told so, with WeChat's errcode.
    let (s, b) = mp_post(&app, "/miniprogram/login", None, json!({"code": code})).await;
    assert_eq!(
        (
            s.as_u16(),
            b["error"]["code"].as_str(),
            b["error"]["wechat_errcode"].as_i64()
        ),
        (400, Some("code_used"), Some(40163)),
        "{b}"
    );
    let (s, b) = mp_post(&app, "/miniprogram/login", None, json!({"code": "nonsense"})).await;
    assert_eq!(
        (
            s.as_u16(),
            b["error"]["code"].as_str(),
            b["error"]["wechat_errcode"].as_i64()
        ),
        (400, Some("invalid_code"), Some(40029)),
        "{b}"
    );
    let (s, _) = mp_post(&app, "/miniprogram/login", None, json!({"code": ""})).await;
    assert_eq!(s, 400);
    let (s, _) = mp_post(&app, "/miniprogram/login", None, json!({"nope": 1})).await;
    assert_eq!(s, 400);
    // The bearer token works for /me.
    let (s, b) = me(&app, None, Some(&token)).await;
    assert_eq!((s.as_u16(), b["user"]["mini_openid"].as_str()), (200, Some("o-mp-1")));

    // Phone: the current API, code from the getPhoneNumber button.
    let phone_code = app.sim.handle().issue_phone_code(TEST_MP_APP_ID, "o-mp-1").unwrap();
    let (s, b) = mp_post(&app, "/miniprogram/phone", None, json!({"code": phone_code})).await;
    assert_eq!(s, 401, "no token: {b}");
    let (s, b) = mp_post(&app, "/miniprogram/phone", Some(&token), json!({"code": phone_code})).await;
    assert_eq!(
        (s.as_u16(), b["user"]["phone"].as_str()),
        (200, Some("13912345678")),
        "{b}"
    );
    let (s, b) = mp_post(&app, "/miniprogram/phone", Some(&token), json!({"code": phone_code})).await;
    assert_eq!(
        (s.as_u16(), b["error"]["wechat_errcode"].as_i64()),
        (400, Some(40029)),
        "a phone code is single use: {b}"
    );
    // Another user's phone code is not this user's phone (WeChat checks the openid we pass).
    let other = app.sim.handle().issue_phone_code(TEST_MP_APP_ID, "o-mp-2").unwrap();
    let (s, b) = mp_post(&app, "/miniprogram/phone", Some(&token), json!({"code": other})).await;
    assert_eq!(
        (s.as_u16(), b["error"]["wechat_errcode"].as_i64()),
        (400, Some(40003)),
        "{b}"
    );

    // Profile through the older encryptedData route.
    let encrypted: Value = reqwest::Client::new()
        .post(format!("{}/_sim/miniprogram/encrypt", app.sim.base_url()))
        .json(&json!({"appid": TEST_MP_APP_ID, "openid": "o-mp-1",
                      "data": {"openId": "o-mp-1", "nickName": "阿明", "avatarUrl": "https://thirdwx.qlogo.cn/m.png", "unionId": "u-mp-1"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (s, b) = mp_post(
        &app,
        "/miniprogram/profile",
        Some(&token),
        json!({"encrypted_data": encrypted["encryptedData"], "iv": encrypted["iv"]}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["user"]["nickname"].as_str(), b["user"]["unionid"].as_str()),
        (Some("阿明"), Some("u-mp-1"))
    );
    // Tampered ciphertext: refused, nothing changed.
    let mut bad = encrypted["encryptedData"].as_str().unwrap().to_owned();
    bad.replace_range(0..4, "AAAA");
    let (s, b) = mp_post(
        &app,
        "/miniprogram/profile",
        Some(&token),
        json!({"encrypted_data": bad, "iv": encrypted["iv"]}),
    )
    .await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (400, Some("invalid_data")),
        "{b}"
    );

    // The token is revocable: after logout it opens nothing.
    let (token2, _) = mp_login(&app, "o-mp-1").await;
    let r = app
        .http
        .post(format!("{}/api/v1/miniprogram/logout", app.address))
        .bearer_auth(&token2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(me(&app, None, Some(&token2)).await.0, 401);
    assert_eq!(me(&app, None, Some(&token)).await.0, 200, "other sessions stay");

    // WeChat down: a 503 with a retry hint, never a 500.
    app.sim.handle().inject(wechat_sim::Fault {
        path: "/sns/jscode2session".into(),
        count: 3,
        errcode: None,
        errmsg: None,
        http_status: Some(503),
        delay_ms: None,
    });
    let code = app.sim.handle().issue_js_code(TEST_MP_APP_ID, "o-mp-1").unwrap();
    let r = app
        .http
        .post(format!("{}/api/v1/miniprogram/login", app.address))
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("retry-after"));
    let (s, b) = body(r).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (503, Some("wechat_unavailable")),
        "{b}"
    );
}

async fn a_unionid_links_the_web_and_mini_program_logins(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let h = app.sim.handle();
    h.add_user(sim_user(TEST_APP_ID, "o-web-linked", "小林", Some("u-same")));
    h.add_user(sim_user(TEST_MP_APP_ID, "o-mp-linked", "小林", Some("u-same")));
    let http = client();
    // WeChat gives the unionid at web login only with snsapi_userinfo.
    let back = web_login(&app, &http, "return=/account&scope=userinfo", "o-web-linked").await;
    let (_, web) = me(&app, Some(&session_cookie(&back)), None).await;
    let (token, _) = mp_login(&app, "o-mp-linked").await;
    let (_, mp) = me(&app, None, Some(&token)).await;
    assert_eq!(web["user"]["id"], mp["user"]["id"], "one person, one user: {web} {mp}");
    assert_eq!(mp["user"]["openid"], "o-web-linked");
    assert_eq!(mp["user"]["mini_openid"], "o-mp-linked");
}

/// A browser's WebSocket on a scene.
pub(crate) struct Watcher {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Watcher {
    /// Connects to `ws_url` with the given Origin; `Err(status)` when refused before the upgrade.
    pub(crate) async fn connect(ws_url: &str, origin: &str) -> Result<Watcher, u16> {
        let mut request = ws_url.into_client_request().unwrap();
        request.headers_mut().insert("origin", origin.parse().unwrap());
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Watcher { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("websocket: {e}"),
        }
    }

    /// The next event (text frame), within 10 s.
    pub(crate) async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("an event within 10 s")
                .expect("the socket is open")
                .expect("a frame");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Ping(p) => self.ws.send(Message::Pong(p)).await.unwrap(),
                Message::Close(_) => panic!("closed while waiting for an event"),
                _ => {}
            }
        }
    }

    /// Waits for the server to close the socket.
    pub(crate) async fn closed(&mut self) -> bool {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await {
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// `POST /api/v1/login/scenes`.
pub(crate) async fn new_scene(app: &TestApp) -> Value {
    let (s, b) = body(
        app.http
            .post(format!("{}/api/v1/login/scenes", app.address))
            .json(&json!({"return": "/account"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    b
}

async fn the_scene_lifecycle_over_the_websocket(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let h = app.sim.handle();
    h.add_user(sim_user(TEST_MP_APP_ID, "o-mp-scan", "扫码人", None));
    let scene = new_scene(&app).await;
    let name = scene["scene"].as_str().unwrap().to_owned();
    assert_eq!(
        name.len(),
        32,
        "128 random bits, within WeChat's 32-character scene rule"
    );
    assert!(name.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(scene["expires_at"].as_str().unwrap().ends_with('Z'));
    let ws_url = scene["ws_url"].as_str().unwrap().to_owned();
    assert!(ws_url.starts_with("ws://127.0.0.1:") && ws_url.contains(&format!("/ws/login/{name}?key=")));

    // The code image: fetched from WeChat once per scene.
    for _ in 0..2 {
        let r = app.http.get(scene["qr_url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/png");
        assert!(r.bytes().await.unwrap().starts_with(b"\x89PNG"));
    }
    assert_eq!(h.calls("/wxa/getwxacodeunlimit"), 1);

    let mut browser = Watcher::connect(&ws_url, &app.address).await.unwrap();
    assert_eq!(browser.next().await["event"], "waiting");

    let (token, _) = mp_login(&app, "o-mp-scan").await;
    // Confirming before scanning is refused.
    let (s, b) = mp_post(&app, &format!("/login/scenes/{name}/confirm"), Some(&token), json!({})).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (409, Some("not_scanned")),
        "{b}"
    );
    let (s, b) = mp_post(&app, &format!("/login/scenes/{name}/scan"), Some(&token), json!({})).await;
    assert_eq!(s, 200, "{b}");
    let scanned = browser.next().await;
    assert_eq!(scanned["event"], "scanned", "{scanned}");
    // A second browser tab (or a reconnect) first hears where the scene stands.
    let mut late = Watcher::connect(&ws_url, &app.address).await.unwrap();
    assert_eq!(late.next().await["event"], "scanned");
    drop(late);

    // Someone else cannot take over a scanned scene.
    let (other, _) = mp_login(&app, "o-mp-other").await;
    let (s, b) = mp_post(&app, &format!("/login/scenes/{name}/scan"), Some(&other), json!({})).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (409, Some("scanned_by_another")),
        "{b}"
    );

    let (s, _) = mp_post(&app, &format!("/login/scenes/{name}/confirm"), Some(&token), json!({})).await;
    assert_eq!(s, 200);
    let confirmed = browser.next().await;
    assert_eq!(confirmed["event"], "confirmed", "{confirmed}");
    let ticket = confirmed["ticket"].as_str().unwrap().to_owned();
    assert!(
        !confirmed.to_string().contains("wxkit_session"),
        "the session never travels over the socket"
    );
    assert!(browser.closed().await, "the socket closes after the final event");

    // Already confirmed: 409 for confirm and scan alike.
    for action in ["confirm", "scan", "cancel"] {
        let (s, b) = mp_post(&app, &format!("/login/scenes/{name}/{action}"), Some(&token), json!({})).await;
        assert_eq!(
            (s.as_u16(), b["error"]["code"].as_str()),
            (409, Some("already_confirmed")),
            "{action}: {b}"
        );
    }

    // Another site cannot spend the ticket (login CSRF), and trying does not burn it.
    let r = app
        .http
        .post(format!("{}/auth/ticket", app.address))
        .header("origin", "https://evil.example")
        .json(&json!({"ticket": ticket}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The ticket buys the session cookie, once.
    let r = app
        .http
        .post(format!("{}/auth/ticket", app.address))
        .json(&json!({"ticket": ticket}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = session_cookie(&r);
    let (_, b) = body(r).await;
    assert_eq!(
        (b["return"].as_str(), b["user"]["mini_openid"].as_str()),
        (Some("/account"), Some("o-mp-scan"))
    );
    let (s, b) = me(&app, Some(&cookie), None).await;
    assert_eq!(
        (s.as_u16(), b["user"]["mini_openid"].as_str()),
        (200, Some("o-mp-scan"))
    );
    let (s, b) = body(
        app.http
            .post(format!("{}/auth/ticket", app.address))
            .json(&json!({"ticket": ticket}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (400, Some("invalid_ticket")),
        "ticket reuse: {b}"
    );
    // A socket that connects after the ticket was used learns it was used, and gets no new ticket.
    let mut after = Watcher::connect(&ws_url, &app.address).await.unwrap();
    let event = after.next().await;
    assert_eq!(
        (event["event"].as_str(), event["used"].as_bool()),
        (Some("confirmed"), Some(true)),
        "{event}"
    );
    assert!(event.get("ticket").is_none());
}

async fn scenes_expire_cancel_and_refuse_strangers(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let (token, _) = mp_login(&app, "o-mp-x").await;
    // Unknown scene: 404; no token: 401.
    let (s, _) = mp_post(
        &app,
        "/login/scenes/0123456789abcdef0123456789abcdef/scan",
        Some(&token),
        json!({}),
    )
    .await;
    assert_eq!(s, 404);
    let scene = new_scene(&app).await;
    let name = scene["scene"].as_str().unwrap().to_owned();
    let ws_url = scene["ws_url"].as_str().unwrap().to_owned();
    let (s, b) = mp_post(&app, &format!("/login/scenes/{name}/scan"), None, json!({})).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{b}"
    );
    let (s, _) = mp_post(
        &app,
        &format!("/login/scenes/{name}/scan"),
        Some("forged-token"),
        json!({}),
    )
    .await;
    assert_eq!(s, 401);
    // A page on another site cannot watch the scene; nor can anyone without the watch key (say, from a photo of
    // the QR code, which carries the scene alone).
    assert_eq!(Watcher::connect(&ws_url, "https://evil.example").await.err(), Some(403));
    let keyless = ws_url.split("?key=").next().unwrap();
    assert_eq!(Watcher::connect(keyless, &app.address).await.err(), Some(403));
    assert_eq!(
        Watcher::connect(&format!("{keyless}?key=00"), &app.address).await.err(),
        Some(403)
    );
    // Bad return paths are refused when the scene is made.
    let (s, _) = body(
        app.http
            .post(format!("{}/api/v1/login/scenes", app.address))
            .json(&json!({"return": "//evil.example"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);

    // Cancel on the phone: the browser hears it.
    let mut browser = Watcher::connect(&ws_url, &app.address).await.unwrap();
    assert_eq!(browser.next().await["event"], "waiting");
    let (s, _) = mp_post(&app, &format!("/login/scenes/{name}/scan"), Some(&token), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(browser.next().await["event"], "scanned");
    let (s, _) = mp_post(&app, &format!("/login/scenes/{name}/cancel"), Some(&token), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(browser.next().await["event"], "cancelled");
    let (s, b) = mp_post(&app, &format!("/login/scenes/{name}/confirm"), Some(&token), json!({})).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (409, Some("cancelled")),
        "{b}"
    );

    // Expiry (default 120 s): scanning an expired scene is 410, its socket says expired, its code is gone.
    let scene = new_scene(&app).await;
    let name = scene["scene"].as_str().unwrap().to_owned();
    app.clock.advance_secs(121);
    let (s, b) = mp_post(&app, &format!("/login/scenes/{name}/scan"), Some(&token), json!({})).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (410, Some("scene_expired")),
        "{b}"
    );
    let mut browser = Watcher::connect(scene["ws_url"].as_str().unwrap(), &app.address)
        .await
        .unwrap();
    assert_eq!(browser.next().await["event"], "expired");
    assert!(browser.closed().await);
    let r = app.http.get(scene["qr_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 410);
    app.clock.advance_secs(-121);
    // A ticket lives a minute.
    let scene = new_scene(&app).await;
    let name = scene["scene"].as_str().unwrap().to_owned();
    let mut browser = Watcher::connect(scene["ws_url"].as_str().unwrap(), &app.address)
        .await
        .unwrap();
    assert_eq!(browser.next().await["event"], "waiting");
    mp_post(&app, &format!("/login/scenes/{name}/scan"), Some(&token), json!({})).await;
    assert_eq!(browser.next().await["event"], "scanned");
    mp_post(&app, &format!("/login/scenes/{name}/confirm"), Some(&token), json!({})).await;
    let ticket = browser.next().await["ticket"].as_str().unwrap().to_owned();
    app.clock.advance_secs(61);
    let (s, _) = body(
        app.http
            .post(format!("{}/auth/ticket", app.address))
            .json(&json!({"ticket": ticket}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    app.clock.advance_secs(-61);
    assert_eq!(s, 400, "an expired ticket");
}

on_shared_backends!(
    two_instances_fan_scene_events_out,
    the_login_listener_survives_a_terminated_connection
);

/// PostgreSQL carries scene events by NOTIFY, MySQL by the relay table (features/scan_login/relay.rs).
async fn two_instances_fan_scene_events_out(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    // A second instance on the same database and simulator.
    let (second, _) = wxkit_e2e::start_server_with(wxkit_e2e::test_settings(&app.db.url, &app.sim)).await;
    let scene = new_scene(&app).await;
    let name = scene["scene"].as_str().unwrap().to_owned();
    // The browser's socket is on the first instance...
    let mut browser = Watcher::connect(scene["ws_url"].as_str().unwrap(), &app.address)
        .await
        .unwrap();
    assert_eq!(browser.next().await["event"], "waiting");
    // ...the mini program talks to the second.
    let code = app.sim.handle().issue_js_code(TEST_MP_APP_ID, "o-mp-two").unwrap();
    let login: Value = app
        .http
        .post(format!("{second}/api/v1/miniprogram/login"))
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap();
    for action in ["scan", "confirm"] {
        let r = app
            .http
            .post(format!("{second}/api/v1/login/scenes/{name}/{action}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{action}");
    }
    assert_eq!(browser.next().await["event"], "scanned");
    let confirmed = browser.next().await;
    assert_eq!(confirmed["event"], "confirmed");
    // And the ticket works on either instance.
    let r = app
        .http
        .post(format!("{second}/auth/ticket"))
        .json(&json!({"ticket": confirmed["ticket"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_codes_are_budgeted_per_address() {
    let Some(db) = wxkit_e2e::TestDatabase::create(DbKind::Sqlite) else {
        return;
    };
    let sim = wxkit_e2e::spawn_sim().await;
    let settings = wxkit_e2e::test_settings_with(&db.url, &sim, &[("WXKIT__LOGIN__SCENES_PER_MINUTE", "3")], &[]);
    let (address, _) = wxkit_e2e::start_server_with(settings).await;
    let http = client();
    for _ in 0..3 {
        let r = http
            .post(format!("{address}/api/v1/login/scenes"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = http
        .post(format!("{address}/api/v1/login/scenes"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("retry-after"));
    let (s, b) = body(r).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (429, Some("too_many_login_codes")),
        "{b}"
    );
}

async fn the_login_listener_survives_a_terminated_connection(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let (second, second_state) = wxkit_e2e::start_server_with(wxkit_e2e::test_settings(&app.db.url, &app.sim)).await;
    // Both instances' LISTEN connections are up before they are cut (they start in the background).
    wxkit_e2e::eventually_within("both listeners up", Duration::from_secs(15), || {
        app.state.login_hub.listening() && second_state.login_hub.listening()
    })
    .await;
    let scene = new_scene(&app).await;
    let name = scene["scene"].as_str().unwrap().to_owned();
    let mut browser = Watcher::connect(scene["ws_url"].as_str().unwrap(), &app.address)
        .await
        .unwrap();
    assert_eq!(browser.next().await["event"], "waiting");
    // Both instances' LISTEN connections are terminated (a failover, an idle-connection killer). MySQL: every
    // connection of the database, the relays' among them.
    let terminated = if kind == DbKind::Mysql {
        let killed = wxkit_e2e::terminate_backends(&app.db.url).await;
        assert!(killed >= 2, "at least the two relays' connections: {killed}");
        // The pools lost theirs too: the request that meets a dead connection fails (at most one per instance),
        // the pool then checks the rest. Let each instance find out before the mini program calls.
        for base in [&app.address, &second] {
            let mut failed = 0;
            while app.http.get(format!("{base}/readyz")).send().await.unwrap().status() != 200 {
                failed += 1;
                assert!(failed <= 1, "{base}: {failed} failed probes after the kill");
            }
        }
        2
    } else {
        terminate_listeners(&app.db.url).await
    };
    assert_eq!(terminated, 2, "one listener per instance");
    // The mini program talks to the second instance at once: whatever it publishes while the first instance's
    // listener is reconnecting reaches the browser (the hub re-reads the scene after reconnecting).
    let code = app.sim.handle().issue_js_code(TEST_MP_APP_ID, "o-mp-failover").unwrap();
    let login: Value = app
        .http
        .post(format!("{second}/api/v1/miniprogram/login"))
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap();
    let r = app
        .http
        .post(format!("{second}/api/v1/login/scenes/{name}/scan"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(browser.next().await["event"], "scanned");
    let r = app
        .http
        .post(format!("{second}/api/v1/login/scenes/{name}/confirm"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let confirmed = browser.next().await;
    assert_eq!(confirmed["event"], "confirmed", "{confirmed}");
    assert!(confirmed["ticket"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_cookies_are_secure_behind_https() {
    let Some(db) = wxkit_e2e::TestDatabase::create(DbKind::Sqlite) else {
        return;
    };
    let sim = wxkit_e2e::spawn_sim().await;
    let settings = wxkit_e2e::test_settings_with(
        &db.url,
        &sim,
        &[("WXKIT__SERVER__PUBLIC_BASE_URL", "https://wxkit.example")],
        &[],
    );
    let (address, _) = wxkit_e2e::start_server_with(settings).await;
    let http = client();
    let start = http
        .get(format!("{address}/auth/wechat?return=/account"))
        .send()
        .await
        .unwrap();
    let authorize = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["redirect_uri"], "https://wxkit.example/auth/callback");
    let code = sim
        .handle()
        .issue_oauth_code(TEST_APP_ID, "o-https", "snsapi_base")
        .unwrap();
    let back = http
        .get(format!(
            "{address}/auth/callback?code={code}&state={}",
            url::form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>()
        ))
        .header("cookie", wxkit_e2e::oauth_binding(&start))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 302);
    let raw = back
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("wxkit_session="))
        .unwrap();
    assert!(
        raw.contains("Secure") && raw.contains("HttpOnly") && raw.contains("SameSite=Lax"),
        "{raw}"
    );
}

on_both_backends!(website_qr_login_links_to_the_same_person_by_unionid);

/// The second way to log in on a computer: the open platform's website QR login (`/auth/qrconnect`). With the
/// unionid WeChat gives, the website login is the same person as their official-account login — same user, same
/// coupons.
async fn website_qr_login_links_to_the_same_person_by_unionid(kind: DbKind) {
    const WEB_APP: &str = "wxtestweb0000001";
    const WEB_SECRET: &str = "test-web-secret-0123456789abcdef";
    let Some(db) = wxkit_e2e::TestDatabase::create(kind) else {
        return;
    };
    let sim = wxkit_e2e::spawn_sim().await;
    sim.handle().add_app(WEB_APP, WEB_SECRET);
    let settings = wxkit_e2e::test_settings_with(
        &db.url,
        &sim,
        &[
            ("WXKIT__WEBSITE__APP_ID", WEB_APP),
            ("WXKIT__WEBSITE__APP_SECRET", WEB_SECRET),
        ],
        &[],
    );
    let (address, state) = wxkit_e2e::start_server_with(settings).await;
    let app = TestApp {
        address,
        state,
        sim,
        db,
        http: client(),
        clock: std::sync::Arc::default(),
        files: None,
    };
    // The person first logs in on their phone, inside WeChat, sharing their profile (the unionid comes with it).
    app.sim
        .handle()
        .add_user(sim_user(TEST_APP_ID, "o-oa", "小李", Some("u-person")));
    let r = web_login(&app, &app.http, "return=/account&scope=userinfo", "o-oa").await;
    let (_, phone_me) = me(&app, Some(&session_cookie(&r)), None).await;
    // The login page offers it beside the mini-program code.
    let page = app
        .http
        .get(format!("{}/login", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("id=\"website-login\" href=\"/auth/qrconnect?return=%2Faccount\""),
        "{page}"
    );
    // Then on a computer: WeChat's website login page, scanned, back with a code.
    app.sim
        .handle()
        .add_user(sim_user(WEB_APP, "o-web", "小李", Some("u-person")));
    let start = app
        .http
        .get(format!("{}/auth/qrconnect?return=/account", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let login_page = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    assert!(login_page.path().ends_with("/connect/qrconnect"), "{login_page}");
    let q: std::collections::HashMap<_, _> = login_page.query_pairs().into_owned().collect();
    assert_eq!((q["appid"].as_str(), q["scope"].as_str()), (WEB_APP, "snsapi_login"));
    let code = app
        .sim
        .handle()
        .issue_oauth_code(WEB_APP, "o-web", "snsapi_login")
        .unwrap();
    let back = app
        .http
        .get(format!(
            "{}/auth/qrconnect/callback?code={code}&state={}",
            app.address,
            url::form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>()
        ))
        .header("cookie", wxkit_e2e::oauth_binding(&start))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 302);
    assert_eq!(back.headers()["location"], "/account");
    let (s, computer_me) = me(&app, Some(&session_cookie(&back)), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        computer_me["id"], phone_me["id"],
        "the same person: {computer_me} vs {phone_me}"
    );
    // The state is single use; a code from the in-WeChat app is not the website app's.
    let again = app
        .http
        .get(format!(
            "{}/auth/qrconnect/callback?code={code}&state={}",
            app.address,
            url::form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>()
        ))
        .header("cookie", wxkit_e2e::oauth_binding(&start))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    // Without a website app configured, the route says so (a page, not a crash).
    let plain = spawn_app(kind).await.unwrap();
    let r = plain
        .http
        .get(format!("{}/auth/qrconnect", plain.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("website.app_id"));
}

/// Terminates the PostgreSQL connections that `LISTEN` on the database of `db_url`; returns how many.
async fn terminate_listeners(db_url: &str) -> usize {
    use diesel::{Connection, RunQueryDsl};
    let admin_url = wxkit_e2e::postgres_admin_url().unwrap();
    let db_name = url::Url::parse(db_url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();
    tokio::task::spawn_blocking(move || {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            t: bool,
        }
        let mut conn = diesel::PgConnection::establish(&admin_url).unwrap();
        let rows: Vec<Row> = diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity \
             WHERE datname = '{db_name}' AND query ILIKE 'LISTEN%'"
        ))
        .load(&mut conn)
        .unwrap();
        rows.iter().filter(|r| r.t).count()
    })
    .await
    .unwrap()
}
