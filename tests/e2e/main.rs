//! One integration-test binary for the workspace (one link, shared harness).
#![allow(clippy::unwrap_used)]

/// Runs an async test body once per backend, as `name::sqlite` and `name::postgres`.
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
        }
    )*};
}

mod browser;
mod cards;
mod coupons;
mod oauth;
mod pay;
mod server;
mod sim;
mod tokens;
mod trust;
