//! Database stores for the wxkit WeChat crates, on SQLite, PostgreSQL or MySQL/MariaDB through Diesel — the ones
//! the wxkit server itself runs on:
//!
//! | store | trait (crate) | table |
//! |---|---|---|
//! | [`DieselTokenStore`] | `TokenStore` (`wechat-core`): the access token / tickets shared by every instance, and the refresh lease | `wechat_tokens` |
//! | [`DieselCertificateStore`] | `CertificateStore` (`wechat-pay` v3): platform certificates downloaded once for all instances | `server_secrets` |
//! | [`DieselDedupeStore`] | `DedupeStore` (`wechat-message`): each WeChat push handled once | `push_events` |
//! | [`DieselStateStore`] | `StateStore` (`wechat-oauth`): single-use OAuth `state` values | `oauth_states` |
//!
//! The subtle parts are in the SQL, not in your code: the refresh lease is one conditional `UPDATE` (free, expired,
//! or already ours), a token is invalidated only if it is still the value that failed (compare-and-invalidate, so one
//! instance's 40001 does not throw away the token another instance just fetched), and "first seen" / "consume" are
//! a unique key. Each works the same on the three backends (no upsert dialects: an `UPDATE`, and an `INSERT` whose
//! duplicate-key error means "already there").
//!
//! **Schema.** Create the tables with [`StoreConnection::create_store_tables`] (idempotent `CREATE TABLE IF NOT
//! EXISTS`), or run the SQL in [`sql`] with your own migrations.
//!
//! **Connections.** A store runs its statements through a [`Blocking`]: an r2d2 pool of Diesel connections has
//! one (feature `r2d2`, on tokio's blocking threads), and a service with its own pool or connection type implements
//! it — and [`StoreConnection`] with [`impl_store_connection!`] — in a few lines.
//!
//! ```
//! # #[cfg(all(feature = "sqlite", feature = "r2d2"))]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel::r2d2::{ConnectionManager, Pool};
//! use diesel::SqliteConnection;
//! use wechat_core::{AppId, StoredToken, TokenKind, TokenStore};
//! use wxkit_store_diesel::{DieselTokenStore, StoreConnection};
//!
//! let dir = std::env::temp_dir().join(format!("wxkit-store-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let pool = Pool::builder()
//!     .max_size(2)
//!     .build(ConnectionManager::<SqliteConnection>::new(dir.join("store.db").display().to_string()))?;
//! pool.get()?.create_store_tables()?;
//!
//! let store = DieselTokenStore::new(pool);
//! let app = AppId::new("wx0000000000000001");
//! let token = StoredToken { value: "ACCESS_TOKEN".into(), expires_at: 4_000_000_000 };
//! store.save(&app, TokenKind::AccessToken, &token).await?;
//! assert_eq!(store.load(&app, TokenKind::AccessToken).await?.map(|t| t.value).as_deref(), Some("ACCESS_TOKEN"));
//! // Only the value that failed is thrown away.
//! assert!(!store.invalidate_if(&app, TokenKind::AccessToken, "an older token").await?);
//! assert!(store.invalidate_if(&app, TokenKind::AccessToken, "ACCESS_TOKEN").await?);
//! // The refresh lease: one holder at a time.
//! assert!(store.try_lock(&app, TokenKind::AccessToken, "instance-a", 1_000, 31_000).await?);
//! assert!(!store.try_lock(&app, TokenKind::AccessToken, "instance-b", 2_000, 32_000).await?);
//! # std::fs::remove_dir_all(dir)?;
//! # Ok(())
//! # }
//! # #[cfg(all(feature = "sqlite", feature = "r2d2"))]
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

#![deny(missing_docs)]

mod connection;
pub mod schema;
mod stores;

#[doc(hidden)]
pub use connection::__is_unique_violation;
pub use connection::{Blocking, StoreConnection};
pub use stores::{DieselCertificateStore, DieselDedupeStore, DieselStateStore, DieselTokenStore};

/// The `CREATE TABLE IF NOT EXISTS` statements of the store's tables, per backend (for your own migrations).
pub mod sql {
    /// SQLite.
    pub const SQLITE: &str = include_str!("../sql/sqlite.sql");
    /// PostgreSQL.
    pub const POSTGRES: &str = include_str!("../sql/postgres.sql");
    /// MySQL / MariaDB.
    pub const MYSQL: &str = include_str!("../sql/mysql.sql");
}

/// What can go wrong running a store's statement on an r2d2 pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// No connection could be had from the pool.
    #[error("database pool: {0}")]
    Pool(String),
    /// The statement failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// The blocking task did not complete (panicked or cancelled).
    #[error("database task failed: {0}")]
    Task(String),
}

#[doc(hidden)]
pub mod __private {
    pub use diesel;
}
