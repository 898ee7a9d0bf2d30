//! The app tests' harness, on top of the shared test kit (`wxkit-testkit`, re-exported here): the server on port 0
//! (in-process, or the `wxkit` binary as a child process) against the simulator and a fresh database, plus signed
//! WeChat pushes.

pub mod proxy;

use std::path::PathBuf;
use std::process::Command;
use wechat_sim::SimServer;
use wxkit::configuration::Settings;
use wxkit::startup::Application;
pub use wxkit_testkit::{
    DbKind, TEST_ADMIN_TOKEN, TEST_AES_KEY, TEST_APP_ID, TEST_APP_SECRET, TEST_MCH_ID, TEST_MP_APP_ID,
    TEST_MP_APP_SECRET, TEST_PAY_KEY, TEST_PUSH_TOKEN, TestDatabase, browser, decode_qr, eventually, eventually_within,
    free_port, is_ci, postgres_admin_url, spawn_sim,
};

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
        ("WXKIT__MINIPROGRAM__APP_ID".to_owned(), TEST_MP_APP_ID.to_owned()),
        ("WXKIT__PAY__MCH_ID".to_owned(), TEST_MCH_ID.to_owned()),
        ("WXKIT__PAY__KEY".to_owned(), TEST_PAY_KEY.to_owned()),
        ("WXKIT__PAY__BASE_URL".to_owned(), sim.base_url()),
        // The pay reconciler looks every second at orders a second old, so that its tests finish in seconds.
        ("WXKIT__PAY__RECONCILE_AFTER_SECS".to_owned(), "1".to_owned()),
        ("WXKIT__PAY__RECONCILE_EVERY_SECS".to_owned(), "1".to_owned()),
        (
            "WXKIT__MINIPROGRAM__APP_SECRET".to_owned(),
            TEST_MP_APP_SECRET.to_owned(),
        ),
        ("WXKIT__WECHAT__API_BASE_URL".to_owned(), sim.base_url()),
        ("WXKIT__WECHAT__OPEN_BASE_URL".to_owned(), sim.base_url()),
        ("WXKIT__DATABASE__POOL_SIZE".to_owned(), "8".to_owned()),
        ("WXKIT__ADMIN__TOKEN".to_owned(), TEST_ADMIN_TOKEN.to_owned()),
        ("WXKIT__WECHAT__TOKEN".to_owned(), TEST_PUSH_TOKEN.to_owned()),
        ("WXKIT__WECHAT__ENCODING_AES_KEY".to_owned(), TEST_AES_KEY.to_owned()),
        // Quick outbox retries, so that fault tests finish in seconds.
        ("WXKIT__OUTBOX__RETRY_BASE_MS".to_owned(), "100".to_owned()),
        ("WXKIT__OUTBOX__POLL_MS".to_owned(), "200".to_owned()),
        // Every test client is 127.0.0.1: request limits off, except where a test sets one.
        (
            "WXKIT__RATE_LIMITS__OAUTH_CALLBACK_PER_MINUTE".to_owned(),
            "0".to_owned(),
        ),
        ("WXKIT__RATE_LIMITS__COUPON_PAGES_PER_MINUTE".to_owned(), "0".to_owned()),
        (
            "WXKIT__RATE_LIMITS__COUPON_STATUS_PER_MINUTE".to_owned(),
            "0".to_owned(),
        ),
        ("WXKIT__RATE_LIMITS__POS_PER_MINUTE".to_owned(), "0".to_owned()),
        ("WXKIT__RATE_LIMITS__PUSH_PER_MINUTE".to_owned(), "0".to_owned()),
        ("WXKIT__RATE_LIMITS__LOGIN_PER_MINUTE".to_owned(), "0".to_owned()),
        ("WXKIT__RATE_LIMITS__ORDERS_PER_MINUTE".to_owned(), "0".to_owned()),
        // The daily reconciliation only where a test asks for it.
        ("WXKIT__PAY__RECONCILE_BILLS_AT".to_owned(), "off".to_owned()),
    ];
    env.retain(|(k, _)| !unset.contains(&k.as_str()));
    for (k, v) in set {
        env.retain(|(key, _)| key != k);
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    Settings::load_from(None, env).expect("test settings are valid")
}

