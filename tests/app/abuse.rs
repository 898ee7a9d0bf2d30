//! Trust, round two: each test mounts one attack from the red-team run — sockets past the connection cap, made-up
//! methods as metric labels, a neighbour's bad tokens locking out a till, one account hoarding stock, junk orders
//! starving the reconciler, a login code fetched once per request, open redirects, limits per openid instead of per
//! person, login CSRF, a ticket in a trace log, ping floods, bodies past their deadline — and shows it fails.

use crate::coupons::{issue, json, shop};
use crate::login::{Watcher, client, mp_login, new_scene, session_cookie, sim_user, web_login};
use crate::pay::{order, web_session};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use wxkit_e2e::{
    DbKind, ServerProcess, TEST_ADMIN_TOKEN, TEST_APP_ID, TEST_MP_APP_ID, TestApp, TestDatabase, free_port, server_env,
    spawn_app, spawn_app_with, spawn_sim, start_server_with, test_settings_with,
};

on_both_backends!(
    a_valid_credential_is_served_through_a_lockout,
    one_buyer_cannot_hoard_a_campaign,
    junk_orders_cannot_starve_the_reconciler,
    per_user_limits_count_the_person_not_the_openid,
);

/// A server in this process with extra settings; its address and the simulator.
async fn server_with(set: &[(&str, &str)]) -> Option<(String, wechat_sim::SimServer, TestDatabase)> {
    wxkit::telemetry::init_for_tests("warn");
    let db = TestDatabase::create(DbKind::Sqlite)?;
    let sim = spawn_sim().await;
    let (address, _) = start_server_with(test_settings_with(&db.url, &sim, set, &[])).await;
    Some((address, sim, db))
}

