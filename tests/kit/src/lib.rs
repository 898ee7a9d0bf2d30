//! The test kit shared by wxkit's test suites (the SDK tests, which run the crates against the simulator with no
//! server, and the app tests): the simulator on port 0, a fresh database per test, `eventually`, free ports, and a
//! headless-Chromium WebDriver client.
//!
//! PostgreSQL: the kit uses `WXKIT_TEST_PG_URL` or `postgres://postgres@127.0.0.1:5432/postgres`; when neither
//! answers it starts a throwaway cluster with `initdb` from /usr/lib/postgresql/*/bin (port 54329, data under the
//! system temp dir). Under `CI=true` a missing PostgreSQL fails the tests; elsewhere it prints a loud skip notice.
//! Each PostgreSQL test database is a copy of a template database migrated once per set of migrations
//! (`migrations/postgres`, applied with the same Diesel harness as the server, so the server finds them applied).
//!
//! MariaDB/MySQL (feature `mysql`): `WXKIT_TEST_MYSQL_URL` or `mysql://root@127.0.0.1:3306/`; each test gets its own
//! database, a copy of a migrated template (see [`mysql`]). Under `CI=true` a missing server fails the tests.
#![allow(clippy::unwrap_used)]

pub mod browser;
#[cfg(feature = "mysql")]
pub mod mysql;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use diesel_migrations::MigrationHarness;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use wechat_sim::SimServer;

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
    /// A fresh database on a local MariaDB/MySQL (only with the kit's `mysql` feature).
    Mysql,
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
    Postgres {
        admin_url: String,
        name: String,
    },
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    Mysql {
        admin_url: String,
        name: String,
    },
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup
            && let Ok(mut conn) = PgConnection::establish(admin_url)
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
        #[cfg(feature = "mysql")]
        if let Cleanup::Mysql { admin_url, name } = &self.cleanup {
            mysql::drop_database(admin_url, name);
        }
    }
}

impl TestDatabase {
    /// A fresh database, or `None` when PostgreSQL is unavailable outside CI (a notice is printed).
    pub fn create(kind: DbKind) -> Option<TestDatabase> {
        // libpq talks TLS to a local PostgreSQL through the vendored OpenSSL. Initialised by libpq, OpenSSL registers
        // an exit-time cleanup that frees its state while other threads still close their connections: the test
        // process then dies at exit with heap corruption (seen: "malloc_consolidate(): unaligned fastbin chunk").
        // Initialised here first, it does not.
        openssl_sys::init();
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
            #[cfg(feature = "mysql")]
            DbKind::Mysql => {
                let admin_url = mysql::admin_url()?;
                let name = format!("wxkit_test_{}", uuid::Uuid::new_v4().simple());
                let url = mysql::create_database(&admin_url, &name);
                Some(TestDatabase {
                    url,
                    kind,
                    cleanup: Cleanup::Mysql { admin_url, name },
                })
            }
            #[cfg(not(feature = "mysql"))]
            DbKind::Mysql => {
                assert!(!is_ci(), "CI=true: the MySQL tests need the test kit's `mysql` feature");
                None
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
            let dir = migrations_dir();
            let template = template_name(&dir)?;
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
                let mut migrating = PgConnection::establish(&url).ok()?;
                let migrations = diesel_migrations::FileBasedMigrations::from_path(&dir).ok()?;
                migrating.run_pending_migrations(migrations).ok()?;
                drop(migrating);
                conn.batch_execute(&format!("ALTER DATABASE \"{template}\" WITH IS_TEMPLATE true"))
                    .ok()
            })();
            let _ = conn.batch_execute("SELECT pg_advisory_unlock(7454530002)");
            made.map(|()| template)
        })
        .clone()
}