/// What tests look at inside a running server: its database pool, POS batcher, card client, login hub, payment
/// gateway, access-token manager and admin token — each from the capability that owns it.
#[derive(Clone, Debug)]
pub struct ServerState {
    /// The database pool.
    pub db: wxkit::db::Db,
    /// The POS batcher (coupons).
    pub pos: wxkit::features::coupons::pos::PosBatcher,
    /// The official account's card client.
    pub cards: wechat_card::CardClient,
    /// The scan-to-login hub.
    pub login_hub: wxkit::features::scan_login::hub::LoginHub,
    /// The official account's payment gateway, when a merchant is configured.
    pub pay: Option<wxkit::features::pay::Gateway>,
    /// The official account's access-token manager.
    pub tokens: wechat_core::AccessTokenManager,
    /// The admin token in force.
    pub admin_token: Option<wechat_core::SecretString>,
}

/// [`ServerState`] of a built application: `app.state()`.
pub trait AppState {
    /// What tests look at inside the server.
    fn state(&self) -> ServerState;
}

impl AppState for Application {
    fn state(&self) -> ServerState {
        let slices = self.slices();
        let coupons = slices
            .get::<wxkit::features::coupons::State>()
            .expect("coupons mounted");
        let scan_login = slices
            .get::<wxkit::features::scan_login::State>()
            .expect("scan_login mounted");
        let pay = slices.get::<wxkit::features::pay::State>().expect("pay mounted");
        ServerState {
            db: self.platform().db.clone(),
            pos: coupons.pos.clone(),
            cards: coupons.cards.clone(),
            login_hub: scan_login.login_hub.clone(),
            pay: pay.pay.clone(),
            tokens: self.wechat().official.app().tokens().clone(),
            admin_token: slices.keys.admin_token.clone(),
        }
    }
}

/// A running server with its simulator and database.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// What tests look at inside the server (token manager, pool...).
    pub state: ServerState,
    /// The simulator the server talks to.
    pub sim: SimServer,
    /// The database (dropped after the test).
    pub db: TestDatabase,
    /// An HTTP client that does not follow redirects.
    pub http: reqwest::Client,
    /// The server's clock: `app.clock.advance_secs(n)` moves time for the server (not for the simulator).
    pub clock: std::sync::Arc<wxkit::platform::clock::OffsetClock>,
    /// Files the server reads (Pay v3 keys), removed with the app.
    pub files: Option<tempfile::TempDir>,
}

/// Builds a server on `db` against `sim` and runs it in the background.
pub async fn start_server(db_url: &str, sim: &SimServer) -> (String, ServerState) {
    start_server_with(test_settings(db_url, sim)).await
}

/// Builds a server with the given settings and runs it in the background.
pub async fn start_server_with(settings: Settings) -> (String, ServerState) {
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
) -> (String, ServerState) {
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
    spawn_app_with(kind, &[]).await
}

/// [`spawn_app`] with some settings set (`WXKIT__…` names).
pub async fn spawn_app_with(kind: DbKind, set: &[(&str, &str)]) -> Option<TestApp> {
    wxkit::telemetry::init_for_tests("warn");
    let db = TestDatabase::create(kind)?;
    let sim = spawn_sim().await;
    let clock = std::sync::Arc::new(wxkit::platform::clock::OffsetClock::default());
    let (address, state) = start_server_with_clock(test_settings_with(&db.url, &sim, set, &[]), clock.clone()).await;
    Some(test_app(address, state, sim, db, clock))
}

fn test_app(
    address: String,
    state: ServerState,
    sim: SimServer,
    db: TestDatabase,
    clock: std::sync::Arc<wxkit::platform::clock::OffsetClock>,
) -> TestApp {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds");
    TestApp {
        address,
        state,
        sim,
        db,
        http,
        clock,
        files: None,
    }
}

/// A [`spawn_app`] server the test stops: send on the sender, then await the handle (the graceful stop,
/// `Application::run_until`).
pub async fn spawn_app_stoppable(
    kind: DbKind,
) -> Option<(
    TestApp,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    wxkit::telemetry::init_for_tests("warn");
    let db = TestDatabase::create(kind)?;
    let sim = spawn_sim().await;
    let clock = std::sync::Arc::new(wxkit::platform::clock::OffsetClock::default());
    let built = Application::build_with_clock(test_settings(&db.url, &sim), clock.clone())
        .await
        .expect("application builds");
    let (address, state) = (format!("http://127.0.0.1:{}", built.port()), built.state());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(built.run_until(async move {
        let _ = stopped.await;
        "test"
    }));
    Some((test_app(address, state, sim, db, clock), stop, running))
}

