//! One Diesel connection type over PostgreSQL and SQLite, an r2d2 pool, and the embedded migrations of each backend.

pub mod certificate_store;
pub mod schema;
pub mod stores;
pub mod token_store;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A connection to either backend. Queries written once against [`schema`] run on both; backend-specific SQL
/// (upserts) matches on the variant.
#[cfg(not(feature = "mysql"))]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL (first: the derive tries variants in order).
    Postgresql(diesel::PgConnection),
    /// SQLite.
    Sqlite(diesel::SqliteConnection),
}

/// A connection to any of the three backends (built with the `mysql` feature). The derive cannot take a `cfg` on a
/// variant, hence two definitions; code matching on the variant names `DbConnection::Mysql` under the same `cfg`.
#[cfg(feature = "mysql")]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL (first: the derive tries variants in order).
    Postgresql(diesel::PgConnection),
    /// SQLite.
    Sqlite(diesel::SqliteConnection),
    /// MySQL or MariaDB.
    Mysql(diesel::MysqlConnection),
}

impl fmt::Debug for DbConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DbConnection::Postgresql(_) => "DbConnection::Postgresql",
            DbConnection::Sqlite(_) => "DbConnection::Sqlite",
            #[cfg(feature = "mysql")]
            DbConnection::Mysql(_) => "DbConnection::Mysql",
        })
    }
}

impl DbConnection {
    /// True on MySQL/MariaDB (always false in a build without the `mysql` feature).
    pub fn is_mysql(&self) -> bool {
        #[cfg(feature = "mysql")]
        if let DbConnection::Mysql(_) = self {
            return true;
        }
        false
    }
}

/// A pooled connection with a mark for "this connection failed at the connection level": the pool discards a
/// marked connection instead of handing it out again. Diesel's own `is_broken` only looks at the transaction state,
/// so a connection whose backend was terminated (a PostgreSQL restart, a failover, an idle-connection killer) would
/// otherwise stay in the pool and fail every request that draws it.
pub struct GuardedConnection {
    conn: DbConnection,
    broken: bool,
    /// The pool's count of connection failures when this connection was last known good.
    seen_failures: u64,
    /// The pool's count of connection failures (shared by all its connections).
    failures: Arc<AtomicU64>,
}