/// The name of the template database for the migrations in `dir`: `wxkit_tpl_` and a hash of their names and
/// `up.sql` texts, so that a changed migration gets a new template.
fn template_name(dir: &std::path::Path) -> Option<String> {
    use std::hash::{Hash, Hasher};
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for e in &entries {
        e.file_name().hash(&mut hasher);
        std::fs::read(e.join("up.sql")).ok()?.hash(&mut hasher);
    }
    Some(format!("wxkit_tpl_{:016x}", hasher.finish()))
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
        assert!(
            !is_ci(),
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

/// A PostgreSQL cluster that accepts TCP connections over TLS only (`hostnossl ... reject`), with a certificate for
/// `localhost` and 127.0.0.1 made here (self-signed: it is its own root for `sslmode=verify-full`).
#[derive(Debug, Clone)]
pub struct TlsPostgres {
    /// The port (on 127.0.0.1).
    pub port: u16,
    /// The server certificate, to pass as `sslrootcert`.
    pub root_cert: PathBuf,
    pgdata: PathBuf,
    bin: PathBuf,
}

impl TlsPostgres {
    /// Stops the cluster (it is this process's: started by [`tls_postgres`]) and removes its files.
    pub fn stop(&self) {
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        let ctl = self.bin.join("pg_ctl");
        let mut cmd = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&ctl);
            c
        } else {
            Command::new(&ctl)
        };
        let _ = cmd.arg("-D").arg(&self.pgdata).args(["-m", "fast", "stop"]).status();
        if let Some(dir) = self.pgdata.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

const TLS_PORT: u16 = 54331;

/// Starts (once per process) a throwaway TLS-only cluster with `initdb` and `openssl`; `None` where they are missing.
pub fn tls_postgres() -> Option<TlsPostgres> {
    static TLS: OnceLock<Option<TlsPostgres>> = OnceLock::new();
    TLS.get_or_init(start_tls_cluster).clone()
}

fn start_tls_cluster() -> Option<TlsPostgres> {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .max()?;
    let data: PathBuf = std::env::temp_dir().join(format!("wxkit-test-pg-tls-{}", std::process::id()));
    let data_str = data.to_str()?.to_owned();
    let as_root = Command::new("id").arg("-u").output().ok()?.stdout.starts_with(b"0");
    let run = |program: &std::path::Path, args: &[&str]| -> bool {
        let mut cmd = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args).status().is_ok_and(|s| s.success())
    };
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).ok()?;
    let certs = data.join("certs");
    std::fs::create_dir_all(&certs).ok()?;
    let (crt, key) = (certs.join("server.crt"), certs.join("server.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .is_ok_and(|o| o.status.success());
    if !made {
        return None;
    }
    let hba = certs.join("pg_hba.conf");
    std::fs::write(
        &hba,
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
    )
    .ok()?;
    let pgdata = data.join("pgdata");
    let pgdata_str = pgdata.to_str()?.to_owned();
    if as_root {
        let _ = Command::new("chown").args(["-R", "postgres", &data_str]).status();
    }
    let _ = Command::new("chmod").arg("600").arg(&key).status();
    if !run(
        &bin.join("initdb"),
        &["-D", &pgdata_str, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
    ) {
        return None;
    }
    let opts = format!(
        "-p {TLS_PORT} -k {data_str} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on -c ssl_cert_file={} \
         -c ssl_key_file={} -c hba_file={}",
        crt.display(),
        key.display(),
        hba.display()
    );
    let log = format!("{data_str}/server.log");
    if !run(
        &bin.join("pg_ctl"),
        &["-D", &pgdata_str, "-o", &opts, "-l", &log, "-w", "start"],
    ) {
        eprintln!("{}", std::fs::read_to_string(&log).unwrap_or_default());
        return None;
    }
    eprintln!("started a TLS-only PostgreSQL cluster in {data_str} on port {TLS_PORT}");
    Some(TlsPostgres {
        port: TLS_PORT,
        root_cert: crt,
        pgdata,
        bin,
    })
}

/// The mini program registered in every test simulator.
pub const TEST_MP_APP_ID: &str = "wxtestmp00000001";
/// Its secret (a test value).
pub const TEST_MP_APP_SECRET: &str = "test-mp-secret-0123456789abcdef0";

/// The WeChat Pay merchant registered in every test simulator.
pub const TEST_MCH_ID: &str = "1900000109";
/// Its API key (a test value, 32 characters as WeChat issues them).
pub const TEST_PAY_KEY: &str = "testpaykey0123456789abcdefghijkl";

/// The test merchant's APIv3 key (32 characters).
pub const TEST_API_V3_KEY: &str = "testapiv3key0123456789abcdefghij";

/// Registers the test merchant for Pay v3 with the simulator's sandbox merchant key, signed for as `mode` says.
pub fn register_v3_merchant(sim: &SimServer, mode: wechat_sim::SigningMode) -> wechat_sim::V3MerchantInfo {
    sim.handle()
        .add_v3_merchant(
            TEST_MCH_ID,
            TEST_API_V3_KEY,
            wechat_sim::SANDBOX_MERCHANT_SERIAL,
            wechat_sim::SANDBOX_MERCHANT_CERT,
            mode,
        )
        .expect("v3 merchant registers")
}

/// Starts a simulator on port 0 with the test official account, mini program and merchant registered.
pub async fn spawn_sim() -> SimServer {
    SimServer::start(
        "127.0.0.1:0",
        &[(TEST_APP_ID, TEST_APP_SECRET), (TEST_MP_APP_ID, TEST_MP_APP_SECRET)],
    )
    .await
    .inspect(|sim| sim.handle().add_merchant(TEST_MCH_ID, TEST_PAY_KEY))
    .expect("simulator starts")
}

/// Waits until `check` holds (polling every 20 ms for up to `timeout`), or panics naming `what`.
pub async fn eventually_within(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`eventually_within`] five seconds.
pub async fn eventually(what: &str, check: impl FnMut() -> bool) {
    eventually_within(what, Duration::from_secs(5), check).await;
}

/// A free port on 127.0.0.1 (bound and released; the kernel does not hand it out again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The text of the (first) QR code in a PNG image: tests read what a phone would scan.
pub fn decode_qr(png_bytes: &[u8]) -> String {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sized image")];
    let frame = reader.next_frame(&mut buf).expect("a frame");
    let (w, h) = (frame.width as usize, frame.height as usize);
    let channels = frame.color_type.samples();
    let gray: Vec<u8> = buf[..frame.buffer_size()]
        .chunks_exact(channels)
        .map(|p| p[0])
        .collect();
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| gray[y * w + x]);
    let grids = img.detect_grids();
    grids
        .first()
        .expect("a QR code in the image")
        .decode()
        .expect("a readable QR code")
        .1
}

/// Whether this run is CI (`CI=true`), where nothing may be skipped.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The workspace's PostgreSQL migrations.
fn migrations_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../migrations/postgres")
}