async fn scene_at(address: &str) -> Value {
    let r = client()
        .post(format!("{address}/api/v1/login/scenes"))
        .json(&json!({"return": "/account"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_sockets_are_limited_before_the_upgrade() {
    // Per scene and per client: 6 sockets per address, 4 per scene.
    let Some((address, _sim, _db)) = server_with(&[("WXKIT__LOGIN__SOCKETS_PER_ADDRESS", "6")]).await else {
        return;
    };
    let a = scene_at(&address).await;
    let ws = |s: &Value| s["ws_url"].as_str().unwrap().to_owned();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            Watcher::connect(&ws(&a), &address)
                .await
                .expect("a scene takes four sockets"),
        );
    }
    assert_eq!(
        Watcher::connect(&ws(&a), &address).await.err(),
        Some(429),
        "a fifth socket on one scene is refused before the 101"
    );
    let b = scene_at(&address).await;
    for _ in 0..2 {
        held.push(Watcher::connect(&ws(&b), &address).await.expect("room for this client"));
    }
    assert_eq!(
        Watcher::connect(&ws(&b), &address).await.err(),
        Some(429),
        "a seventh socket from one address is refused"
    );
    // A closed socket gives its place back.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.push(Watcher::connect(&ws(&b), &address).await.expect("the freed place"));
    drop(held);

    // The instance's share: with a cap of 8 connections, sockets get 6; the seventh is refused 503 and HTTP still
    // answers (before, sockets left the cap's count the moment they upgraded, and any number could be held).
    let Some((address, _sim, _db)) = server_with(&[
        ("WXKIT__SERVER__MAX_CONNECTIONS", "8"),
        ("WXKIT__LOGIN__SOCKETS_PER_ADDRESS", "100"),
    ])
    .await
    else {
        return;
    };
    let mut held = Vec::new();
    for _ in 0..2 {
        let s = scene_at(&address).await;
        for _ in 0..3 {
            held.push(Watcher::connect(&ws(&s), &address).await.expect("within the share"));
        }
    }
    let s = scene_at(&address).await;
    assert_eq!(Watcher::connect(&ws(&s), &address).await.err(), Some(503));
    let health = client().get(format!("{address}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "HTTP keeps its share of the connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ping_flood_closes_the_socket() {
    let Some((address, _sim, _db)) = server_with(&[]).await else {
        return;
    };
    let s = scene_at(&address).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(s["ws_url"].as_str().unwrap())
            .unwrap();
    request.headers_mut().insert("origin", address.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("waiting"), "{first:?}");
    let mut sent = 0;
    for _ in 0..2_000 {
        if ws.send(Message::Ping(b"x".to_vec().into())).await.is_err() {
            break;
        }
        sent += 1;
    }
    // The server ends the socket (close 1008, policy) after its frame budget, long before 2,000; an open socket
    // would answer every ping with a pong and then wait quietly.
    let mut ended = sent < 2_000;
    let mut close = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                close = frame.map(|f| u16::from(f.code));
                ended = true;
                break;
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => {
                ended = true;
                break;
            }
            Err(_) => break,
        }
    }
    assert!(ended, "the socket is still open after {sent} pings");
    assert!(matches!(close, None | Some(1008)), "{close:?}");
}

/// A raw login socket: the upgrade written by hand, so that frames a WebSocket library would never send can be.
async fn raw_socket(address: &str, ws_url: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = ws_url.strip_prefix("ws://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut io = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {address}\r\n\r\n"
    );
    io.write_all(head.as_bytes()).await.unwrap();
    // The 101's head, then the first event (a text frame): read up to the end of the head.
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut b = [0u8; 1];
        io.read_exact(&mut b).await.unwrap();
        seen.push(b[0]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&seen));
    io
}

/// Reads server frames until one with `opcode`; its payload (the server's frames are short and unmasked).
async fn frame_with(io: &mut tokio::net::TcpStream, opcode: u8) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    loop {
        let mut head = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(5), io.read_exact(&mut head))
            .await
            .ok()?
            .ok()?;
        let len = match head[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                io.read_exact(&mut l).await.ok()?;
                usize::from(u16::from_be_bytes(l))
            }
            n => usize::from(n),
        };
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload).await.ok()?;
        if head[0] & 0x0f == opcode {
            return Some(payload);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_socket_frames_cut_across_reads_are_answered_and_forged_ones_close_it() {
    use tokio::io::AsyncWriteExt;
    let Some((address, _sim, _db)) = server_with(&[]).await else {
        return;
    };
    let s = scene_at(&address).await;
    let ws_url = s["ws_url"].as_str().unwrap();
    // A masked ping sent in three pieces, with pauses: the server waits for the whole frame, then answers it.
    let mut io = raw_socket(&address, ws_url).await;
    let mask = [1u8, 2, 3, 4];
    let mut ping = vec![0x89, 0x80 | 2];
    ping.extend_from_slice(&mask);
    ping.extend(b"hi".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    for piece in [&ping[..1], &ping[1..4], &ping[4..]] {
        io.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        frame_with(&mut io, 0xa).await.as_deref(),
        Some(&b"hi"[..]),
        "the pong echoes the ping"
    );
    // An unmasked frame (clients must mask): closed with 1002.
    io.write_all(&[0x89, 0x00]).await.unwrap();
    assert_eq!(
        frame_with(&mut io, 0x8).await.as_deref(),
        Some(&1002u16.to_be_bytes()[..])
    );
    // A frame announcing more than 4 KiB: closed with 1009 before the payload is read.
    let mut io = raw_socket(&address, ws_url).await;
    let mut big = vec![0x82, 0x80 | 127];
    big.extend_from_slice(&(1u64 << 40).to_be_bytes());
    big.extend_from_slice(&mask);
    io.write_all(&big).await.unwrap();
    assert_eq!(
        frame_with(&mut io, 0x8).await.as_deref(),
        Some(&1009u16.to_be_bytes()[..])
    );
    // The scene is still watchable: the forged frames cost only their own sockets.
    let mut io = raw_socket(&address, ws_url).await;
    io.write_all(&[0x88, 0x80 | 2, 0, 0, 0, 0, 0x03, 0xe8]).await.unwrap();
    assert_eq!(
        frame_with(&mut io, 0x8).await.as_deref(),
        Some(&1000u16.to_be_bytes()[..]),
        "a client's close is answered with its own code"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_methods_and_paths_add_no_metric_series() {
    let Some(app) = spawn_app(DbKind::Sqlite).await else {
        return;
    };
    for i in 0..200 {
        let method = Method::from_bytes(format!("FOOBAR{i}").as_bytes()).unwrap();
        let _ = app
            .http
            .request(method, format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap();
        let _ = app.get(&format!("/made-up-{i}/path")).await;
    }
    let text = app
        .admin(Method::GET, "/metrics", json!({}))
        .await
        .text()
        .await
        .unwrap();
    let series: Vec<&str> = text.lines().filter(|l| l.starts_with("wxkit_http_request")).collect();
    assert!(
        series.iter().all(|l| !l.contains("FOOBAR") && !l.contains("made-up")),
        "{series:#?}"
    );
    assert!(
        text.contains(r#"wxkit_http_requests_total{method="other",route="/healthz",status="#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched""#), "{text}");
}

async fn pos_call(app: &TestApp, token: &str, code: &str) -> StatusCode {
    app.http
        .post(format!("{}/api/v1/redemptions", app.address))
        .bearer_auth(token)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn a_valid_credential_is_served_through_a_lockout(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, json!({"title": "t"})).await;
    let mut codes = Vec::new();
    for _ in 0..21 {
        let (_, c) = issue(&app, shop.campaign_id, None).await;
        codes.push(c["code"].as_str().unwrap().to_owned());
    }
    // The till works, and the admin's script too.
    assert_eq!(pos_call(&app, &shop.staff_token, &codes[0]).await, 200);
    assert_eq!(
        app.admin(Method::GET, "/api/v1/merchants", json!({})).await.status(),
        200
    );
    // Someone on the shop's network (the same address) sends bad tokens: they are locked out...
    let mut refused = 0;
    for (i, code) in codes[1..].iter().enumerate() {
        for _ in 0..5 {
            let s = pos_call(&app, "a-guessed-token", "WHATEVER").await;
            assert!(matches!(s.as_u16(), 401 | 429), "{s}");
            refused += u32::from(s == 429);
            let s = app
                .http
                .get(format!("{}/api/v1/merchants", app.address))
                .bearer_auth("a-guessed-admin-token")
                .send()
                .await
                .unwrap()
                .status();
            assert!(matches!(s.as_u16(), 401 | 429), "{s}");
        }
        // ...while the till and the admin keep being served, every time.
        assert_eq!(pos_call(&app, &shop.staff_token, code).await, 200, "till call {i}");
        assert_eq!(
            app.admin(Method::GET, "/api/v1/merchants", json!({})).await.status(),
            200,
            "admin call {i}"
        );
    }
    assert!(
        refused > 50,
        "the guesser was locked out ({refused} of 100 refused unread)"
    );
    // A token never seen before waits out the lock-out like any other guess.
    let r = app
        .http
        .get(format!("{}/api/v1/merchants", app.address))
        .bearer_auth(TEST_ADMIN_TOKEN.to_owned() + "x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}

async fn one_buyer_cannot_hoard_a_campaign(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let shop = shop(&app, json!({"title": "团购券", "price_fen": 990, "quantity": 20})).await;
    let hoarder = web_session(&app, "o-hoarder").await;
    let mut numbers = std::collections::HashSet::new();
    for _ in 0..20 {
        let (s, b) = order(
            &app,
            &hoarder,
            json!({"campaign_id": shop.campaign_id, "trade_type": "NATIVE"}),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        numbers.insert(b["out_trade_no"].as_str().unwrap().to_owned());
    }
    assert_eq!(numbers.len(), 1, "one open order per buyer and campaign, offered again");
    assert_eq!(
        crate::pay::campaign_issued(&app, shop.campaign_id).await,
        1,
        "one unit reserved, not 20"
    );
    // Others can still buy.
    let other = web_session(&app, "o-other").await;
    let (s, _) = order(
        &app,
        &other,
        json!({"campaign_id": shop.campaign_id, "trade_type": "NATIVE"}),
    )
    .await;
    assert_eq!(s, 201);
    // Across campaigns, a buyer holds at most `pay.max_open_orders` (3) open orders.
    let campaign = async |title: &str| {
        let body = json!({"title": title, "price_fen": 100, "merchant_id": shop.merchant_id});
        let (s, c) = json(app.admin(Method::POST, "/api/v1/campaigns", body).await).await;
        assert_eq!(s, 201, "{c}");
        c["id"].as_i64().unwrap()
    };
    for i in 0..2 {
        let more = campaign(&format!("券{i}")).await;
        let (s, b) = order(&app, &hoarder, json!({"campaign_id": more, "trade_type": "NATIVE"})).await;
        assert_eq!(s, 201, "{b}");
    }
    let fourth = campaign("第四").await;
    let (s, b) = order(&app, &hoarder, json!({"campaign_id": fourth, "trade_type": "NATIVE"})).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (429, Some("too_many_open_orders")),
        "{b}"
    );
    let (s, b) = order(
        &app,
        &hoarder,
        json!({"description": "x", "total_fee": 5, "trade_type": "NATIVE"}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (429, Some("too_many_open_orders")),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_are_rate_limited_per_buyer() {
    let Some(app) = spawn_app_with(
        DbKind::Sqlite,
        &[
            ("WXKIT__RATE_LIMITS__ORDERS_PER_MINUTE", "3"),
            ("WXKIT__PAY__MAX_OPEN_ORDERS", "0"),
        ],
    )
    .await
    else {
        return;
    };
    let buyer = web_session(&app, "o-fast").await;
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(
            order(
                &app,
                &buyer,
                json!({"description": "x", "total_fee": 5, "trade_type": "NATIVE"}),
            )
            .await,
        );
    }
    let codes: Vec<_> = answers.iter().map(|(s, b)| (*s, b["error"]["code"].clone())).collect();
    assert_eq!(codes.iter().filter(|(s, _)| *s == 201).count(), 3, "{codes:?}");
    assert!(
        codes[3..].iter().all(|(s, c)| *s == 429 && c == "too_many_orders"),
        "{codes:?}"
    );
    let other = web_session(&app, "o-slow").await;
    assert_eq!(
        order(
            &app,
            &other,
            json!({"description": "x", "total_fee": 5, "trade_type": "NATIVE"})
        )
        .await
        .0,
        201
    );
}

async fn junk_orders_cannot_starve_the_reconciler(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    // 60 junk orders, placed first (the reconciler's batch is 50), that WeChat never heard of (a crash between our
    // insert and the prepay call): ORDER_NOT_EXIST at every question.
    let now = wechat_core::Clock::now_ms(app.clock.as_ref());
    let pool = app.state.db.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().unwrap();
        for i in 0..60 {
            let no = format!("junk{i:04}");
            wxkit::features::pay::repo::place(
                &mut conn,
                &wxkit::features::pay::repo::NewOrder {
                    out_trade_no: &no,
                    user_id: None,
                    openid: None,
                    description: "junk",
                    total_fee: 5,
                    trade_type: "NATIVE",
                    expires_at: now / 1000 + 600,
                    now: now - 5_000,
                    campaign_id: None,
                    buyer_openid: None,
                    appid: None,
                    max_open: 0,
                },
            )
            .unwrap();
        }
    })
    .await
    .unwrap();
    // A victim's order is paid, and its notify lost: the reconciler must find it within seconds all the same.
    let cookie = web_session(&app, "o-victim").await;
    let (_, b) = order(
        &app,
        &cookie,
        json!({"description": "lost", "total_fee": 700, "trade_type": "NATIVE"}),
    )
    .await;
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    app.sim.handle().drop_next_notifies(1);
    app.sim.handle().pay_order(&no, None, None).unwrap();
    crate::pay::wait_paid(&app, &cookie, &no).await;
    // Past their expiry, the orders WeChat never had are closed here (before: asked about forever).
    app.clock.advance_secs(700);
    app.sim.handle().advance_clock(700);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, st) = crate::pay::order_status(&app, None, "junk0059").await;
        if st["status"] == "closed" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "junk not closed: {st}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn per_user_limits_count_the_person_not_the_openid(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let h = app.sim.handle();
    h.add_user(sim_user(TEST_APP_ID, "o-web-one", "小周", Some("u-one-person")));
    h.add_user(sim_user(TEST_MP_APP_ID, "o-mp-one", "小周", Some("u-one-person")));
    // One person, linked by unionid: logged in on the official account and in the mini program.
    let http = client();
    let back = web_login(&app, &http, "return=/account&scope=userinfo", "o-web-one").await;
    assert_eq!(back.status(), 302);
    let _ = session_cookie(&back);
    mp_login(&app, "o-mp-one").await;
    let shop = shop(&app, json!({"title": "限领一张", "per_user_limit": 1})).await;
    let (s, _) = issue(&app, shop.campaign_id, Some("o-web-one")).await;
    assert_eq!(s, 201);
    let (s, b) = issue(&app, shop.campaign_id, Some("o-mp-one")).await;
    assert_eq!(
        (s.as_u16(), b["error"]["code"].as_str()),
        (409, Some("not_issuable")),
        "the same person through the other channel: {b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_login_code_is_fetched_once_per_scene() {
    let Some(app) = spawn_app(DbKind::Sqlite).await else {
        return;
    };
    // WeChat answers slowly: 200 concurrent requests for one scene's image all arrive before the first answer.
    app.sim.handle().inject(wechat_sim::Fault {
        path: "/wxa/getwxacodeunlimit".into(),
        count: 1,
        errcode: None,
        errmsg: None,
        http_status: None,
        delay_ms: Some(300),
    });
    let scene = new_scene(&app).await;
    let qr = scene["qr_url"].as_str().unwrap();
    let url = if qr.starts_with("http") {
        qr.to_owned()
    } else {
        format!("{}{qr}", app.address)
    };
    let before = app.sim.handle().calls("/wxa/getwxacodeunlimit");
    let gets: Vec<_> = (0..200)
        .map(|_| {
            let (http, url) = (app.http.clone(), url.clone());
            tokio::spawn(async move { http.get(url).send().await.unwrap().status() })
        })
        .collect();
    for g in gets {
        assert_eq!(g.await.unwrap(), 200);
    }
    assert_eq!(
        app.sim.handle().calls("/wxa/getwxacodeunlimit") - before,
        1,
        "one WeChat call for one scene"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_and_login_return_paths_stay_on_this_site() {
    let Some(app) = spawn_app(DbKind::Sqlite).await else {
        return;
    };
    for (path, want) in [
        ("/%09/evil.example/", "/"),
        ("/%0d%0aSet-Cookie:x=1", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/coupons/mine", "/coupons/mine"),
    ] {
        let r = app
            .http
            .post(format!("{}/auth/logout", app.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", app.address.clone())
            .body(format!("return={path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], want, "{path}");
    }
    // The same rule for scan-to-login's return path.
    for bad in ["/\t/evil.example/", "/x\r\ny"] {
        let r = app
            .http
            .post(format!("{}/api/v1/login/scenes", app.address))
            .json(&json!({"return": bad}))
            .send()
            .await
            .unwrap();
        let (s, b) = json(r).await;
        assert_eq!(
            (s.as_u16(), b["error"]["code"].as_str()),
            (400, Some("invalid_return_path"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oauth_callback_logs_in_only_the_browser_that_started_it() {
    let Some(app) = spawn_app(DbKind::Sqlite).await else {
        return;
    };
    // The attacker starts a login in their own browser and stops at the callback link, with their own code.
    let attacker = client();
    let start = attacker
        .get(format!("{}/auth/wechat?return=/account", app.address))
        .send()
        .await
        .unwrap();
    let authorize = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let code = app
        .sim
        .handle()
        .issue_oauth_code(TEST_APP_ID, "o-attacker", "snsapi_base")
        .unwrap();
    let link = format!(
        "{}/auth/callback?code={code}&state={}",
        app.address,
        url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()
    );
    // The victim's browser (no binding cookie, not WeChat) opens it: no session.
    let victim = client()
        .get(&link)
        .header("user-agent", "Mozilla/5.0 (Macintosh) Chrome/130")
        .send()
        .await
        .unwrap();
    assert_eq!(victim.status(), 403);
    assert!(
        victim
            .headers()
            .get_all("set-cookie")
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("wxkit_session=")),
        "the victim is not logged in as the attacker"
    );
    assert!(
        victim.text().await.unwrap().contains("/auth/wechat"),
        "the page offers their own login"
    );
    // A forged binding cookie does not help either.
    let forged = client()
        .get(&link)
        .header("cookie", "wxkit_oauth=00000000000000000000000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // The browser that started it completes it (the state was not spent by the refusals).
    let own = attacker
        .get(&link)
        .header("cookie", wxkit_e2e::oauth_binding(&start))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 302);
    assert_eq!(own.headers()["location"], "/account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_login_ticket_never_reaches_a_trace_log() {
    let Some(db) = TestDatabase::create(DbKind::Sqlite) else {
        return;
    };
    let sim = spawn_sim().await;
    let mut env = server_env(&db.url, &sim, free_port());
    env.retain(|(k, _)| k != "RUST_LOG");
    env.push(("RUST_LOG".into(), "trace".into()));
    let server = ServerProcess::start(&env, None).await;
    let address = server.address.clone();
    let scene = scene_at(&address).await;
    let mut watcher = Watcher::connect(scene["ws_url"].as_str().unwrap(), &address)
        .await
        .unwrap();
    assert_eq!(watcher.next().await["event"], "waiting");
    // The phone: log in to the mini program, scan, confirm.
    let code = sim.handle().issue_js_code(TEST_MP_APP_ID, "o-trace").unwrap();
    let login: Value = client()
        .post(format!("{address}/api/v1/miniprogram/login"))
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap();
    let id = scene["scene"].as_str().unwrap();
    for step in ["scan", "confirm"] {
        let r = client()
            .post(format!("{address}/api/v1/login/scenes/{id}/{step}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{step}");
    }
    let ticket = loop {
        let e = watcher.next().await;
        if e["event"] == "confirmed" {
            break e["ticket"].as_str().unwrap().to_owned();
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = server.log_text();
    assert!(
        log.contains("TRACE") || log.contains("trace"),
        "the server logged at trace"
    );
    assert!(!log.contains(&ticket), "the one-time ticket is in the log");
    assert!(!log.contains(token), "a bearer token is in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_past_its_deadline_is_a_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some((address, _sim, _db)) = server_with(&[("WXKIT__SERVER__BODY_TIMEOUT_SECS", "1")]).await else {
        return;
    };
    let host = address.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&host).await.unwrap();
    s.write_all(
        format!(
            "POST /api/v1/merchants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\""
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
}
