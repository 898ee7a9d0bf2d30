//! App tests: the server (in process and as the `wxkit` binary) against the simulator, SQLite and PostgreSQL, over
//! real HTTP, and the sandbox in headless Chromium. The SDK tests (crates alone) are in `tests/sdk`.
#![allow(clippy::unwrap_used)]

/// Runs an async test body once per backend, as `name::sqlite`, `name::postgres` and (built with the `mysql`
/// feature) `name::mysql`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name(wxkit_e2e::DbKind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$name(wxkit_e2e::DbKind::Postgres).await
            }
            #[cfg(feature = "mysql")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mysql() {
                super::$name(wxkit_e2e::DbKind::Mysql).await
            }
        }
    )*};
}

/// Runs an async test body on the backends several instances share (PostgreSQL, and MySQL/MariaDB when built with
/// the `mysql` feature), as `name::postgres` and `name::mysql`.
macro_rules! on_shared_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$name(wxkit_e2e::DbKind::Postgres).await
            }
            #[cfg(feature = "mysql")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mysql() {
                super::$name(wxkit_e2e::DbKind::Mysql).await
            }
        }
    )*};
}

mod abuse;
mod browser;
mod busifavor;
mod console;
mod coupons;
mod jssdk;
mod login;
mod messages;
mod operations;
mod pay;
mod pay_v3;
mod product;
mod reconciliation;
mod refunds;
mod server;
mod trust;