impl fmt::Debug for GuardedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedConnection")
            .field("conn", &self.conn)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for GuardedConnection {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for GuardedConnection {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

impl GuardedConnection {
    /// Marks the connection as unusable: it is closed when returned to the pool.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Whether the connection was marked unusable.
    pub fn is_marked_broken(&self) -> bool {
        self.broken
    }

    /// Looks at an error this connection produced and marks the connection when the error says (or a probe shows)
    /// that the session is gone. Returns whether it is now marked.
    pub fn note_error(&mut self, e: &DbError) -> bool {
        if self.broken {
            return true;
        }
        match classify(e) {
            ErrorClass::Connection => self.broken = true,
            // An error PostgreSQL gave no class for (a failed prepare, a FATAL read before libpq saw the socket
            // close): one `SELECT 1` tells whether the session still works. Only on this rare path.
            ErrorClass::Unclear => self.broken = self.conn.batch_execute("SELECT 1").is_err(),
            ErrorClass::Statement => {}
        }
        if self.broken {
            tracing::warn!(error = %e, "database connection failed; discarding it");
            // One dead connection usually means they all are (a restart, a failover): the others are checked
            // before their next use (see `checkout`).
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.broken
    }
}

/// Takes a connection from the pool. After a connection failure anywhere in the pool, a connection that has not
/// been checked since is tested with `SELECT 1` first and, if dead, discarded for another — so after a database
/// restart only the request that discovered it fails, not one request per pooled connection. In normal operation
/// this costs nothing.
///
/// While the database is unreachable (the pool's last wait ended without a connection while it held fewer than it
/// may open), waits are cut to [`UNREACHABLE_WAIT`]: every request of an outage is answered 503 at once instead of
/// each waiting out `database.acquire_timeout_ms` behind the others.
pub fn checkout(db: &Db) -> Result<PooledConnection, DbError> {
    for _ in 0..=db.pool.max_size() {
        let mut conn = counted_get(db)?;
        let failures = conn.failures.load(Ordering::Relaxed);
        if conn.seen_failures == failures {
            return Ok(conn);
        }
        if conn.conn.batch_execute("SELECT 1").is_ok() {
            conn.seen_failures = failures;
            return Ok(conn);
        }
        conn.broken = true;
    }
    counted_get(db)
}

/// How long a checkout waits while the database is known to be unreachable.
pub const UNREACHABLE_WAIT: Duration = Duration::from_millis(250);
/// How long after the last failed wait the database counts as unreachable.
const UNREACHABLE_FOR: Duration = Duration::from_secs(2);

/// Work waiting for a pooled connection in this process (the `wxkit_db_pool_waiting` gauge).
static POOL_WAITING: AtomicU64 = AtomicU64::new(0);

/// How many are waiting for a pooled connection now.
pub fn pool_waiting() -> u64 {
    POOL_WAITING.load(Ordering::Relaxed)
}

fn counted_get(db: &Db) -> Result<PooledConnection, DbError> {
    let unreachable = db.unreachable_recently();
    POOL_WAITING.fetch_add(1, Ordering::Relaxed);
    let got = if unreachable {
        db.pool.get_timeout(UNREACHABLE_WAIT)
    } else {
        db.pool.get()
    };
    POOL_WAITING.fetch_sub(1, Ordering::Relaxed);
    match got {
        Ok(conn) => {
            if unreachable {
                db.unreachable_at.store(0, Ordering::Relaxed);
            }
            Ok(conn)
        }
        Err(e) => {
            // A pool at its size is busy, not cut off: only a pool that could not open connections marks an outage.
            if db.pool.state().connections < db.pool.max_size() {
                db.unreachable_at.store(db.epoch_ms(), Ordering::Relaxed);
            }
            Err(e.into())
        }
    }
}

enum ErrorClass {
    Connection,
    Unclear,
    Statement,
}

/// Messages of errors that end a database session, for errors libpq reported without a connection-class state.
const CONNECTION_MESSAGES: &[&str] = &[
    "terminating connection",
    "server closed the connection",
    "connection to server",
    "no connection to the server",
    "could not receive data",
    "could not send data",
    "ssl connection has been closed",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "broken pipe",
    "connection reset",
    // MySQL/MariaDB (client errors 2006, 2013; server 1053, 1927).
    "server has gone away",
    "lost connection",
    "connection was killed",
    "server shutdown in progress",
    "can't connect to",
];

fn classify(e: &DbError) -> ErrorClass {
    match e {
        DbError::Query(e) => classify_query(e),
        _ => ErrorClass::Statement,
    }
}

fn classify_query(e: &diesel::result::Error) -> ErrorClass {
    use diesel::result::{DatabaseErrorKind, Error as DieselError};
    match e {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => ErrorClass::Connection,
            DatabaseErrorKind::Unknown => {
                let message = info.message().to_ascii_lowercase();
                if CONNECTION_MESSAGES.iter().any(|m| message.contains(m)) {
                    ErrorClass::Connection
                } else {
                    ErrorClass::Unclear
                }
            }
            _ => ErrorClass::Statement,
        },
        DieselError::BrokenTransactionManager => ErrorClass::Connection,
        // A COMMIT that failed because the connection went (MySQL: "Server has gone away" for both the commit and
        // the rollback Diesel tries after it): the transaction may or may not have committed — work that is safe to
        // run again (a guarded update) runs again on a live connection.
        DieselError::RollbackErrorOnCommit {
            commit_error,
            rollback_error,
        } => match (classify_query(commit_error), classify_query(rollback_error)) {
            (ErrorClass::Connection, _) | (_, ErrorClass::Connection) => ErrorClass::Connection,
            _ => ErrorClass::Unclear,
        },
        _ => ErrorClass::Statement,
    }
}

/// Whether an insert or update failed on a unique key (a duplicate: often the expected answer, not an error).
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Whether an error means the connection itself failed (the statement may not have reached the database).
/// A pool that could hand out no connection within its timeout counts too: nothing reached the database.
pub fn is_connection_error(e: &DbError) -> bool {
    matches!(e, DbError::Pool(_) | DbError::Unavailable(_)) || matches!(classify(e), ErrorClass::Connection)
}

/// The r2d2 pool beneath [`Db`].
pub type DbPool = r2d2::Pool<ConnectionManager>;

/// The database: the connection pool and the threads that run blocking work on it ([`blocking`]), owned together
/// (a second pool in the process — a test's second server — has threads of its own, sized by its own pool; the
/// threads end when the last clone is dropped). Dereferences to the pool.
#[derive(Clone)]
pub struct Db {
    pool: DbPool,
    threads: crossbeam_channel::Sender<Job>,
    /// When (ms since `epoch`, plus one) a wait for a connection last failed for want of a database; 0: not lately.
    unreachable_at: Arc<AtomicU64>,
    epoch: std::time::Instant,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("max_size", &self.pool.max_size())
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Db {
    type Target = DbPool;
    fn deref(&self) -> &DbPool {
        &self.pool
    }
}

impl Db {
    /// `pool` with its database threads: as many as the pool has connections, at least 4, started now.
    pub fn new(pool: DbPool) -> Db {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        for i in 0..usize::try_from(pool.max_size()).unwrap_or(4).max(4) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("wxkit-db-{i}"))
                .spawn(move || {
                    // Ends when every sender (every clone of the `Db`) is gone.
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a database thread");
            }
        }
        Db {
            pool,
            threads: tx,
            unreachable_at: Arc::new(AtomicU64::new(0)),
            epoch: std::time::Instant::now(),
        }
    }

    fn epoch_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }

    /// Whether a wait for a connection failed for want of a database within the last two seconds.
    fn unreachable_recently(&self) -> bool {
        let at = self.unreachable_at.load(Ordering::Relaxed);
        at != 0 && self.epoch_ms().saturating_sub(at) < UNREACHABLE_FOR.as_millis() as u64
    }

    /// The r2d2 pool.
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Work queued for a database thread (every thread busy).
    pub fn queued(&self) -> usize {
        self.threads.len()
    }
}
/// A pooled connection.
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

// Re-exported so that the rest of the app names one r2d2.
pub use diesel::r2d2;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");

/// Which database a `DATABASE_URL` names.
#[derive(Clone, PartialEq, Eq)]
pub enum Backend {
    /// `postgres://` / `postgresql://` — the URL as given.
    Postgres(String),
    /// `sqlite://PATH` / `sqlite:PATH` — the file path.
    Sqlite(String),
    /// `mysql://USER:PASSWORD@HOST:PORT/DB` (MySQL or MariaDB) — the URL as given. Only a build with the `mysql`
    /// feature accepts one.
    Mysql(String),
}

/// A database problem, reported as one line.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported backend.
    #[error("DATABASE_URL {0}")]
    Url(String),
    /// The database could not be reached or opened.
    #[error("cannot connect to {target}: {message}")]
    Connect {
        /// The database, with any password removed.
        target: String,
        /// The driver's message.
        message: String,
    },
    /// Migrations failed.
    #[error("migrating {target} failed: {message}")]
    Migrate {
        /// The database, with any password removed.
        target: String,
        /// What failed.
        message: String,
    },
    /// The pool could not hand out a connection.
    #[error("database pool: {0}")]
    Pool(#[from] r2d2::PoolError),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// A blocking task failed to complete.
    #[error("database task failed: {0}")]
    Task(String),
    /// The database could not be reached (the same failure, reported to another caller of a shared attempt).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A backup could not be written.
    #[error("backup to {to} failed: {message}")]
    Backup {
        /// The file asked for.
        to: String,
        /// Why.
        message: String,
    },
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the raw URL: it may carry a password.
        write!(f, "Backend({})", self.target())
    }
}

impl Backend {
    /// True on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }

