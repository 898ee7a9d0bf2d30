//! The four stores on each backend this build has (SQLite always in the workspace's tests; PostgreSQL and
//! MariaDB/MySQL on 127.0.0.1 — under `CI=true` a missing server fails), and two `wechat::OfficialAccount`s on one
//! database fetching the access token once between them under 200 concurrent callers, against the simulator.
#![allow(clippy::unwrap_used)]
#![cfg(all(feature = "r2d2", feature = "sqlite"))]

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};
use std::sync::Arc;
use wechat_core::{AppId, StoredToken, TokenKind, TokenStore};
use wechat_message::dedupe::DedupeStore;
use wechat_oauth::state::StateStore;
use wechat_pay::v3::{CertificateStore, StoredCertificates};
use wxkit_store_diesel::{
    Blocking, DieselCertificateStore, DieselDedupeStore, DieselStateStore, DieselTokenStore, StoreConnection,
};

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A database that exists for one test: its URL, and how to drop it.
struct Scratch {
    url: String,
    drop_sql: Option<(String, String)>,
    _dir: Option<tempfile_dir::Dir>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        #[cfg(feature = "postgres")]
        if let Some((admin, sql)) = &self.drop_sql
            && admin.starts_with("postgres")
            && let Ok(mut c) = diesel::PgConnection::establish(admin)
        {
            let _ = c.batch_execute(sql);
        }
        #[cfg(feature = "mysql")]
        if let Some((admin, sql)) = &self.drop_sql
            && admin.starts_with("mysql")
            && let Ok(mut c) = diesel::MysqlConnection::establish(admin)
        {
            let _ = c.batch_execute(sql);
        }
    }
}

/// A temp dir removed on drop (std only).
mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

