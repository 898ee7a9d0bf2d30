//! Composing the application: the platform, the WeChat apps (the sandbox simulator in sandbox mode), every
//! capability's state and background jobs, and the HTTP server. Nothing here knows a capability's rules.

use crate::configuration::Settings;
use crate::db::DbError;
use crate::features::{self, Slices};
use crate::http;
use crate::platform::Platform;
use crate::platform::jobs::Jobs;
use crate::platform::secrets::ServerKeys;
use crate::platform::wechat::{SandboxSim, WechatApps, WechatAppsError};
use actix_web::dev::Server;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Database unreachable, bad URL, failed migration.
    #[error(transparent)]
    Database(#[from] DbError),
    /// Bad settings.
    #[error(transparent)]
    Config(#[from] crate::configuration::ConfigError),
    /// The listen address could not be bound, or the simulator could not start.
    #[error("cannot listen on {addr}: {source} (another program holds it? set server.addr or --addr)")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A WeChat client could not be built.
    #[error(transparent)]
    Wechat(WechatAppsError),
}

impl From<WechatAppsError> for StartupError {
    fn from(e: WechatAppsError) -> StartupError {
        match e {
            WechatAppsError::Config(c) => StartupError::Config(c),
            WechatAppsError::Bind { addr, source } => StartupError::Bind { addr, source },
            other => StartupError::Wechat(other),
        }
    }
}

impl StartupError {
    /// Exit code for the CLI: 2 for the setup (settings, database, an address in use), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Database(_) | StartupError::Config(_) | StartupError::Bind { .. } => 2,
            StartupError::Wechat(_) => 1,
        }
    }
}

/// A built, bound, not yet running application.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    platform: Platform,
    apps: WechatApps,
    slices: Slices,
    jobs: Jobs,
    sandbox: Option<SandboxSim>,
    demo: Option<features::sandbox::Demo>,
    drain: std::time::Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .field("sandbox", &self.sandbox_url())
            .field("jobs", &self.jobs.names())
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects and migrates the database, starts the sandbox simulator in sandbox mode, builds every capability
    /// and binds the listener (port 0 picks a free port; see [`port`](Self::port)).
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        Self::build_with_clock(settings, Arc::new(wechat_core::SystemClock)).await
    }

    /// [`build`](Self::build) with the clock that handlers, services, workers and the token manager read.
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn wechat_core::Clock>,
    ) -> Result<Application, StartupError> {
        settings.check_can_serve()?;
        http::metrics::install_recorder();
        let (backend, pool) = Platform::connect(&settings).await?;
        let bind_error = |source| StartupError::Bind {
            addr: settings.server.addr.clone(),
            source,
        };
        let listener = TcpListener::bind(&settings.server.addr).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let public_base_url = settings
            .server
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let platform = Platform::new(pool, backend, clock, &public_base_url, &settings);
        let (apps, sandbox) = WechatApps::build(&settings, &platform).await?;
        let secrets = ServerKeys::load(&platform, settings.sandbox()).await?;
        let slices = features::init(&platform, &apps, &settings, &secrets)?;
        let mut jobs = Jobs::new();
        features::start_jobs(&slices, &mut jobs);
        let demo = match &sandbox {
            #[cfg(feature = "sandbox")]
            Some(sim) => Some(features::sandbox::seed(&platform, &apps, sim).await?),
            #[cfg(not(feature = "sandbox"))]
            Some(sim) => match *sim {},
            None => None,
        };
        let server = crate::server::serve(listener, &settings, &platform, &slices).map_err(bind_error)?;
        let drain = std::time::Duration::from_secs(u64::from(settings.server.drain_secs));
        Ok(Application {
            addr,
            server,
            platform,
            apps,
            slices,
            jobs,
            sandbox,
            demo,
            drain,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The platform the capabilities run on (for tests and embedding).
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The WeChat apps (for tests and embedding).
    pub fn wechat(&self) -> &WechatApps {
        &self.apps
    }

    /// Every capability's state (`slices().get::<features::coupons::State>()`, for tests and embedding).
    pub fn slices(&self) -> &Slices {
        &self.slices
    }

    /// The seeded demo, in sandbox mode.
    pub fn demo(&self) -> Option<&features::sandbox::Demo> {
        self.demo.as_ref()
    }

    /// The sandbox simulator's public base URL, in sandbox mode.
    pub fn sandbox_url(&self) -> Option<String> {
        self.sandbox
            .as_ref()
            .and(self.apps.sandbox_sim_url().map(str::to_owned))
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully: no new connections, login sockets closed with 1001
    /// (their pages reconnect, to another instance), requests in flight finished within
    /// `server.shutdown_timeout_secs`, background jobs stopped, outbox leases handed back; each step logged. A
    /// second signal stops at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(crate::server::stop_signal()).await
    }

    /// [`run_until_stopped`](Self::run_until_stopped) with the stop requested by `stop` (an embedder's own signal).
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = &'static str> + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = self.server.handle();
        let (slices, draining, drain) = (self.slices.clone(), self.platform.draining.clone(), self.drain);
        let mut stopping = tokio::spawn(async move {
            let signal = stop.await;
            draining.store(true, std::sync::atomic::Ordering::Relaxed);
            if !drain.is_zero() {
                tracing::info!(
                    signal,
                    drain_secs = drain.as_secs(),
                    "draining: /readyz answers 503, still serving"
                );
                tokio::time::sleep(drain).await;
            }
            let (in_flight, login_sockets) = (http::in_flight(), features::close_sockets(&slices));
            tracing::info!(
                signal,
                in_flight,
                login_sockets,
                "stopping: no new connections; finishing requests in flight"
            );
            let started = std::time::Instant::now();
            let forced = handle.clone();
            tokio::spawn(async move {
                crate::server::stop_signal().await;
                tracing::warn!("second signal: stopping now");
                forced.stop(false).await;
            });
            // Sockets run in tasks of their own, which actix's graceful stop does not wait for: let them send 1001.
            features::sockets_closed(&slices, std::time::Duration::from_secs(1)).await;
            handle.stop(true).await;
            started
        });
        let result = self.server.await;
        // Stopped by the signal (its task ends with the server) or by something else (no signal came).
        let drained = match tokio::time::timeout(std::time::Duration::from_millis(200), &mut stopping).await {
            Ok(Ok(started)) => Some((started.elapsed(), http::in_flight())),
            _ => {
                stopping.abort();
                None
            }
        };
        self.jobs.stop().await;
        let outbox_leases = features::release_work(&self.slices, &self.platform.db).await;
        if let Some(sim) = self.sandbox {
            sim.stop().await;
        }
        if let Some((took, left)) = drained {
            tracing::info!(
                took_ms = took.as_millis() as u64,
                unfinished_requests = left,
                outbox_leases,
                "stopped"
            );
        }
        result
    }
}