    /// Parses a database URL, checking the scheme ourselves: Diesel's multi-backend `establish` would try every
    /// backend and report only the last failure.
    pub fn from_url(url: &str) -> Result<Backend, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres(url.to_owned()));
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() || path == ":memory:" {
                return Err(DbError::Url(format!(
                    "{url:?} needs a file path (an in-memory database cannot be shared by a pool)"
                )));
            }
            return Ok(Backend::Sqlite(path.to_owned()));
        }
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            if !cfg!(feature = "mysql") {
                return Err(DbError::Url(format!(
                    "{:?} names MySQL/MariaDB, which this build of wxkit leaves out: build it with \
                     `cargo build --release --features mysql` (needs Debian's default-libmysqlclient-dev)",
                    redact_url(url)
                )));
            }
            // Diesel's MySQL client reads only `mysql://`.
            let url = match url.strip_prefix("mariadb://") {
                Some(rest) => format!("mysql://{rest}"),
                None => url.to_owned(),
            };
            return Ok(Backend::Mysql(url));
        }
        let mysql = if cfg!(feature = "mysql") {
            ", mysql://USER:PASSWORD@HOST/DB"
        } else {
            ""
        };
        Err(DbError::Url(format!(
            "{:?} is not supported: use sqlite://PATH or postgres://USER@HOST/DB{mysql}",
            redact_url(url)
        )))
    }

    /// True on MySQL/MariaDB.
    pub fn is_mysql(&self) -> bool {
        matches!(self, Backend::Mysql(_))
    }

    /// `sqlite`, `postgres` or `mysql`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
            Backend::Mysql(_) => "mysql",
        }
    }

    /// A printable description without credentials.
    pub fn target(&self) -> String {
        match self {
            Backend::Postgres(url) => format!("PostgreSQL at {}", redact_url(url)),
            Backend::Sqlite(path) => format!("SQLite database {path}"),
            Backend::Mysql(url) => format!("MySQL at {}", redact_url(url)),
        }
    }

    fn connect_error(&self, e: impl fmt::Display) -> DbError {
        let mut message = e.to_string().trim().replace('\n', " ");
        // A PostgreSQL database that is not there yet: say how to make it.
        if matches!(self, Backend::Postgres(_)) && message.contains("does not exist") && message.contains("database") {
            message.push_str(" — create it with `wxkit migrate --create-database` (or CREATE DATABASE as its owner)");
        }
        // MySQL: "Unknown database 'x'".
        if matches!(self, Backend::Mysql(_)) && message.contains("Unknown database") {
            message.push_str(
                " — create it with `wxkit migrate --create-database` (or CREATE DATABASE … CHARACTER SET utf8mb4)",
            );
        }
        DbError::Connect {
            target: self.target(),
            message,
        }
    }

    /// Opens one connection, with the SQLite pragmas applied.
    pub fn establish(&self) -> Result<DbConnection, DbError> {
        match self {
            Backend::Postgres(url) => {
                let mut conn = diesel::PgConnection::establish(url).map_err(|e| self.connect_error(e))?;
                // Our statements are point lookups and single-row writes, prepared once per connection by Diesel.
                // With `auto`, PostgreSQL re-plans a prepared statement whenever a custom plan looks cheaper than
                // the generic one — for the POS batch statement (array parameters) that is every execution, and
                // planning it costs more than running it (batching off: 1367 vs 4250 redemptions/s,
                // docs/benchmarks.md).
                // PostgreSQL before 12 has no such setting: run there with its default rather than not at all.
                if let Err(e) = conn.batch_execute("SET plan_cache_mode = force_generic_plan") {
                    tracing::warn!(error = %e, "cannot set plan_cache_mode (PostgreSQL 12 or later has it)");
                }
                Ok(DbConnection::Postgresql(conn))
            }
            Backend::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(path).map_err(|e| self.connect_error(e))?;
                // WAL lets readers run beside the writer; busy_timeout makes writers queue instead of failing.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON;",
                )
                .map_err(|e| self.connect_error(e))?;
                Ok(DbConnection::Sqlite(conn))
            }
            #[cfg(feature = "mysql")]
            Backend::Mysql(url) => {
                let mut conn = diesel::MysqlConnection::establish(url).map_err(|e| self.connect_error(e))?;
                // READ COMMITTED, as PostgreSQL: every read-then-write path was written against it. Under MySQL's
                // default REPEATABLE READ a transaction's plain reads see its first snapshot, so a read after a
                // conditional UPDATE lost a race would show a row state the UPDATE never saw. Strict mode: a value
                // too long for its column is an error, never silently cut (a coupon title cut mid-character).
                conn.batch_execute(
                    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
                     SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ONLY_FULL_GROUP_BY'; \
                     SET SESSION innodb_lock_wait_timeout = 10",
                )
                .map_err(|e| self.connect_error(e))?;
                Ok(DbConnection::Mysql(conn))
            }
            #[cfg(not(feature = "mysql"))]
            Backend::Mysql(_) => Err(DbError::Url("MySQL needs a build with `--features mysql`".into())),
        }
    }

    /// Whether the database exists: the SQLite file, or (PostgreSQL) `true` — a missing PostgreSQL database shows as
    /// a connection error naming it.
    pub fn exists(&self) -> bool {
        match self {
            Backend::Sqlite(path) => {
                let file = path.split('?').next().unwrap_or(path);
                std::path::Path::new(file).exists()
            }
            Backend::Postgres(_) | Backend::Mysql(_) => true,
        }
    }

    /// On PostgreSQL, creates the URL's database when it does not exist (connecting to the server's `postgres`
    /// database to do so; the user needs CREATEDB). Returns whether it created one. SQLite files are created on first
    /// open, so this is a no-op there.
    pub fn create_database_if_missing(&self) -> Result<bool, DbError> {
        #[cfg(feature = "mysql")]
        if let Backend::Mysql(url) = self {
            return self.create_mysql_database_if_missing(url);
        }
        let Backend::Postgres(url) = self else {
            return Ok(false);
        };
        let mut parsed = url::Url::parse(url).map_err(|e| DbError::Url(format!("{}: {e}", redact_url(url))))?;
        let name = parsed.path().trim_start_matches('/').to_owned();
        if name.is_empty() || name == "postgres" {
            return Ok(false);
        }
        parsed.set_path("/postgres");
        let mut admin = diesel::PgConnection::establish(parsed.as_str()).map_err(|e| self.connect_error(e))?;
        #[derive(diesel::QueryableByName)]
        struct Found {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            found: bool,
        }
        let found: Found = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS found")
            .bind::<diesel::sql_types::Text, _>(&name)
            .get_result(&mut admin)
            .map_err(|e| self.connect_error(e))?;
        if found.found {
            return Ok(false);
        }
        // An identifier cannot be a bind parameter: quote it (doubling any quote).
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match admin.batch_execute(&format!("CREATE DATABASE {quoted}")) {
            Ok(()) => Ok(true),
            // Created by another instance meanwhile.
            Err(diesel::result::Error::DatabaseError(_, info)) if info.message().contains("already exists") => {
                Ok(false)
            }
            Err(e) => Err(self.connect_error(e)),
        }
    }

    /// MySQL's half of [`create_database_if_missing`](Backend::create_database_if_missing): `utf8mb4` (emoji in
    /// nicknames and coupon titles) with the binary collation (openids and codes compare byte for byte, as on the
    /// other backends; the server's default `_ci` collation would make `abc` and `ABC` one key).
    #[cfg(feature = "mysql")]
    fn create_mysql_database_if_missing(&self, url: &str) -> Result<bool, DbError> {
        let mut parsed = url::Url::parse(url).map_err(|e| DbError::Url(format!("{}: {e}", redact_url(url))))?;
        let name = parsed.path().trim_start_matches('/').to_owned();
        if name.is_empty() {
            return Ok(false);
        }
        parsed.set_path("/");
        let mut admin = diesel::MysqlConnection::establish(parsed.as_str()).map_err(|e| self.connect_error(e))?;
        #[derive(diesel::QueryableByName)]
        struct Found {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let found: Found =
            diesel::sql_query("SELECT COUNT(*) AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?")
                .bind::<diesel::sql_types::Text, _>(&name)
                .get_result(&mut admin)
                .map_err(|e| self.connect_error(e))?;
        if found.n > 0 {
            return Ok(false);
        }
        let quoted = format!("`{}`", name.replace('`', "``"));
        admin
            .batch_execute(&format!(
                "CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            ))
            .map_err(|e| self.connect_error(e))?;
        Ok(true)
    }

    /// Runs the pending migrations of this backend. On PostgreSQL an advisory lock makes instances that start
    /// together migrate one after the other.
    pub fn migrate(&self) -> Result<Vec<String>, DbError> {
        let migrate_error = |e: &dyn fmt::Display| DbError::Migrate {
            target: self.target(),
            message: e.to_string(),
        };
        match self.establish()? {
            DbConnection::Postgresql(mut conn) => {
                conn.batch_execute("SELECT pg_advisory_lock(7454530001)")
                    .map_err(|e| migrate_error(&e))?;
                let result = conn
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
                    .map_err(|e| migrate_error(&e));
                let _ = conn.batch_execute("SELECT pg_advisory_unlock(7454530001)");
                result
            }
            DbConnection::Sqlite(mut conn) => {
                // A table rebuild (SQLite's way to change a constraint) drops and renames tables others point at:
                // SQLite's guide runs it with foreign keys off, then checks them. The pragma is a no-op inside a
                // transaction, so it is set here, around the migrations' own transactions, on this connection only.
                conn.batch_execute("PRAGMA foreign_keys = OFF")
                    .map_err(|e| migrate_error(&e))?;
                let applied: Vec<String> = conn
                    .run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|v| v.iter().map(ToString::to_string).collect())
                    .map_err(|e| migrate_error(&e))?;
                #[derive(diesel::QueryableByName)]
                struct Broken {
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    table: String,
                }
                let broken: Vec<Broken> = diesel::sql_query("PRAGMA foreign_key_check")
                    .load(&mut conn)
                    .map_err(|e| migrate_error(&e))?;
                if let Some(b) = broken.first() {
                    return Err(migrate_error(&format!(
                        "{} rows break a foreign key after migrating (first in table {})",
                        broken.len(),
                        b.table
                    )));
                }
                Ok(applied)
            }
            #[cfg(feature = "mysql")]
            DbConnection::Mysql(mut conn) => {
                // MySQL's counterpart of the advisory lock; released when this connection closes at the latest.
                conn.batch_execute("DO GET_LOCK('wxkit_migrate', 120)")
                    .map_err(|e| migrate_error(&e))?;
                let result = conn
                    .run_pending_migrations(MYSQL_MIGRATIONS)
                    .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
                    .map_err(|e| migrate_error(&e));
                let _ = conn.batch_execute("DO RELEASE_LOCK('wxkit_migrate')");
                result
            }
        }
    }
}

/// Runs `work` in a transaction that reads, then writes. On SQLite it begins `IMMEDIATE`: the write lock is taken
/// first, so a concurrent writer waits out the busy timeout instead of failing — a deferred transaction that read
/// before another connection wrote cannot take the write lock later, and SQLite refuses that upgrade at once
/// ("database is locked", the busy timeout does not apply). On PostgreSQL, an ordinary transaction (its row locks and
/// conditional updates decide). A transaction `work` opens inside becomes a savepoint.
pub fn write_transaction<T>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    if !matches!(conn, DbConnection::Sqlite(_)) {
        return short_transaction(conn, work);
    }
    immediate_transaction(conn, work)
}