fn sqlite() -> Scratch {
    let dir = std::env::temp_dir().join(unique("wxkit_store"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.db");
    let mut c = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    // Two pools write to one file: wait for the lock instead of failing.
    c.batch_execute("PRAGMA journal_mode = WAL").unwrap();
    Scratch {
        url: path.display().to_string(),
        drop_sql: None,
        _dir: Some(tempfile_dir::Dir(dir)),
    }
}

#[cfg(feature = "postgres")]
fn postgres() -> Option<Scratch> {
    let admin = std::env::var("WXKIT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?connect_timeout=3".into());
    let Ok(mut c) = diesel::PgConnection::establish(&admin) else {
        assert!(!is_ci(), "CI=true but no PostgreSQL at {admin}");
        eprintln!("SKIPPING the PostgreSQL half: no PostgreSQL at {admin}");
        return None;
    };
    let name = unique("wxkit_store");
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    Some(Scratch {
        url: url.to_string(),
        drop_sql: Some((admin, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))),
        _dir: None,
    })
}

#[cfg(feature = "mysql")]
fn mysql() -> Option<Scratch> {
    let admin = std::env::var("WXKIT_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".into());
    let Ok(mut c) = diesel::MysqlConnection::establish(&admin) else {
        assert!(!is_ci(), "CI=true but no MariaDB/MySQL at {admin}");
        eprintln!("SKIPPING the MySQL half: no MariaDB/MySQL at {admin}");
        return None;
    };
    let name = unique("wxkit_store");
    // The server's default collation may be case-insensitive: the store's tables name their own.
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    Some(Scratch {
        url: url.to_string(),
        drop_sql: Some((admin, format!("DROP DATABASE IF EXISTS {name}"))),
        _dir: None,
    })
}

fn pool<C: R2D2Connection + StoreConnection>(url: &str) -> Pool<ConnectionManager<C>> {
    Pool::builder()
        .max_size(8)
        .build(ConnectionManager::<C>::new(url))
        .unwrap()
}

/// SQLite connections wait for the write lock (the pool's connections are made lazily: set it on each).
#[derive(Debug)]
struct BusyTimeout;
impl diesel::r2d2::CustomizeConnection<diesel::SqliteConnection, diesel::r2d2::Error> for BusyTimeout {
    fn on_acquire(&self, c: &mut diesel::SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        c.batch_execute("PRAGMA busy_timeout = 10000")
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

fn sqlite_pool(url: &str) -> Pool<ConnectionManager<diesel::SqliteConnection>> {
    Pool::builder()
        .max_size(4)
        .connection_customizer(Box::new(BusyTimeout))
        .build(ConnectionManager::new(url))
        .unwrap()
}

async fn every_store<B>(db: B, name: &str)
where
    B: Blocking + Clone,
{
    // The tables, twice (idempotent).
    for _ in 0..2 {
        db.run(|c| c.create_store_tables()).await.unwrap();
    }
    let app = AppId::new("wxstore000000001");
    let kind = TokenKind::AccessToken;

    // Tokens: nothing, then a value; compare-and-invalidate; the lease.
    let tokens = DieselTokenStore::new(db.clone());
    assert!(tokens.load(&app, kind).await.unwrap().is_none(), "{name}");
    let token = StoredToken {
        value: "TOKEN-1".into(),
        expires_at: 4_000_000_000,
    };
    tokens.save(&app, kind, &token).await.unwrap();
    let loaded = tokens.load(&app, kind).await.unwrap().unwrap();
    assert_eq!(
        (loaded.value.as_str(), loaded.expires_at),
        ("TOKEN-1", 4_000_000_000),
        "{name}"
    );
    assert!(
        !tokens.invalidate_if(&app, kind, "TOKEN-0").await.unwrap(),
        "{name}: another value stays"
    );
    assert!(tokens.load(&app, kind).await.unwrap().is_some());
    assert!(tokens.invalidate_if(&app, kind, "TOKEN-1").await.unwrap(), "{name}");
    assert!(tokens.load(&app, kind).await.unwrap().is_none(), "{name}: invalidated");
    let other = TokenKind::JsapiTicket;
    assert!(
        tokens.try_lock(&app, other, "a", 1_000, 31_000).await.unwrap(),
        "{name}: a first lease (no row yet)"
    );
    assert!(
        !tokens.try_lock(&app, other, "b", 2_000, 32_000).await.unwrap(),
        "{name}: held"
    );
    assert!(
        tokens.try_lock(&app, other, "a", 3_000, 33_000).await.unwrap(),
        "{name}: the holder renews"
    );
    assert!(
        tokens.try_lock(&app, other, "b", 40_000, 70_000).await.unwrap(),
        "{name}: expired, taken over"
    );
    tokens.unlock(&app, other, "a").await.unwrap();
    assert!(
        !tokens.try_lock(&app, other, "c", 41_000, 71_000).await.unwrap(),
        "{name}: a's unlock frees nothing"
    );
    tokens.unlock(&app, other, "b").await.unwrap();
    assert!(
        tokens.try_lock(&app, other, "c", 42_000, 72_000).await.unwrap(),
        "{name}: free after b's unlock"
    );
    // Of 30 instances racing for a fresh lease, one gets it.
    let fresh = TokenKind::WxCardTicket;
    let races: Vec<_> = (0..30)
        .map(|i| {
            let tokens = DieselTokenStore::new(db.clone());
            let app = app.clone();
            tokio::spawn(async move { tokens.try_lock(&app, fresh, &format!("i{i}"), 1_000, 31_000).await })
        })
        .collect();
    let mut won = 0;
    for r in races {
        won += usize::from(r.await.unwrap().unwrap());
    }
    assert_eq!(won, 1, "{name}: one lease holder");

    // Certificates: none, saved, replaced.
    let certs = DieselCertificateStore::new(db.clone());
    assert!(certs.load("1900000109").await.unwrap().is_none(), "{name}");
    let first = StoredCertificates {
        pems: vec!["-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----".into()],
        fetched_at_ms: 1,
    };
    let second = StoredCertificates {
        pems: vec!["B".into(), "C".into()],
        fetched_at_ms: 2,
    };
    certs.save("1900000109", &first).await.unwrap();
    assert_eq!(certs.load("1900000109").await.unwrap(), Some(first), "{name}");
    certs.save("1900000109", &second).await.unwrap();
    assert_eq!(
        certs.load("1900000109").await.unwrap(),
        Some(second),
        "{name}: replaced"
    );
    assert!(certs.load("1900000110").await.unwrap().is_none(), "{name}");

    // Pushes: of 20 concurrent deliveries of one key, one is first.
    let dedupe = DieselDedupeStore::new(db.clone());
    let firsts: Vec<_> = (0..20)
        .map(|_| {
            let d = DieselDedupeStore::new(db.clone());
            tokio::spawn(async move { d.first_seen("push:1", 1_000).await })
        })
        .collect();
    let mut first = 0;
    for f in firsts {
        first += usize::from(f.await.unwrap().unwrap());
    }
    assert_eq!(first, 1, "{name}: one first sight");
    assert!(dedupe.first_seen("push:2", 5_000).await.unwrap());
    assert_eq!(dedupe.forget_before(2_000).await.unwrap(), 1, "{name}");
    assert!(
        dedupe.first_seen("push:1", 9_000).await.unwrap(),
        "{name}: forgotten keys are new again"
    );
    assert!(!dedupe.first_seen("push:2", 9_000).await.unwrap(), "{name}");

    // OAuth states: a nonce is used once, also under a race.
    let states = DieselStateStore::new(db.clone());
    let far = 4_000_000_000;
    let consumers: Vec<_> = (0..20)
        .map(|_| {
            let s = DieselStateStore::new(db.clone());
            tokio::spawn(async move { s.consume("nonce-1", far).await })
        })
        .collect();
    let mut consumed = 0;
    for c in consumers {
        consumed += usize::from(c.await.unwrap().unwrap());
    }
    assert_eq!(consumed, 1, "{name}: one consumer");
    assert!(!states.consume("nonce-1", far).await.unwrap(), "{name}: replay refused");
    assert!(states.consume("nonce-2", far).await.unwrap(), "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_store_behaves_alike_on_each_backend() {
    let lite = sqlite();
    every_store(sqlite_pool(&lite.url), "sqlite").await;
    #[cfg(feature = "postgres")]
    if let Some(pg) = postgres() {
        every_store(pool::<diesel::PgConnection>(&pg.url), "postgres").await;
    }
    #[cfg(feature = "mysql")]
    if let Some(my) = mysql() {
        every_store(pool::<diesel::MysqlConnection>(&my.url), "mysql").await;
    }
}

const APP_ID: &str = "wxstore000000002";
const SECRET: &str = "store-secret-0123456789abcdef012";

/// Two official accounts (as two instances would be: a pool each) on one database; 200 callers at once, half on
/// each: WeChat is asked for the token once.
async fn two_accounts_fetch_once<B: Blocking + Clone>(a: B, b: B, name: &str) {
    a.run(|c| c.create_store_tables()).await.unwrap();
    let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[(APP_ID, SECRET)])
        .await
        .unwrap();
    let account = |db: B| {
        wechat::OfficialAccount::builder()
            .app_id(APP_ID)
            .secret(SECRET)
            .base_url(&sim.base_url())
            .token_store(Arc::new(DieselTokenStore::new(db)))
            .build()
            .unwrap()
    };
    let (one, two) = (account(a), account(b));
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let oa = if i % 2 == 0 { one.clone() } else { two.clone() };
            tokio::spawn(async move { oa.app().tokens().access_token().await.map(|t| t.secret().to_owned()) })
        })
        .collect();
    let mut values = std::collections::HashSet::new();
    for c in calls {
        values.insert(c.await.unwrap().unwrap());
    }
    assert_eq!(
        sim.handle().calls("/cgi-bin/token"),
        1,
        "{name}: one fetch for 200 callers on two instances"
    );
    assert_eq!(values.len(), 1, "{name}: every caller got the one token");
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_official_accounts_on_one_mariadb_fetch_the_token_once() {
    let Some(my) = mysql() else { return };
    two_accounts_fetch_once(
        pool::<diesel::MysqlConnection>(&my.url),
        pool::<diesel::MysqlConnection>(&my.url),
        "mysql",
    )
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_official_accounts_on_one_postgresql_fetch_the_token_once() {
    let Some(pg) = postgres() else { return };
    two_accounts_fetch_once(
        pool::<diesel::PgConnection>(&pg.url),
        pool::<diesel::PgConnection>(&pg.url),
        "postgres",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_official_accounts_on_one_sqlite_file_fetch_the_token_once() {
    let lite = sqlite();
    two_accounts_fetch_once(sqlite_pool(&lite.url), sqlite_pool(&lite.url), "sqlite").await;
}