/// How a Pay v3 test server verifies WeChat Pay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V3Mode {
    /// Platform certificates only.
    Certificates,
    /// The WeChat Pay public key only.
    PublicKey,
    /// Both (the switch-over).
    SwitchOver,
}

/// The settings that put a test server on Pay v3: the simulator registers the test merchant with its sandbox key
/// (signing as `mode` says), and the key files are written to `dir`.
pub fn v3_env(dir: &std::path::Path, sim: &SimServer, mode: V3Mode) -> Vec<(String, String)> {
    let sim_mode = match mode {
        V3Mode::Certificates => wechat_sim::SigningMode::Certificate,
        V3Mode::PublicKey => wechat_sim::SigningMode::PublicKey,
        V3Mode::SwitchOver => wechat_sim::SigningMode::SwitchOver,
    };
    wxkit_testkit::register_v3_merchant(sim, sim_mode);
    v3_env_files(dir, sim, mode)
}

/// [`v3_env`] for a merchant the simulator already knows (a second server instance).
pub fn v3_env_files(dir: &std::path::Path, sim: &SimServer, mode: V3Mode) -> Vec<(String, String)> {
    let info = sim.handle().v3_merchant(TEST_MCH_ID).expect("v3 merchant registered");
    let key_path = dir.join("apiclient_key.pem");
    std::fs::write(&key_path, wechat_sim::SANDBOX_MERCHANT_KEY).expect("key file");
    let pub_path = dir.join("pub_key.pem");
    std::fs::write(&pub_path, &info.public_key_pem).expect("public key file");
    let mut env = vec![
        ("WXKIT__PAY__API_VERSION".to_owned(), "v3".to_owned()),
        (
            "WXKIT__PAY__V3__PRIVATE_KEY_PATH".to_owned(),
            key_path.display().to_string(),
        ),
        (
            "WXKIT__PAY__V3__CERT_SERIAL".to_owned(),
            wechat_sim::SANDBOX_MERCHANT_SERIAL.to_owned(),
        ),
        (
            "WXKIT__PAY__V3__API_V3_KEY".to_owned(),
            wxkit_testkit::TEST_API_V3_KEY.to_owned(),
        ),
    ];
    if mode != V3Mode::Certificates {
        env.push(("WXKIT__PAY__V3__PUBLIC_KEY_ID".to_owned(), info.public_key_id));
        env.push((
            "WXKIT__PAY__V3__PUBLIC_KEY_PATH".to_owned(),
            pub_path.display().to_string(),
        ));
    }
    if mode == V3Mode::SwitchOver {
        env.push(("WXKIT__PAY__V3__DOWNLOAD_CERTIFICATES".to_owned(), "true".to_owned()));
    }
    env
}

/// [`spawn_app`] with the merchant on Pay v3, verified as `mode` says.
pub async fn spawn_app_v3(kind: DbKind, mode: V3Mode) -> Option<TestApp> {
    spawn_app_v3_keeping(kind, mode, &["WXKIT__PAY__KEY"]).await
}

/// [`spawn_app_v3`] with the API v2 key kept as well (WeChat Pay 商家券: its sends are signed with the v2 key).
pub async fn spawn_app_busifavor(kind: DbKind) -> Option<TestApp> {
    spawn_app_v3_keeping(kind, V3Mode::PublicKey, &[]).await
}