/// [`write_transaction`] for work with an error type of its own (a refusal rolls the transaction back like any
/// error): `BEGIN IMMEDIATE` on SQLite, an ordinary transaction elsewhere.
pub fn immediate_transaction<T, E: From<diesel::result::Error>>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let DbConnection::Sqlite(inner) = conn else {
        return conn.transaction(work);
    };
    AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
    let result = work(conn);
    let DbConnection::Sqlite(inner) = conn else {
        return result;
    };
    match result {
        Ok(value) => match AnsiTransactionManager::commit_transaction(inner) {
            Ok(()) => Ok(value),
            Err(e) => {
                let _ = AnsiTransactionManager::rollback_transaction(inner);
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = AnsiTransactionManager::rollback_transaction(inner);
            Err(e)
        }
    }
}

/// Hides the password of a URL (`postgres://user:secret@host` → `postgres://user:***@host`).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// An r2d2 manager that knows its backend up front (see [`Backend::from_url`]).
#[derive(Debug)]
pub struct ConnectionManager {
    backend: Backend,
    failures: Arc<AtomicU64>,
    sqlite_cache_kib: u32,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = GuardedConnection;
    type Error = DbError;

    fn connect(&self) -> Result<GuardedConnection, DbError> {
        let mut conn = self.backend.establish()?;
        if let DbConnection::Sqlite(c) = &mut conn {
            // SQLite's default page cache is 2 MB per connection, filled by any burst of reads; the OS page cache
            // already holds the file, so a small one costs little speed and keeps an idle server small.
            c.batch_execute(&format!("PRAGMA cache_size = -{}", self.sqlite_cache_kib))
                .map_err(|e| self.backend.connect_error(e))?;
        }
        Ok(GuardedConnection {
            conn,
            broken: false,
            seen_failures: self.failures.load(Ordering::Relaxed),
            failures: self.failures.clone(),
        })
    }

