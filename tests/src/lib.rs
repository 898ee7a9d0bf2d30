//! Test harness: a fresh database per test (a temp SQLite file, or a randomly named PostgreSQL database that is
//! dropped afterwards), the simulator on port 0 and the server on port 0.
//!
//! PostgreSQL: the harness uses `WXKIT_TEST_PG_URL` or `postgres://postgres@127.0.0.1:5432/postgres`; when neither
//! answers it starts a throwaway cluster with `initdb` from /usr/lib/postgresql/*/bin (port 54329, data under the
//! system temp dir). Under `CI=true` a missing PostgreSQL fails the tests; elsewhere it prints a loud skip notice.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use wechat_sim::SimServer;
use wxkit::configuration::Settings;
use wxkit::startup::Application;

/// The app registered in every test simulator.
pub const TEST_APP_ID: &str = "wxtest0000000001";
/// Its secret (a test value, not a real secret).
pub const TEST_APP_SECRET: &str = "test-app-secret-0123456789abcdef";

/// The admin token of test servers.
pub const TEST_ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123";

/// The server-push token of test servers.
pub const TEST_PUSH_TOKEN: &str = "test-push-token";
/// The EncodingAESKey of test servers (safe mode).
pub const TEST_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    /// A temp SQLite file.
    Sqlite,
    /// A fresh database on a local PostgreSQL.
    Postgres,
}

/// A database that exists for one test and is removed afterwards.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its `DATABASE_URL`.
    pub url: String,
    /// The backend.
    pub kind: DbKind,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup
            && let Ok(mut conn) = PgConnection::establish(admin_url)
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
    }
}

impl TestDatabase {
    /// A fresh database, or `None` when PostgreSQL is unavailable outside CI (a notice is printed).
    pub fn create(kind: DbKind) -> Option<TestDatabase> {
        match kind {
            DbKind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("wxkit-test.db").display());
                Some(TestDatabase {
                    url,
                    kind,
                    cleanup: Cleanup::Dir(dir),
                })
            }
            DbKind::Postgres => {
                let admin_url = postgres_admin_url()?;
                let name = format!("wxkit_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::establish(&admin_url).expect("PostgreSQL answered a moment ago");
                create_from_template(&mut conn, &admin_url, &name);
                let url = replace_db_name(&admin_url, &name);
                Some(TestDatabase {
                    url,
                    kind,
                    cleanup: Cleanup::Postgres { admin_url, name },
                })
            }
        }
    }
}

/// Creates `name` as a copy of a migrated template database (made once per set of migrations, shared by every test
/// process), so that each test starts with the schema in place instead of running every migration again. Falls
/// back to an empty database (the server migrates it) if the template cannot be had.
fn create_from_template(conn: &mut PgConnection, admin_url: &str, name: &str) {
    if let Some(template) = migrated_template(admin_url) {
        // A template cannot be copied while someone is connected to it; the migrating connection may still be
        // closing, so try a few times.
        for _ in 0..20 {
            if conn
                .batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""))
                .is_ok()
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    conn.batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .expect("create test database");
}

/// The name of the template database holding the current PostgreSQL migrations, made if missing.
fn migrated_template(admin_url: &str) -> Option<String> {
    static TEMPLATE: OnceLock<Option<String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            use std::hash::{Hash, Hasher};
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../migrations/postgres");
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            for e in &entries {
                e.file_name().hash(&mut hasher);
                std::fs::read(e.join("up.sql")).ok()?.hash(&mut hasher);
            }
            let template = format!("wxkit_tpl_{:016x}", hasher.finish());
            let mut conn = PgConnection::establish(admin_url).ok()?;
            // One process makes it; the others wait and reuse it.
            conn.batch_execute("SELECT pg_advisory_lock(7454530002)").ok()?;
            let made = (|| -> Option<()> {
                #[derive(diesel::QueryableByName)]
                struct Found {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                let found: Found = diesel::RunQueryDsl::get_result(
                    diesel::sql_query(format!(
                        "SELECT count(*) AS n FROM pg_database WHERE datname = '{template}' AND datistemplate"
                    )),
                    &mut conn,
                )
                .ok()?;
                if found.n == 1 {
                    return Some(());
                }
                conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{template}\" WITH (FORCE)"))
                    .ok()?;
                conn.batch_execute(&format!("CREATE DATABASE \"{template}\"")).ok()?;
                let url = replace_db_name(admin_url, &template);
                wxkit::db::Backend::from_url(&url).ok()?.migrate().ok()?;
                conn.batch_execute(&format!("ALTER DATABASE \"{template}\" WITH IS_TEMPLATE true"))
                    .ok()
            })();
            let _ = conn.batch_execute("SELECT pg_advisory_unlock(7454530002)");
            made.map(|()| template)
        })
        .clone()
}