async fn spawn_app_v3_keeping(kind: DbKind, mode: V3Mode, unset: &[&str]) -> Option<TestApp> {
    wxkit::telemetry::init_for_tests("warn");
    let db = TestDatabase::create(kind)?;
    let sim = spawn_sim().await;
    let files = tempfile::tempdir().expect("temp dir");
    let env = v3_env(files.path(), &sim, mode);
    let set: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let settings = test_settings_with(&db.url, &sim, &set, unset);
    let clock = std::sync::Arc::new(wxkit::platform::clock::OffsetClock::default());
    let (address, state) = start_server_with_clock(settings, clock.clone()).await;
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
        files: Some(files),
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
        let base = BaseInfo::builder()
            .logo_url(logo_url)
            .brand_name("咖啡店")
            .title("免费咖啡")
            .color("Color010")
            .notice("出示核销")
            .description("每人一张")
            .date_info(DateInfo::FixTerm {
                fixed_term: 30,
                fixed_begin_term: 0,
            })
            .quantity(quantity)
            .build()
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

/// The environment of a `wxkit serve` process talking to `sim` on database `db_url`.
pub fn server_env(db_url: &str, sim: &SimServer, port: u16) -> Vec<(String, String)> {
    vec![
        ("DATABASE_URL".into(), db_url.into()),
        ("WXKIT__SERVER__ADDR".into(), format!("127.0.0.1:{port}")),
        ("WXKIT__WECHAT__APP_ID".into(), TEST_APP_ID.into()),
        ("WXKIT__WECHAT__APP_SECRET".into(), TEST_APP_SECRET.into()),
        ("WXKIT__MINIPROGRAM__APP_ID".into(), TEST_MP_APP_ID.into()),
        ("WXKIT__PAY__MCH_ID".into(), TEST_MCH_ID.into()),
        ("WXKIT__PAY__KEY".into(), TEST_PAY_KEY.into()),
        ("WXKIT__PAY__BASE_URL".into(), sim.base_url()),
        ("WXKIT__MINIPROGRAM__APP_SECRET".into(), TEST_MP_APP_SECRET.into()),
        ("WXKIT__WECHAT__API_BASE_URL".into(), sim.base_url()),
        ("WXKIT__WECHAT__OPEN_BASE_URL".into(), sim.base_url()),
        ("WXKIT__DATABASE__POOL_SIZE".into(), "8".into()),
        ("WXKIT__ADMIN__TOKEN".into(), TEST_ADMIN_TOKEN.into()),
        ("WXKIT__WECHAT__TOKEN".into(), TEST_PUSH_TOKEN.into()),
        ("WXKIT__WECHAT__ENCODING_AES_KEY".into(), TEST_AES_KEY.into()),
        ("RUST_LOG".into(), "warn".into()),
        // Load and fault tests drive one token and one address hard: request limits off.
        ("WXKIT__RATE_LIMITS__OAUTH_CALLBACK_PER_MINUTE".into(), "0".into()),
        ("WXKIT__RATE_LIMITS__COUPON_PAGES_PER_MINUTE".into(), "0".into()),
        ("WXKIT__RATE_LIMITS__COUPON_STATUS_PER_MINUTE".into(), "0".into()),
        ("WXKIT__RATE_LIMITS__POS_PER_MINUTE".into(), "0".into()),
        ("WXKIT__RATE_LIMITS__PUSH_PER_MINUTE".into(), "0".into()),
        ("WXKIT__RATE_LIMITS__LOGIN_PER_MINUTE".into(), "0".into()),
        ("WXKIT__RATE_LIMITS__ORDERS_PER_MINUTE".into(), "0".into()),
        ("WXKIT__PAY__RECONCILE_BILLS_AT".into(), "off".into()),
    ]
}

/// Terminates every PostgreSQL backend connected to the database of `db_url` — on MySQL/MariaDB, `KILL CONNECTION`
/// for each of its connections — (a failover, an idle-connection killer, as the server meets them); returns how many.
pub async fn terminate_backends(db_url: &str) -> usize {
    use diesel::{Connection as _, RunQueryDsl as _};
    let db_name = url::Url::parse(db_url)
        .expect("a database URL")
        .path()
        .trim_start_matches('/')
        .to_owned();
    #[cfg(feature = "mysql")]
    if db_url.starts_with("mysql") {
        let admin_url = wxkit_testkit::mysql::admin_url().expect("MySQL");
        return tokio::task::spawn_blocking(move || wxkit_testkit::mysql::kill_connections(&admin_url, &db_name))
            .await
            .expect("the kill ran");
    }
    let admin_url = postgres_admin_url().expect("PostgreSQL");
    tokio::task::spawn_blocking(move || {
        let mut conn = diesel::PgConnection::establish(&admin_url).expect("admin connection");
        diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{db_name}' AND pid <> pg_backend_pid()"
        ))
        .execute(&mut conn)
        .expect("pg_terminate_backend")
    })
    .await
    .expect("the termination ran")
}