    fn is_valid(&self, conn: &mut GuardedConnection) -> Result<(), DbError> {
        conn.conn.batch_execute("SELECT 1").map_err(DbError::Query)
    }

    fn has_broken(&self, conn: &mut GuardedConnection) -> bool {
        use diesel::r2d2::R2D2Connection;
        std::thread::panicking()
            || conn.broken
            || match &mut conn.conn {
                DbConnection::Postgresql(c) => c.is_broken(),
                DbConnection::Sqlite(c) => c.is_broken(),
                #[cfg(feature = "mysql")]
                DbConnection::Mysql(c) => c.is_broken(),
            }
    }
}

/// Checks the URL, runs migrations and builds the pool. Blocking: call it from a blocking context.
/// `sqlite_cache_kib` is each SQLite connection's page cache (`database.sqlite_cache_kib`).
pub fn connect_and_migrate(url: &str, pool_size: u32, sqlite_cache_kib: u32) -> Result<(Backend, Db), DbError> {
    connect_and_migrate_with(url, pool_size, sqlite_cache_kib, Duration::from_millis(1500))
}

/// Initialises OpenSSL — which libpq uses for TLS to PostgreSQL — without its exit-time cleanup. Left to libpq,
/// OpenSSL's `atexit` handler frees its state while pool and listener threads may still be closing TLS connections,
/// and the process dies at exit (SIGABRT or SIGSEGV on a clean SIGTERM, seen under load). Call it before the first
/// connection; [`connect_and_migrate_with`] does, and `main` does first of all. Idempotent.
pub fn init_tls() {
    openssl_sys::init();
}

/// [`connect_and_migrate`] with the pool's checkout timeout (`database.acquire_timeout_ms`): during an outage a
/// request waits at most this long for a connection, then is answered 503.
pub fn connect_and_migrate_with(
    url: &str,
    pool_size: u32,
    sqlite_cache_kib: u32,
    acquire_timeout: Duration,
) -> Result<(Backend, Db), DbError> {
    init_tls();
    let backend = Backend::from_url(url)?;
    let applied = backend.migrate()?;
    for name in &applied {
        tracing::info!(migration = %name, backend = backend.name(), "applied migration");
    }
    let size = match backend {
        Backend::Postgres(_) | Backend::Mysql(_) => pool_size,
        // SQLite has one writer; a handful of connections serves readers without lock churn.
        Backend::Sqlite(_) => pool_size.min(8),
    };
    let pool = r2d2::Pool::builder()
        .max_size(size)
        .connection_timeout(acquire_timeout)
        // r2d2 logs every failed connection attempt at error level (dozens a second during an outage); the outage
        // is logged once per interval by `DbOutageLog` instead.
        .error_handler(Box::new(r2d2::NopErrorHandler))
        // No `SELECT 1` round trip per checkout: a broken connection is caught by `has_broken` after its first error.
        // A connection that failed at the connection level is marked (`GuardedConnection::note_error`) and dropped
        // by `has_broken` when it comes back, so each dead connection fails at most one piece of work.
        .test_on_check_out(false)
        // Connections are opened on demand, not kept topped up: after an outage the pool does not hammer the
        // database with reconnects in the background (each discarded connection would otherwise be replaced at once,
        // and retried while the database is away); the next request opens what it needs.
        .min_idle(Some(0))
        .build(ConnectionManager {
            backend: backend.clone(),
            failures: Arc::new(AtomicU64::new(0)),
            sqlite_cache_kib: sqlite_cache_kib.max(64),
        })
        .map_err(|e| DbError::Connect {
            target: backend.target(),
            message: e.to_string(),
        })?;
    Ok((backend, Db::new(pool)))
}

/// Database failures as log lines: the first at once, the rest of an outage as one line per interval with the
/// count (an outage under load would otherwise write a line per request).
#[derive(Debug)]
pub struct OutageLog {
    window_start: std::sync::Mutex<Option<std::time::Instant>>,
    suppressed: AtomicU64,
}

/// How often an ongoing run of database failures is logged.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(10);

/// The process's [`OutageLog`].
pub static OUTAGE_LOG: OutageLog = OutageLog {
    window_start: std::sync::Mutex::new(None),
    suppressed: AtomicU64::new(0),
};

impl OutageLog {
    /// Logs `cause` unless one was logged within the interval; then counts it, and the next line says how many.
    /// Returns whether it logged.
    pub fn failed(&self, cause: &dyn fmt::Display) -> bool {
        match self.note(std::time::Instant::now()) {
            Some(suppressed) => {
                tracing::error!(
                    error = %cause,
                    similar_since_last = suppressed,
                    "database unavailable (requests answered 503)"
                );
                true
            }
            None => false,
        }
    }

