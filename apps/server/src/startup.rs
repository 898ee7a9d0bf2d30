//! Building and running the application: database, WeChat clients (or the sandbox simulator), HTTP server.

use crate::configuration::{SANDBOX_APP_ID, Settings};
use crate::db::token_store::DbTokenStore;
use crate::db::{self, Backend, DbError, DbPool};
use crate::routes::{self, errors::ApiError};
use actix_web::dev::Server;
use actix_web::middleware::{ErrorHandlers, Logger};
use actix_web::{App, HttpServer, web};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use wechat_core::{AccessTokenManager, AppId, AppSecret, Endpoints, TokenManagerOptions, TokenMode, WechatClient};
use wechat_sim::SimServer;

/// Shared by every request.
#[derive(Debug)]
pub struct AppState {
    /// Settings as loaded.
    pub settings: Settings,
    /// The database pool.
    pub db: DbPool,
    /// Which database.
    pub backend: Backend,
    /// The WeChat client (pointed at WeChat or the simulator).
    pub wechat: WechatClient,
    /// The app's access token and tickets, shared with other instances through the database.
    pub tokens: AccessTokenManager,
    /// The URL users reach this server at.
    pub public_base_url: String,
}

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
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The WeChat client could not be built.
    #[error("WeChat client: {0}")]
    Wechat(#[from] wechat_core::Error),
}

impl StartupError {
    /// Exit code for the CLI: 2 for configuration and database problems (fix the setup), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Database(_) | StartupError::Config(_) => 2,
            StartupError::Bind { .. } | StartupError::Wechat(_) => 1,
        }
    }
}

/// A built, bound, not yet running application.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    state: web::Data<AppState>,
    sandbox: Option<SimServer>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .field("sandbox", &self.sandbox_url())
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects and migrates the database, starts the sandbox simulator when no WeChat credentials are configured,
    /// and binds the listener (port 0 picks a free port; see [`port`](Self::port)).
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        let url = settings.database.url.clone();
        let pool_size = settings.database.pool_size;
        let (backend, pool) = tokio::task::spawn_blocking(move || db::connect_and_migrate(&url, pool_size))
            .await
            .map_err(|e| DbError::Task(e.to_string()))??;

        let (sandbox, endpoints, app_id, secret) = match (&settings.wechat.app_id, &settings.wechat.app_secret) {
            (Some(app_id), Some(secret)) => {
                let endpoints = Endpoints {
                    api_base_url: wechat_core::parse_base_url(&settings.wechat.api_base_url)?,
                    open_base_url: wechat_core::parse_base_url(&settings.wechat.open_base_url)?,
                };
                (None, endpoints, AppId::new(app_id), secret.clone())
            }
            _ => {
                let secret = AppSecret::new(uuid::Uuid::new_v4().simple().to_string());
                let sim = SimServer::start("127.0.0.1:0", &[(SANDBOX_APP_ID, secret.secret())])
                    .await
                    .map_err(|source| StartupError::Bind {
                        addr: "127.0.0.1:0 (sandbox simulator)".into(),
                        source,
                    })?;
                let endpoints = Endpoints::single(&sim.base_url())?;
                tracing::info!(simulator = %sim.base_url(), app_id = SANDBOX_APP_ID, "sandbox mode: no WeChat credentials configured, using the bundled simulator");
                (Some(sim), endpoints, AppId::new(SANDBOX_APP_ID), secret)
            }
        };
        let wechat = WechatClient::with_default_transport()?.with_endpoints(endpoints);
        let options = TokenManagerOptions {
            mode: if settings.wechat.stable_token {
                TokenMode::Stable
            } else {
                TokenMode::Classic
            },
            ..TokenManagerOptions::default()
        };
        let tokens = AccessTokenManager::with_options(
            wechat.clone(),
            app_id,
            secret,
            Arc::new(DbTokenStore::new(pool.clone())),
            options,
        );

        let listener = TcpListener::bind(&settings.server.addr).map_err(|source| StartupError::Bind {
            addr: settings.server.addr.clone(),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.server.addr.clone(),
            source,
        })?;
        let public_base_url = settings
            .server
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        let state = web::Data::new(AppState {
            settings,
            db: pool,
            backend,
            wechat,
            tokens,
            public_base_url,
        });
        let server = run(listener, state.clone()).map_err(|source| StartupError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        Ok(Application {
            addr,
            server,
            state,
            sandbox,
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

    /// Shared state (for tests and embedding).
    pub fn state(&self) -> &web::Data<AppState> {
        &self.state
    }

    /// The sandbox simulator's base URL, in sandbox mode.
    pub fn sandbox_url(&self) -> Option<String> {
        self.sandbox.as_ref().map(SimServer::base_url)
    }

    /// Serves until SIGINT/SIGTERM, then drains in-flight requests (graceful shutdown).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Some(sim) = self.sandbox {
            sim.stop().await;
        }
        result
    }
}

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(256 * 1024)
        .error_handler(|err, _req| ApiError::bad_request("invalid_json", err.to_string()).into())
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _req| ApiError::bad_request("invalid_query", err.to_string()).into())
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| ApiError::bad_request("invalid_path", err.to_string()).into())
}

fn run(listener: TcpListener, state: web::Data<AppState>) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .wrap(ErrorHandlers::new().default_handler(routes::errors::wrap_in_envelope))
            .wrap(Logger::new("%U %s %Dms").exclude("/healthz"))
            .app_data(state.clone())
            .app_data(json_config())
            .app_data(query_config())
            .app_data(path_config())
            .route("/healthz", web::get().to(routes::health::healthz))
            .route("/readyz", web::get().to(routes::health::readyz))
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(ApiError::not_found("no such route"))
            }))
    })
    .shutdown_timeout(10)
    .listen(listener)?
    .run();
    Ok(server)
}
