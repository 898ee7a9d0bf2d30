//! The server on SQLite and on PostgreSQL: health, error envelope, the database-backed token store shared by two
//! instances.

use serde_json::Value;
use wechat_core::{TokenKind, TokenStore};
use wxkit_e2e::{DbKind, TestApp, TestDatabase, spawn_app, spawn_sim, start_server};

on_both_backends!(
    health_and_readiness_answer,
    every_error_uses_the_json_envelope,
    two_instances_on_one_database_fetch_the_token_once,
    a_token_rejected_on_one_instance_is_replaced_for_both,
    migrations_are_idempotent_across_restarts,
);

async fn app(kind: DbKind) -> Option<TestApp> {
    spawn_app(kind).await
}

async fn health_and_readiness_answer(kind: DbKind) {
    let Some(app) = app(kind).await else { return };

    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    let expected = match kind {
        DbKind::Sqlite => "sqlite",
        DbKind::Postgres => "postgres",
        DbKind::Mysql => "mysql",
    };
    assert_eq!(body["database"], expected);
    // Uptime checkers probe with HEAD.
    for path in ["/healthz", "/readyz"] {
        let r = app.http.head(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(r.status(), 200, "HEAD {path}");
    }
}

async fn every_error_uses_the_json_envelope(kind: DbKind) {
    let Some(app) = app(kind).await else { return };

    for (method, path, status) in [
        // A client that asks for JSON gets the envelope even for a page path (browsers get the HTML 404 page).
        (reqwest::Method::GET, "/no/such/page", 404),
        // A wrong method on a known path: 405 (with Allow).
        (reqwest::Method::POST, "/healthz", 405),
        (reqwest::Method::DELETE, "/readyz", 405),
    ] {
        let response = app
            .http
            .request(method.clone(), format!("{}{}", app.address, path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{method} {path}"
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
}

async fn two_instances_on_one_database_fetch_the_token_once(kind: DbKind) {
    let Some(db) = TestDatabase::create(kind) else { return };
    let sim = spawn_sim().await;
    sim.handle().inject(wechat_sim::Fault {
        path: "/cgi-bin/token".into(),
        count: 1,
        errcode: None,
        errmsg: None,
        http_status: None,
        delay_ms: Some(300),
    });
    let (_a_addr, a) = start_server(&db.url, &sim).await;
    let (_b_addr, b) = start_server(&db.url, &sim).await;

    let mut calls = Vec::new();
    for i in 0..200 {
        let tokens = if i % 2 == 0 { a.tokens.clone() } else { b.tokens.clone() };
        calls.push(tokio::spawn(async move {
            tokens.access_token().await.map(|t| t.secret().to_owned())
        }));
    }
    let mut values = std::collections::HashSet::new();
    for call in calls {
        values.insert(call.await.unwrap().unwrap());
    }

    assert_eq!(
        sim.handle().calls("/cgi-bin/token"),
        1,
        "one upstream call for both instances"
    );
    assert_eq!(values.len(), 1);
    // And the tickets share the same machinery.
    let (ta, tb) = tokio::join!(a.tokens.jsapi_ticket(), b.tokens.jsapi_ticket());
    assert_eq!(ta.unwrap().secret(), tb.unwrap().secret());
    assert_eq!(sim.handle().calls("/cgi-bin/ticket/getticket"), 1);
}

async fn a_token_rejected_on_one_instance_is_replaced_for_both(kind: DbKind) {
    let Some(db) = TestDatabase::create(kind) else { return };
    let sim = spawn_sim().await;
    let (_a_addr, a) = start_server(&db.url, &sim).await;
    let (_b_addr, b) = start_server(&db.url, &sim).await;
    let first = a.tokens.access_token().await.unwrap().secret().to_owned();
    assert_eq!(b.tokens.access_token().await.unwrap().secret(), first);

    // WeChat invalidates it (as when someone else fetched a token outside wxkit).
    sim.handle().inject(wechat_sim::Fault {
        path: "/cgi-bin/ticket/getticket".into(),
        count: 1,
        errcode: Some(40001),
        errmsg: None,
        http_status: None,
        delay_ms: None,
    });
    a.tokens.jsapi_ticket().await.unwrap();
    let second = a.tokens.access_token().await.unwrap().secret().to_owned();
    assert_ne!(first, second);

    // B's cached copy is stale: its compare-and-invalidate must not drop A's new token.
    assert!(!b.tokens.invalidate(TokenKind::AccessToken, &first).await.unwrap());
    assert_eq!(b.tokens.access_token().await.unwrap().secret(), second);
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 2);

    let store = wxkit::db::token_store::DbTokenStore::new(a.db.clone());
    let held = store
        .load(a.tokens.app_id(), TokenKind::AccessToken)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.value, second);
}

async fn migrations_are_idempotent_across_restarts(kind: DbKind) {
    let Some(db) = TestDatabase::create(kind) else { return };
    let sim = spawn_sim().await;
    let (addr1, _) = start_server(&db.url, &sim).await;
    let (addr2, _) = start_server(&db.url, &sim).await;
    for addr in [addr1, addr2] {
        assert_eq!(reqwest::get(format!("{addr}/readyz")).await.unwrap().status(), 200);
    }
    let pending = wxkit::db::Backend::from_url(&db.url).unwrap().migrate().unwrap();
    assert!(pending.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_postgresql_goes_away() {
    let Some(app) = app(DbKind::Postgres).await else { return };
    assert_eq!(app.get("/readyz").await.status(), 200);
    let url = app.db.url.clone();
    let name = url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let admin = wxkit_e2e::postgres_admin_url().unwrap();
    tokio::task::spawn_blocking(move || {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        let mut conn = diesel::PgConnection::establish(&admin).unwrap();
        conn.batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
            .unwrap();
    })
    .await
    .unwrap();

    let response = app.get("/readyz").await;

    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable");
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "liveness does not depend on the database"
    );
}