    /// `Some(failures not logged since the last line)` when a line is due at `now`.
    fn note(&self, now: std::time::Instant) -> Option<u64> {
        let mut start = self
            .window_start
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *start {
            Some(at) if now.saturating_duration_since(at) < OUTAGE_LOG_EVERY => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *start = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}

/// Writes a consistent copy of the database to `to` while it is in use; returns the copy's size in bytes.
///
/// SQLite: `VACUUM INTO` reads the database in one transaction, so writers carry on and the copy is the database
/// as of one moment, compacted. PostgreSQL: `pg_dump --format=custom` (one snapshot; restore with `pg_restore`).
/// An existing `to` is never overwritten.
pub fn backup(backend: &Backend, to: &std::path::Path) -> Result<u64, DbError> {
    let failed = |message: String| DbError::Backup {
        to: to.display().to_string(),
        message,
    };
    if to.exists() {
        return Err(failed(
            "the file exists: pick a new name (a backup never overwrites one)".into(),
        ));
    }
    // Like every data command: a backup opens an existing database, it never creates an empty one to copy.
    if !backend.exists() {
        return Err(failed(format!("there is no database at {}", backend.target())));
    }
    match backend {
        Backend::Sqlite(_) => {
            let mut conn = backend.establish()?;
            let path = to.to_str().ok_or_else(|| failed("the path is not UTF-8".into()))?;
            diesel::sql_query("VACUUM INTO ?")
                .bind::<diesel::sql_types::Text, _>(path)
                .execute(&mut conn)
                .map_err(|e| failed(e.to_string()))?;
        }
        Backend::Postgres(url) => {
            // The password goes by environment, not on the command line (which every local user can read).
            let mut parsed = url::Url::parse(url).map_err(|e| failed(e.to_string()))?;
            let password = parsed
                .password()
                .map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned());
            let _ = parsed.set_password(None);
            let mut command = std::process::Command::new("pg_dump");
            if let Some(p) = password {
                command.env("PGPASSWORD", p);
            }
            let out = command
                .args(["--format=custom", "--no-owner", "--file"])
                .arg(to)
                .arg(parsed.as_str())
                .output()
                .map_err(|e| failed(format!("cannot run pg_dump ({e}): install Debian's postgresql-client")))?;
            if !out.status.success() {
                let _ = std::fs::remove_file(to);
                // pg_dump got the URL without its password, so its message cannot carry one.
                let stderr = String::from_utf8_lossy(&out.stderr);
                let message = stderr.trim().lines().collect::<Vec<_>>().join(" / ");
                return Err(failed(format!("pg_dump failed: {message}")));
            }
        }
        Backend::Mysql(url) => mysqldump(url, to).map_err(failed)?,
    }
    std::fs::metadata(to)
        .map(|m| m.len())
        .map_err(|e| failed(e.to_string()))
}

/// `mysqldump --single-transaction` (one consistent InnoDB snapshot, writers carry on) into `to`; restore with
/// `mysql DB < file`. The password goes by environment (`MYSQL_PWD`), not on the command line.
fn mysqldump(url: &str, to: &std::path::Path) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let database = parsed.path().trim_start_matches('/');
    if database.is_empty() {
        return Err("the URL names no database".into());
    }
    let mut command = std::process::Command::new("mysqldump");
    if let Some(p) = parsed.password() {
        command.env("MYSQL_PWD", decode(p));
    }
    command
        .args(["--single-transaction", "--routines", "--default-character-set=utf8mb4"])
        .arg(format!("--host={}", parsed.host_str().unwrap_or("localhost")))
        .arg(format!("--port={}", parsed.port().unwrap_or(3306)))
        .arg(format!("--user={}", decode(parsed.username())))
        .arg(format!("--result-file={}", to.display()))
        .arg(database);
    let out = command
        .output()
        .map_err(|e| format!("cannot run mysqldump ({e}): install Debian's mariadb-client"))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(to);
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "mysqldump failed: {}",
            stderr.trim().lines().collect::<Vec<_>>().join(" / ")
        ));
    }
    Ok(())
}