fn replace_db_name(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("admin URL parses");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn can_connect(url: &str) -> bool {
    PgConnection::establish(url).is_ok()
}

fn with_timeout(url: &str) -> String {
    if url.contains('?') {
        format!("{url}&connect_timeout=3")
    } else {
        format!("{url}?connect_timeout=3")
    }
}

/// The admin URL of a usable PostgreSQL server, found (or started) once per process.
pub fn postgres_admin_url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        let mut candidates = Vec::new();
        if let Ok(url) = std::env::var("WXKIT_TEST_PG_URL") {
            candidates.push(url);
        }
        candidates.push("postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        for url in candidates {
            let url = with_timeout(&url);
            if can_connect(&url) {
                return Some(url);
            }
        }
        if let Some(url) = start_throwaway_cluster() {
            return Some(url);
        }
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "CI=true but no PostgreSQL is reachable (tried WXKIT_TEST_PG_URL, 127.0.0.1:5432 and a throwaway initdb cluster); \
             the PostgreSQL tests must run in CI"
        );
        eprintln!(
            "\n\n**********************************************************************\n\
             * SKIPPING PostgreSQL tests: no server at 127.0.0.1:5432, none in     *\n\
             * WXKIT_TEST_PG_URL, and no throwaway cluster could be started.      *\n\
             **********************************************************************\n"
        );
        None
    })
    .clone()
}

const THROWAWAY_PORT: u16 = 54329;