/// Coupons marked redeemed and redemption rows in the database of `db_url`.
pub async fn redeemed_and_rows(db_url: &str) -> (i64, i64) {
    use diesel::{ExpressionMethods as _, QueryDsl as _, RunQueryDsl as _};
    use wxkit::db::schema::{coupons, redemptions};
    let url = db_url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut c = wxkit::db::Backend::from_url(&url)
            .expect("a database URL")
            .establish()
            .expect("a connection");
        let redeemed: i64 = coupons::table
            .filter(coupons::status.eq("redeemed"))
            .count()
            .get_result(&mut c)
            .expect("count");
        let rows: i64 = redemptions::table.count().get_result(&mut c).expect("count");
        (redeemed, rows)
    })
    .await
    .expect("the count ran")
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

    /// The process id (of `sh`'s `exec`, so the server itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and returns at once.
    pub fn sigterm(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// SIGTERM, then waits (up to 30 s) for the process to exit; its exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.sigterm();
        for _ in 0..600 {
            if let Ok(Some(status)) = self.child.try_wait() {
                if !status.success() {
                    // The evidence for whoever reads the failure: how the stop went, from the process's own log.
                    let log = self.log_text();
                    let tail: Vec<&str> = log.lines().rev().take(40).collect();
                    eprintln!(
                        "wxkit serve exited with {status} on SIGTERM; the last lines of its log:\n{}",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("wxkit serve did not stop within 30 s of SIGTERM");
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

/// A payment notify for our test merchant and official account, as WeChat sends it: every field WeChat sends,
/// HMAC-SHA256-signed with `key` (the merchant's, or another to forge one).
pub fn pay_notify_body(no: &str, transaction_id: &str, total_fee: i64, key: &str) -> String {
    let mut f: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for (k, v) in [
        ("appid", TEST_APP_ID.to_owned()),
        ("mch_id", TEST_MCH_ID.to_owned()),
        ("nonce_str", "n0nce".to_owned()),
        ("result_code", "SUCCESS".to_owned()),
        ("return_code", "SUCCESS".to_owned()),
        ("openid", "o-buyer".to_owned()),
        ("trade_type", "NATIVE".to_owned()),
        ("bank_type", "OTHERS".to_owned()),
        ("total_fee", total_fee.to_string()),
        ("cash_fee", total_fee.to_string()),
        ("fee_type", "CNY".to_owned()),
        ("transaction_id", transaction_id.to_owned()),
        ("out_trade_no", no.to_owned()),
        ("time_end", "20261126120000".to_owned()),
        ("sign_type", "HMAC-SHA256".to_owned()),
    ] {
        f.insert(k.to_owned(), v);
    }
    let sign = wechat_pay::sign::sign(
        f.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &wechat_pay::PayKey::new(key),
        wechat_pay::SignType::HmacSha256,
    );
    f.insert("sign".into(), sign);
    wechat_pay::xml::to_xml(&f)
}

/// Benchmarks: inserts `n` unpaid NATIVE orders of 990 fen straight into the database (as `POST /api/v1/pay/orders`
/// stores them); returns their numbers.
pub fn seed_unpaid_orders(db_url: &str, n: usize) -> Vec<String> {
    let backend = wxkit::db::Backend::from_url(db_url).expect("database url");
    backend.migrate().expect("migrations");
    let mut conn = backend.establish().expect("database connection");
    let now = chrono::Utc::now().timestamp_millis();
    (0..n)
        .map(|i| {
            let no = format!("bench{i:08}{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
            wxkit::features::pay::repo::place(
                &mut conn,
                &wxkit::features::pay::repo::NewOrder {
                    out_trade_no: &no,
                    user_id: None,
                    openid: None,
                    description: "bench",
                    total_fee: 990,
                    trade_type: "NATIVE",
                    expires_at: now / 1000 + 3600,
                    now,
                    campaign_id: None,
                    buyer_openid: None,
                    appid: None,
                    max_open: 0,
                },
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
            no
        })
        .collect()
}

/// Benchmarks: how many orders are paid.
pub fn paid_orders(db_url: &str) -> i64 {
    use diesel::prelude::*;
    let backend = wxkit::db::Backend::from_url(db_url).expect("database url");
    let mut conn = backend.establish().expect("database connection");
    wxkit::db::schema::pay_orders::table
        .filter(wxkit::db::schema::pay_orders::status.eq("paid"))
        .count()
        .get_result(&mut conn)
        .expect("count")
}

/// The `cookie` header value carrying the OAuth state binding a login start set (`wxkit_oauth=…`): the callback of
/// that login must come from the same browser (login CSRF), so tests that follow a login by hand send it back.
pub fn oauth_binding(start: &reqwest::Response) -> String {
    start
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("wxkit_oauth="))
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_owned()
}