/// Work for the database threads.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs blocking database work off the async executor, on the database threads.
///
/// A fixed set of threads, as many as the pool has connections, rather than tokio's blocking pool: work beyond the
/// pool's size would only wait for a connection, each on a thread of its own, and a burst (a thousand login pages
/// connecting, a rush at the tills) would start up to 512 threads per runtime that retire later, each leaving its
/// allocator heap behind (docs/benchmarks.md, idle login sockets). Here a burst queues, the threads stay, and their
/// heaps are reused.
pub async fn blocking<T, F>(db: &Db, work: F) -> Result<T, DbError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    let pool = db.clone();
    // The request's span (with its request id) follows the work onto the database thread.
    let span = tracing::Span::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _entered = span.enter();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut conn = checkout(&pool)?;
            let result = work(&mut conn);
            if let Err(e) = &result {
                conn.note_error(e);
            }
            result
        }))
        .unwrap_or_else(|_| Err(DbError::Task("database work panicked".into())));
        let _ = tx.send(result);
    });
    db.threads
        .send(job)
        .map_err(|_| DbError::Task("database threads stopped".into()))?;
    rx.await
        .map_err(|_| DbError::Task("database work was dropped".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_logged_once_per_interval_with_its_count() {
        let log = OutageLog {
            window_start: std::sync::Mutex::new(None),
            suppressed: AtomicU64::new(0),
        };
        let t0 = std::time::Instant::now();
        assert_eq!(log.note(t0), Some(0), "the first failure is logged at once");
        for i in 1..38 {
            assert_eq!(log.note(t0 + Duration::from_millis(i * 100)), None);
        }
        assert_eq!(
            log.note(t0 + OUTAGE_LOG_EVERY),
            Some(37),
            "then one line with the count"
        );
    }

    #[test]
    fn a_commit_lost_with_its_connection_is_a_connection_error() {
        use diesel::result::{DatabaseErrorKind, Error as E};
        let gone = || {
            E::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(String::from("Server has gone away")),
            )
        };
        let lost = DbError::Query(E::RollbackErrorOnCommit {
            commit_error: Box::new(gone()),
            rollback_error: Box::new(gone()),
        });
        assert!(is_connection_error(&lost), "retried on a live connection");
        let conflict = DbError::Query(E::RollbackErrorOnCommit {
            commit_error: Box::new(E::DatabaseError(
                DatabaseErrorKind::SerializationFailure,
                Box::new(String::from("could not serialize access")),
            )),
            rollback_error: Box::new(E::NotFound),
        });
        assert!(!is_connection_error(&conflict));
        assert!(is_connection_error(&DbError::Query(gone())));
        let killed = E::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(String::from("Connection was killed")),
        );
        assert!(is_connection_error(&DbError::Query(killed)));
    }

    #[test]
    fn urls_pick_the_backend() {
        assert_eq!(
            Backend::from_url("sqlite://wxkit.db").unwrap(),
            Backend::Sqlite("wxkit.db".into())
        );
        assert_eq!(
            Backend::from_url("sqlite:///tmp/x.db").unwrap(),
            Backend::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            Backend::from_url("postgres://u@h/d").unwrap(),
            Backend::Postgres(_)
        ));
        let mysql = Backend::from_url("mysql://u@h/d");
        if cfg!(feature = "mysql") {
            assert_eq!(mysql.unwrap(), Backend::Mysql("mysql://u@h/d".into()));
            assert_eq!(
                Backend::from_url("mariadb://u@h/d").unwrap(),
                Backend::Mysql("mysql://u@h/d".into())
            );
        } else {
            let e = mysql.unwrap_err().to_string();
            assert!(e.contains("--features mysql"), "{e}");
        }
        assert!(Backend::from_url("mongodb://u@h/d").is_err());
        assert!(Backend::from_url("sqlite://").is_err());
        assert!(Backend::from_url("sqlite::memory:").is_err());
    }

    #[test]
    fn passwords_never_reach_messages() {
        let b = Backend::from_url("postgres://u:hunter2@h/d").unwrap();
        assert!(!format!("{b:?}").contains("hunter2"));
        let e = Backend::from_url("mongodb://u:hunter2@h/d").unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        let b = Backend::from_url("mysql://u:hunter2@h/d");
        match b {
            Ok(b) => assert!(!format!("{b:?} {}", b.target()).contains("hunter2")),
            Err(e) => assert!(!e.to_string().contains("hunter2")),
        }
        assert_eq!(redact_url("postgres://u:pw@h:5432/d"), "postgres://u:***@h:5432/d");
    }

    #[test]
    fn unreachable_postgres_is_one_clear_line() {
        let backend = Backend::from_url("postgres://nobody:pw@127.0.0.1:1/none?connect_timeout=2").unwrap();
        let Err(e) = backend.establish() else {
            panic!("port 1 cannot answer")
        };
        let msg = e.to_string();
        assert!(msg.starts_with("cannot connect to PostgreSQL at"), "{msg}");
        assert!(!msg.contains('\n') && !msg.contains("pw@"), "{msg}");
    }

    #[test]
    fn sqlite_migrates_and_pools() {
        let dir = std::env::temp_dir().join(format!("wxkit-db-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let (_, pool) = connect_and_migrate(&url, 4, 512).unwrap();
        let mut conn = pool.get().unwrap();
        let n: i64 = schema::users::table.count().get_result(&mut **conn).unwrap();
        assert_eq!(n, 0);
        // Idempotent: nothing pending the second time.
        assert!(Backend::from_url(&url).unwrap().migrate().unwrap().is_empty());
        drop(conn);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A status column as a Rust enum: stored as its text (the same on every backend), read back through
/// `#[diesel(deserialize_as = String)]`, so a status the code does not know is an error when the row is read, and a
/// misspelt status does not compile. Writes use [`as_str`](OrderStatus::as_str).
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The status stored as `text`.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<$name, String> {
                $name::parse(&text).ok_or_else(|| format!("{text:?} is not a {}", stringify!($name)))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

crate::text_enum! {
    /// A payment order's status (`pay_orders.status`).
    OrderStatus {
        /// Placed, not paid.
        Created => "created",
        /// Paid (refunds are read off its refunds).
        Paid => "paid",
        /// Closed unpaid.
        Closed => "closed",
    }
}

/// The id MySQL gave the row this connection inserted last (`LAST_INSERT_ID()`; MySQL has no `RETURNING`).
#[cfg(feature = "mysql")]
pub fn mysql_last_insert_id(conn: &mut diesel::MysqlConnection) -> diesel::QueryResult<i64> {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "CAST(LAST_INSERT_ID() AS SIGNED)",
    ))
    .get_result(conn)
}

/// Runs an `INSERT` of one row into a table with an auto-increment `id` and returns `$returning` of the new row:
/// `RETURNING` on PostgreSQL and SQLite; on MySQL, which has none, the insert, then the row read back by
/// `LAST_INSERT_ID()` on the same connection (so within the same transaction). Evaluates to a `QueryResult`.
#[macro_export]
macro_rules! insert_returning {
    ($conn:expr, $insert:expr, $table:expr, $returning:expr) => {{
        use diesel::prelude::*;
        match $conn {
            $crate::db::DbConnection::Postgresql(c) => $insert.returning($returning).get_result(c),
            $crate::db::DbConnection::Sqlite(c) => $insert.returning($returning).get_result(c),
            #[cfg(feature = "mysql")]
            $crate::db::DbConnection::Mysql(c) => $insert.execute(c).and_then(|_| {
                let id = $crate::db::mysql_last_insert_id(c)?;
                $table.find(id).select($returning).get_result(c)
            }),
        }
    }};
}

/// Runs an `UPDATE` of at most the row `$id` and returns `$returning` of the updated row, or
/// `Err(NotFound)` when the update's filter matched nothing (use `.optional()`): `RETURNING` on PostgreSQL and
/// SQLite; on MySQL the update, then — when it changed a row — the row read back. The update's row lock is held
/// until the transaction ends, so the row read back is the one this update wrote.
#[macro_export]
macro_rules! update_returning {
    ($conn:expr, $update:expr, $table:expr, $id:expr, $returning:expr) => {{
        use diesel::prelude::*;
        match $conn {
            $crate::db::DbConnection::Postgresql(c) => $update.returning($returning).get_result(c),
            $crate::db::DbConnection::Sqlite(c) => $update.returning($returning).get_result(c),
            #[cfg(feature = "mysql")]
            $crate::db::DbConnection::Mysql(c) => $update.execute(c).and_then(|n| {
                if n == 0 {
                    Err(diesel::result::Error::NotFound)
                } else {
                    $table.find($id).select($returning).get_result(c)
                }
            }),
        }
    }};
}

/// `INSERT … ON CONFLICT DO NOTHING` of one row on any backend; evaluates to the number of rows inserted (0 when a
/// unique key was taken) as a `QueryResult<usize>`. On MySQL a plain insert whose duplicate-key error counts as 0: a
/// failed statement does not end a MySQL transaction, and unlike `INSERT IGNORE` nothing else (a foreign key, a
/// value too long) is turned into a warning.
#[macro_export]
macro_rules! insert_or_ignore {
    ($conn:expr, $table:expr, $row:expr) => {{
        use diesel::prelude::*;
        match $conn {
            $crate::db::DbConnection::Postgresql(c) => diesel::insert_into($table)
                .values($row)
                .on_conflict_do_nothing()
                .execute(c),
            $crate::db::DbConnection::Sqlite(c) => diesel::insert_or_ignore_into($table).values($row).execute(c),
            #[cfg(feature = "mysql")]
            $crate::db::DbConnection::Mysql(c) => match diesel::insert_into($table).values($row).execute(c) {
                Err(e) if $crate::db::is_unique_violation(&e) => Ok(0),
                other => other,
            },
        }
    }};
}

/// Runs `work` in a transaction, as `conn.transaction(work)` does, in the fewest round trips the backend allows: on
/// MySQL `BEGIN`, `COMMIT` and `ROLLBACK` go as cached prepared statements, one round trip each — Diesel's own go
/// through `batch_execute`, which switches the multi-statement option on and off around the query: three each, six of
/// a POS redemption's fifteen. Diesel's transaction depth is kept in step, so a transaction `work` opens inside is a
/// savepoint as usual. Everywhere else, and inside a transaction, it is `conn.transaction(work)`.
pub fn short_transaction<T>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    #[cfg(feature = "mysql")]
    {
        let began = match conn {
            DbConnection::Mysql(my) => mysql_tx::begin(my)?,
            _ => false,
        };
        if began {
            let result = work(conn);
            let DbConnection::Mysql(my) = conn else {
                return result;
            };
            return mysql_tx::finish(my, result);
        }
    }
    conn.transaction(work)
}

#[cfg(feature = "mysql")]
mod mysql_tx {
    use super::DbError;
    use diesel::connection::{
        AnsiTransactionManager, TransactionDepthChange, TransactionManager, TransactionManagerStatus,
    };
    use diesel::mysql::Mysql;
    use diesel::query_builder::{AstPass, QueryFragment, QueryId};
    use diesel::result::Error;
    use diesel::{MysqlConnection, QueryResult, RunQueryDsl};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A fixed statement with a type of its own: Diesel caches a prepared statement per type.
    macro_rules! statement {
        ($name:ident, $sql:literal) => {
            #[derive(Debug, Clone, Copy)]
            struct $name;
            impl QueryId for $name {
                type QueryId = $name;
                const HAS_STATIC_QUERY_ID: bool = true;
            }
            impl QueryFragment<Mysql> for $name {
                fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
                    out.push_sql($sql);
                    Ok(())
                }
            }
            impl RunQueryDsl<MysqlConnection> for $name {}
        };
    }
    statement!(Begin, "BEGIN");
    statement!(Commit, "COMMIT");
    statement!(Rollback, "ROLLBACK");

    /// A server that refuses `BEGIN` as a prepared statement (MariaDB takes it; a MySQL may answer "not supported in
    /// the prepared statement protocol"): Diesel's way from then on.
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

    fn depth(conn: &mut MysqlConnection, change: TransactionDepthChange) -> QueryResult<()> {
        match AnsiTransactionManager::transaction_manager_status_mut(conn) {
            TransactionManagerStatus::Valid(status) => status.change_transaction_depth(change),
            TransactionManagerStatus::InError => Err(Error::BrokenTransactionManager),
        }
    }

    /// Begins a transaction when none is open; false when one is (or the server refuses the prepared `BEGIN`).
    pub(super) fn begin(conn: &mut MysqlConnection) -> Result<bool, DbError> {
        if UNSUPPORTED.load(Ordering::Relaxed)
            || AnsiTransactionManager::transaction_manager_status_mut(conn)
                .transaction_depth()?
                .is_some()
        {
            return Ok(false);
        }
        match Begin.execute(conn) {
            Ok(_) => {}
            Err(Error::DatabaseError(_, info)) if info.message().contains("prepared statement protocol") => {
                UNSUPPORTED.store(true, Ordering::Relaxed);
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        depth(conn, TransactionDepthChange::IncreaseDepth)?;
        Ok(true)
    }

    /// Commits after `result` is `Ok`, rolls back after an error; as Diesel, a failed `COMMIT` is rolled back and,
    /// if that fails too, reported as `RollbackErrorOnCommit` (a connection lost at commit: see `classify`).
    pub(super) fn finish<T>(conn: &mut MysqlConnection, result: Result<T, DbError>) -> Result<T, DbError> {
        let ended = match &result {
            Ok(_) => Commit.execute(conn).map(drop),
            Err(_) => Rollback.execute(conn).map(drop),
        };
        let depth_kept = depth(conn, TransactionDepthChange::DecreaseDepth);
        match (result, ended) {
            (Ok(value), Ok(())) => depth_kept.map(|()| value).map_err(Into::into),
            (Ok(_), Err(commit_error)) => match Rollback.execute(conn) {
                Ok(_) => Err(commit_error.into()),
                Err(rollback_error) => Err(Error::RollbackErrorOnCommit {
                    rollback_error: Box::new(rollback_error),
                    commit_error: Box::new(commit_error),
                }
                .into()),
            },
            (Err(e), _) => Err(e),
        }
    }
}
