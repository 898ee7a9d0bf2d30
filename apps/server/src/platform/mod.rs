//! The platform beneath the capabilities: the small context every slice is built on ([`Platform`]: database,
//! clock, public URL, limits), the WeChat apps built from the SDK's product handles ([`wechat::WechatApps`]), the
//! background jobs ([`jobs::Jobs`]), time, crypto helpers, shared secrets and the POS batcher's plumbing. Nothing
//! here knows about HTTP routes or a particular capability.

pub mod batcher;
pub mod busifavor;
pub mod clock;
pub mod crypto;
pub mod jobs;
pub mod secrets;
pub mod time;
pub mod wechat;

use crate::db::{Backend, Db};
use crate::http::ratelimit::{AuthLimiter, RateLimits};
use std::sync::Arc;

/// What every capability is built on, built once by start-up (or by the CLI) and cloned into each slice's `State`
/// (every field is cheap to clone). A slice's `State` dereferences to it, so `state.db` and `state.clock` read the
/// same in every handler.
#[derive(Clone)]
pub struct Platform {
    /// The database pool.
    pub db: Db,
    /// Which database (and, for PostgreSQL, its URL: the login listener opens its own connection).
    pub backend: Backend,
    /// The application's clock (the system's; tests move it).
    pub clock: Arc<dyn wechat_core::Clock>,
    /// The URL people reach this server at, without a trailing `/`.
    pub public_base_url: String,
    /// Request limits of the public endpoints and failed authentications per address.
    pub limits: Arc<Limits>,
    /// Set when a stop was asked for: `/readyz` answers 503 `draining` while requests are still served
    /// (`server.drain_secs`), so that a load balancer's health check takes the instance out first.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("backend", &self.backend)
            .field("public_base_url", &self.public_base_url)
            .finish_non_exhaustive()
    }
}

/// The limits every public endpoint shares.
#[derive(Debug)]
pub struct Limits {
    /// Request limits (`rate_limits.*`).
    pub rate: RateLimits,
    /// Failed authentications per client address (`server.auth_failures_per_minute`).
    pub auth: AuthLimiter,
    /// The reverse proxies whose forwarding headers name the client (`server.trusted_proxies`).
    pub proxies: crate::http::client::TrustedProxies,
}

impl Platform {
    /// A platform on a connected pool: limits from `settings`, the public URL as given.
    pub fn new(
        db: Db,
        backend: Backend,
        clock: Arc<dyn wechat_core::Clock>,
        public_base_url: &str,
        settings: &crate::configuration::Settings,
    ) -> Platform {
        Platform {
            db,
            backend,
            clock,
            public_base_url: public_base_url.trim_end_matches('/').to_owned(),
            limits: Arc::new(Limits {
                rate: RateLimits::new(&settings.rate_limits),
                auth: AuthLimiter::new(settings.server.auth_failures_per_minute),
                // Checked when the settings were loaded.
                proxies: settings.trusted_proxies().unwrap_or_default(),
            }),
            draining: Arc::default(),
        }
    }

    /// Connects (and migrates) the database of `settings` off the async runtime.
    pub async fn connect(settings: &crate::configuration::Settings) -> Result<(Backend, Db), crate::db::DbError> {
        let url = settings.database.url.clone();
        let (pool_size, cache_kib) = (settings.database.pool_size, settings.database.sqlite_cache_kib);
        let acquire = std::time::Duration::from_millis(u64::from(settings.database.acquire_timeout_ms));
        tokio::task::spawn_blocking(move || crate::db::connect_and_migrate_with(&url, pool_size, cache_kib, acquire))
            .await
            .map_err(|e| crate::db::DbError::Task(e.to_string()))?
    }

    /// Now, Unix milliseconds, by the application's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// Implements `Deref<Target = Platform>` for a slice's `State` that holds its platform in a field named
/// `platform`: handlers then read `state.db`, `state.clock` and `state.public_base_url` directly, and a
/// `&State` is a `&Platform` wherever a platform-level helper wants one. Also a `Debug` that names the slice and
/// prints nothing it holds (keys, clients with secrets).
#[macro_export]
macro_rules! slice_state {
    ($state:ty) => {
        impl std::fmt::Debug for $state {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(module_path!()).finish_non_exhaustive()
            }
        }

        impl std::ops::Deref for $state {
            type Target = $crate::platform::Platform;
            fn deref(&self) -> &$crate::platform::Platform {
                &self.platform
            }
        }
    };
}