fn start_throwaway_cluster() -> Option<String> {
    let url = format!("postgres://postgres@127.0.0.1:{THROWAWAY_PORT}/postgres?connect_timeout=3");
    if can_connect(&url) {
        return Some(url);
    }
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .max()?;
    let data: PathBuf = std::env::temp_dir().join("wxkit-test-pg");
    let as_root = Command::new("id").arg("-u").output().ok()?.stdout.starts_with(b"0");
    // initdb refuses to run as root: run the cluster as the postgres user then.
    let run = |program: &str, args: &[&str]| -> bool {
        let program = bin.join(program);
        let mut cmd = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        cmd.args(args).status().is_ok_and(|s| s.success())
    };
    let data_str = data.to_str()?;
    if !data.join("PG_VERSION").exists() {
        let _ = std::fs::create_dir_all(&data);
        if as_root {
            let _ = Command::new("chown").args(["-R", "postgres", data_str]).status();
        }
        if !run(
            "initdb",
            &["-D", data_str, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        ) {
            return None;
        }
    }
    let opts = format!("-p {THROWAWAY_PORT} -k {data_str} -c listen_addresses=127.0.0.1 -c fsync=off");
    let log = format!("{data_str}/server.log");
    if !run("pg_ctl", &["-D", data_str, "-o", &opts, "-l", &log, "-w", "start"]) {
        return None;
    }
    eprintln!("started a throwaway PostgreSQL cluster in {data_str} on port {THROWAWAY_PORT}");
    can_connect(&url).then_some(url)
}

/// Starts a simulator on port 0 with the test app registered.
pub async fn spawn_sim() -> SimServer {
    SimServer::start("127.0.0.1:0", &[(TEST_APP_ID, TEST_APP_SECRET)])
        .await
        .expect("simulator starts")
}

/// Settings for a test server: port 0, the given database, WeChat pointed at `sim`.
pub fn test_settings(db_url: &str, sim: &SimServer) -> Settings {
    test_settings_with(db_url, sim, &[], &[])
}

/// [`test_settings`] with some variables set (`set`) and some left out (`unset`, by name).
pub fn test_settings_with(db_url: &str, sim: &SimServer, set: &[(&str, &str)], unset: &[&str]) -> Settings {
    let mut env = vec![
        ("DATABASE_URL".to_owned(), db_url.to_owned()),
        ("WXKIT__SERVER__ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("WXKIT__WECHAT__APP_ID".to_owned(), TEST_APP_ID.to_owned()),
        ("WXKIT__WECHAT__APP_SECRET".to_owned(), TEST_APP_SECRET.to_owned()),
        ("WXKIT__WECHAT__API_BASE_URL".to_owned(), sim.base_url()),
        ("WXKIT__WECHAT__OPEN_BASE_URL".to_owned(), sim.base_url()),
        ("WXKIT__DATABASE__POOL_SIZE".to_owned(), "8".to_owned()),
        ("WXKIT__ADMIN__TOKEN".to_owned(), TEST_ADMIN_TOKEN.to_owned()),
        ("WXKIT__WECHAT__TOKEN".to_owned(), TEST_PUSH_TOKEN.to_owned()),
        ("WXKIT__WECHAT__ENCODING_AES_KEY".to_owned(), TEST_AES_KEY.to_owned()),
        // Quick outbox retries, so that fault tests finish in seconds.
        ("WXKIT__OUTBOX__RETRY_BASE_MS".to_owned(), "100".to_owned()),
        ("WXKIT__OUTBOX__POLL_MS".to_owned(), "200".to_owned()),
    ];
    env.retain(|(k, _)| !unset.contains(&k.as_str()));
    for (k, v) in set {
        env.retain(|(key, _)| key != k);
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    Settings::load_from(None, env).expect("test settings are valid")
}

/// A running server with its simulator and database.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The server's shared state (token manager, pool...).
    pub state: actix_web::web::Data<wxkit::startup::AppState>,
    /// The simulator the server talks to.
    pub sim: SimServer,
    /// The database (dropped after the test).
    pub db: TestDatabase,
    /// An HTTP client that does not follow redirects.
    pub http: reqwest::Client,
    /// The server's clock: `app.clock.advance_secs(n)` moves time for the server (not for the simulator).
    pub clock: std::sync::Arc<wxkit::platform::clock::OffsetClock>,
}

/// Builds a server on `db` against `sim` and runs it in the background.
pub async fn start_server(db_url: &str, sim: &SimServer) -> (String, actix_web::web::Data<wxkit::startup::AppState>) {
    start_server_with(test_settings(db_url, sim)).await
}

/// Builds a server with the given settings and runs it in the background.
pub async fn start_server_with(settings: Settings) -> (String, actix_web::web::Data<wxkit::startup::AppState>) {
    start_server_with_clock(
        settings,
        std::sync::Arc::new(wxkit::platform::clock::OffsetClock::default()),
    )
    .await
}

/// [`start_server_with`] on a clock the test can move.
pub async fn start_server_with_clock(
    settings: Settings,
    clock: std::sync::Arc<wxkit::platform::clock::OffsetClock>,
) -> (String, actix_web::web::Data<wxkit::startup::AppState>) {
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped());
    (address, state)
}

/// The simulator and the server on port 0 against a fresh database; `None` when PostgreSQL is unavailable outside
/// CI.
pub async fn spawn_app(kind: DbKind) -> Option<TestApp> {
    wxkit::telemetry::init("warn");
    let db = TestDatabase::create(kind)?;
    let sim = spawn_sim().await;
    let clock = std::sync::Arc::new(wxkit::platform::clock::OffsetClock::default());
    let (address, state) = start_server_with_clock(test_settings(&db.url, &sim), clock.clone()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds");
    Some(TestApp {
        address,
        state,
        sim,
        db,
        http,
        clock,
    })
}

impl TestApp {
    /// An admin API call.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .request(method, format!("{}{}", self.address, path))
            .bearer_auth(TEST_ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request is sent")
    }

    /// Creates a general-coupon WeChat card at the simulator (logo upload, card/create) with `quantity` codes;
    /// returns its card id.
    pub async fn create_card(&self, quantity: u64) -> String {
        use wechat_card::{BaseInfo, CardDefinition, CardKind, DateInfo};
        let cards = &self.state.cards;
        let logo = qr_render::render_png("logo", &qr_render::RenderOptions::default()).expect("logo renders");
        let logo_url = cards.upload_logo(&logo).await.expect("logo uploads");
        let base = BaseInfo::new(
            &logo_url,
            "咖啡店",
            "免费咖啡",
            "Color010",
            "出示核销",
            "每人一张",
            DateInfo::FixTerm {
                fixed_term: 30,
                fixed_begin_term: 0,
            },
            quantity,
        )
        .expect("valid base info");
        let definition = CardDefinition::new(
            CardKind::GeneralCoupon {
                default_detail: "咖啡".into(),
            },
            base,
        )
        .expect("valid card");
        cards.create(&definition).await.expect("card is created")
    }

    /// `GET {address}{path}`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.address, path))
            .send()
            .await
            .expect("request is sent")
    }
}

/// The `wxkit` binary built beside this test binary (`cargo test --workspace` builds it for the CLI tests).
pub fn wxkit_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/e2e-HASH → target/debug/wxkit
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join(format!("wxkit{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p wxkit`) so the server binary is built",
        bin.display()
    );
    bin
}

/// A free port on 127.0.0.1 (bound and released; the kernel does not hand it out again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The environment of a `wxkit serve` process talking to `sim` on database `db_url`.
pub fn server_env(db_url: &str, sim: &SimServer, port: u16) -> Vec<(String, String)> {
    vec![
        ("DATABASE_URL".into(), db_url.into()),
        ("WXKIT__SERVER__ADDR".into(), format!("127.0.0.1:{port}")),
        ("WXKIT__WECHAT__APP_ID".into(), TEST_APP_ID.into()),
        ("WXKIT__WECHAT__APP_SECRET".into(), TEST_APP_SECRET.into()),
        ("WXKIT__WECHAT__API_BASE_URL".into(), sim.base_url()),
        ("WXKIT__WECHAT__OPEN_BASE_URL".into(), sim.base_url()),
        ("WXKIT__DATABASE__POOL_SIZE".into(), "8".into()),
        ("WXKIT__ADMIN__TOKEN".into(), TEST_ADMIN_TOKEN.into()),
        ("WXKIT__WECHAT__TOKEN".into(), TEST_PUSH_TOKEN.into()),
        ("WXKIT__WECHAT__ENCODING_AES_KEY".into(), TEST_AES_KEY.into()),
        ("RUST_LOG".into(), "warn".into()),
    ]
}

/// A `wxkit serve` child process that a test started (and is the only one to kill).
#[derive(Debug)]
pub struct ServerProcess {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    child: std::process::Child,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl ServerProcess {
    /// Starts `wxkit serve` with `env` (and `shell_prefix`, e.g. `ulimit -n 256;`, run before it in `sh`) and
    /// waits until `/healthz` answers.
    pub async fn start(env: &[(String, String)], shell_prefix: Option<&str>) -> ServerProcess {
        let port = env
            .iter()
            .find(|(k, _)| k == "WXKIT__SERVER__ADDR")
            .and_then(|(_, v)| v.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())
            .expect("WXKIT__SERVER__ADDR with a port");
        let log = std::env::temp_dir().join(format!("wxkit-proc-{}.log", uuid::Uuid::new_v4().simple()));
        let stderr = std::fs::File::create(&log).expect("log file");
        let bin = wxkit_bin();
        let mut cmd = match shell_prefix {
            Some(prefix) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("{prefix} exec \"$0\" serve")).arg(&bin);
                c
            }
            None => {
                let mut c = Command::new(&bin);
                c.arg("serve");
                c
            }
        };
        // A clean environment apart from what the server needs: no stray WXKIT__ settings from the caller.
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr);
        let child = cmd.spawn().expect("wxkit serve starts");
        let address = format!("http://127.0.0.1:{port}");
        let mut process = ServerProcess { address, child, log };
        process.wait_healthy().await;
        process
    }

    async fn wait_healthy(&mut self) {
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "wxkit serve exited with {status}: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if let Ok(r) = http.get(format!("{}/healthz", self.address)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("wxkit serve did not become healthy within 30 s");
    }

    /// `kill -9`: no shutdown, no drain, no flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A WeChat-style server push to `{address}/wechat/push`, signed (and, with `aes`, encrypted) as WeChat does.
