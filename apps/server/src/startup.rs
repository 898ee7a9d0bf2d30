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
use actix_service::IntoServiceFactory as _;
use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, from_fn};
use actix_web::{App, web};
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
        let server = serve(listener, &settings, &platform, &slices).map_err(bind_error)?;
        Ok(Application {
            addr,
            server,
            platform,
            apps,
            slices,
            jobs,
            sandbox,
            demo,
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

    /// Serves until SIGINT/SIGTERM, then drains in-flight requests (graceful shutdown) and stops the background
    /// jobs and the simulator.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.jobs.stop().await;
        if let Some(sim) = self.sandbox {
            sim.stop().await;
        }
        result
    }
}

/// The HTTP server: actix-web's, assembled by hand for one addition — WebSocket upgrades leave actix's HTTP
/// dispatcher (and its two 8 KiB buffers per connection) for a lean socket of our own: thousands of login pages wait
/// idle on them (docs/benchmarks.md).
fn serve(listener: TcpListener, settings: &Settings, platform: &Platform, slices: &Slices) -> std::io::Result<Server> {
    let body_timeout = std::time::Duration::from_secs(u64::from(settings.server.body_timeout_secs));
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let cap = http::limits::connection_cap(
        settings.server.max_connections,
        http::limits::descriptor_limit(),
        settings.database.pool_size,
    );
    // actix counts connections per worker.
    let per_worker = cap.div_ceil(workers).max(1);
    let (max_connections, body_timeout_secs) = (per_worker * workers, body_timeout.as_secs());
    tracing::info!(max_connections, workers, body_timeout_secs, "connection limits");
    let (platform, slices) = (web::Data::new(platform.clone()), slices.clone());
    let scan_login = features::sockets(&slices)?;
    let make_app = move || {
        App::new()
            .wrap(ErrorHandlers::new().default_handler(http::errors::wrap_in_envelope))
            .wrap(http::access_log())
            .wrap(DefaultHeaders::new().add((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")))
            .wrap(from_fn(http::track))
            // Request ids and spans: every log line of a request (and of its database work) names it.
            .wrap(tracing_actix_web::TracingLogger::<http::RequestSpan>::new())
            .wrap_fn(move |mut req, srv| {
                use actix_web::dev::Service as _;
                http::limits::body_deadline(&mut req, body_timeout);
                srv.call(req)
            })
            .app_data(platform.clone())
            .configure(|cfg| features::data(cfg, &slices))
            .configure(http::extractor_configs)
            // The API first: the router tries routes in order, and the pages' dynamic routes cost a pattern match.
            .service(web::scope("/api/v1").configure(|cfg| features::api(cfg, &slices)))
            .configure(http::routes)
            .configure(|cfg| features::pages(cfg, &slices))
            .default_service(web::to(http::not_found))
    };
    let local = listener.local_addr()?;
    let server = actix_server::Server::build()
        .workers(workers)
        .max_concurrent_connections(per_worker)
        .shutdown_timeout(10)
        .listen("wxkit", listener, move || {
            use actix_service::ServiceFactoryExt as _;
            let sockets = scan_login.clone();
            let app = make_app()
                .into_factory()
                .map_err(|err: actix_web::Error| err.error_response());
            actix_http::HttpService::build()
                .keep_alive(actix_http::KeepAlive::Timeout(std::time::Duration::from_secs(5)))
                .client_request_timeout(std::time::Duration::from_secs(5))
                .client_disconnect_timeout(std::time::Duration::from_secs(1))
                .local_addr(local)
                .upgrade(actix_service::fn_service(
                    move |(req, framed): (
                        actix_http::Request,
                        actix_codec::Framed<actix_rt::net::TcpStream, actix_http::h1::Codec>,
                    )| { features::scan_login::socket::upgrade(sockets.clone(), req, framed) },
                ))
                .finish(actix_service::map_config(app, |_| actix_web::dev::AppConfig::default()))
                .tcp()
        })?
        .run();
    Ok(server)
}