#[derive(Clone, Debug)]
pub struct SignedPush {
    /// The full URL with the query WeChat adds.
    pub url: String,
    /// The body.
    pub body: String,
}

/// Signs and (in safe mode) encrypts `plain` as WeChat would, with a fresh timestamp and nonce.
pub fn sign_push(address: &str, plain: &str, aes: bool) -> SignedPush {
    let timestamp = (chrono::Utc::now().timestamp()).to_string();
    let nonce = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    sign_push_at(address, plain, aes, &timestamp, &nonce)
}

/// [`sign_push`] with a given timestamp and nonce.
pub fn sign_push_at(address: &str, plain: &str, aes: bool, timestamp: &str, nonce: &str) -> SignedPush {
    let signature = wechat_core::push::server_signature(TEST_PUSH_TOKEN, timestamp, nonce);
    let mut url = format!("{address}/wechat/push?signature={signature}&timestamp={timestamp}&nonce={nonce}");
    let body = if aes {
        let crypto = wechat_core::push::MessageCrypto::new(TEST_PUSH_TOKEN, TEST_AES_KEY, TEST_APP_ID)
            .expect("test key is valid");
        let encrypt = crypto.encrypt(plain);
        let msg_signature = wechat_core::push::msg_signature(TEST_PUSH_TOKEN, timestamp, nonce, &encrypt);
        url.push_str(&format!("&encrypt_type=aes&msg_signature={msg_signature}"));
        format!("<xml><ToUserName><![CDATA[gh_test]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
    } else {
        plain.to_owned()
    };
    SignedPush { url, body }
}

/// A card event push body.
pub fn card_event(event: &str, from: &str, create_time: i64, fields: &[(&str, &str)]) -> String {
    let mut xml = format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>"
    );
    for (k, v) in fields {
        xml.push_str(&format!("<{k}><![CDATA[{v}]]></{k}>"));
    }
    xml.push_str("</xml>");
    xml
}
