//! Scan a mini-program code to log in on a website: the page shows a `getwxacodeunlimit` code whose `scene` is a
//! fresh login scene and holds a WebSocket open; the user scans it with WeChat, the mini program opens with the
//! scene, the user confirms on the phone, and the page is logged in at once.
//!
//! The scene's state lives in the database (`login_scenes`); its events reach the browser's socket through the
//! [`hub::LoginHub`] — in process on SQLite, and across instances through PostgreSQL `LISTEN/NOTIFY`.

pub mod hub;
pub mod openapi;
pub mod relay;
pub mod repo;
mod routes;
pub mod service;
pub mod socket;
pub mod ws;

use crate::configuration::Settings;
use crate::db::{self, Backend};
use crate::features::auth::service::Sessions;
use crate::http::auth::AuthKeys;
use crate::http::errors::ApiError;
use crate::http::ratelimit::AuthLimiter;
use crate::platform::Platform;
use crate::platform::jobs::Jobs;
use crate::platform::wechat::WechatApps;
use actix_web::http::StatusCode;
use actix_web::web;
use service::SceneError;
use std::sync::Arc;

/// What the scan-to-login capability holds.
pub struct State {
    platform: Platform,
    /// Scan-to-login events for this instance's sockets (fed across instances by PostgreSQL NOTIFY).
    pub login_hub: hub::LoginHub,
    /// The mini program whose code is scanned, when configured.
    pub miniprogram: Option<wechat_oauth::miniprogram::MiniProgramClient>,
    /// Whether the website QR login is offered beside the code.
    pub website_login: bool,
    /// Users and sessions.
    pub sessions: Sessions,
    /// Cookie keys.
    pub keys: Arc<AuthKeys>,
    /// Login codes created per client address (`login.scenes_per_minute`).
    pub scene_limiter: AuthLimiter,
    /// The mini-program page the code opens (`login.mp_page`).
    pub mp_page: String,
    /// How long a scene lives, seconds (`login.scene_ttl_secs`).
    pub scene_ttl_secs: i64,
    /// The simulator's public address, in sandbox mode (the page links the simulated phone).
    pub sandbox_sim_url: Option<String>,
    /// Code-image fetches in flight, one per scene.
    pub code_flights: CodeFlights,
    /// Open login sockets, by scene and by client (their limits).
    pub sockets: socket::SocketLimits,
}
crate::slice_state!(State);

/// The answer of one scene's code-image fetch, shared by every request that waits for it.
pub type CodeFlight = Arc<tokio::sync::OnceCell<Result<Vec<u8>, ApiError>>>;

/// Code-image fetches in flight: concurrent requests for one scene's image make one WeChat call
/// (`getwxacodeunlimit` is quota-limited per mini program) and share its answer.
#[derive(Debug, Default)]
pub struct CodeFlights(std::sync::Mutex<std::collections::HashMap<String, CodeFlight>>);

impl CodeFlights {
    /// The scene's flight: the one in the air, or a new one.
    pub fn join(&self, scene: &str) -> CodeFlight {
        let mut flights = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        flights.entry(scene.to_owned()).or_default().clone()
    }

    /// Forgets a flight that has its answer (the image is stored; a failure may be tried again later).
    pub fn land(&self, scene: &str, flight: &CodeFlight) {
        let mut flights = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if flights.get(scene).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            flights.remove(scene);
        }
    }
}

/// The scan-to-login capability's state; on PostgreSQL its listener starts with [`jobs`].
pub fn init(
    platform: &Platform,
    apps: &WechatApps,
    settings: &Settings,
    sessions: Sessions,
    keys: Arc<AuthKeys>,
) -> State {
    State {
        platform: platform.clone(),
        login_hub: hub::LoginHub::new(),
        miniprogram: apps.miniprogram.as_ref().map(wechat::MiniProgram::client),
        website_login: apps.website.is_some(),
        sessions,
        keys,
        scene_limiter: AuthLimiter::new(settings.login.scenes_per_minute),
        mp_page: settings.login.mp_page.clone(),
        scene_ttl_secs: i64::from(settings.login.scene_ttl_secs),
        sandbox_sim_url: apps.sandbox_sim_url().map(str::to_owned),
        code_flights: CodeFlights::default(),
        sockets: socket::SocketLimits::new(
            crate::http::limits::connection_cap(
                settings.server.max_connections,
                crate::http::limits::descriptor_limit(),
                settings.database.pool_size,
            ),
            settings.login.sockets_per_address,
        ),
    }
}

/// The cross-instance listener (PostgreSQL) and the pruning of ended scenes.
pub fn jobs(state: &State, jobs: &mut Jobs) {
    match &state.backend {
        Backend::Postgres(url) => jobs.spawn("login listener", state.login_hub.listener(url.clone())),
        Backend::Mysql(_) => jobs.spawn("login relay", state.login_hub.relay(state.backend.clone())),
        Backend::Sqlite(_) => {}
    }
    let platform = state.platform.clone();
    jobs.every("prune login scenes", std::time::Duration::from_secs(60), move || {
        let platform = platform.clone();
        async move {
            let now_secs = platform.now_ms() / 1000;
            let mysql = platform.backend.is_mysql();
            let now_ms = platform.now_ms();
            let pruned = db::blocking(&platform.db, move |conn| {
                if mysql {
                    relay::prune(conn, now_ms)?;
                }
                repo::prune(conn, now_secs)
            });
            if let Err(e) = pruned.await {
                tracing::warn!(error = %e, "cannot prune login scenes");
            }
        }
    });
}

/// The API of this capability (under `/api/v1`).
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/login/scenes").route(web::post().to(routes::create)))
        .service(web::resource("/login/scenes/{scene}/qr.png").route(web::get().to(routes::qr)))
        .service(web::resource("/login/scenes/{scene}/scan").route(web::post().to(routes::scan)))
        .service(web::resource("/login/scenes/{scene}/confirm").route(web::post().to(routes::confirm)))
        .service(web::resource("/login/scenes/{scene}/cancel").route(web::post().to(routes::cancel)));
}

/// The pages of this capability (the socket itself is served by the HTTP service's upgrade hook, [`socket`]).
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/login").route(web::get().to(routes::login_page)))
        .service(web::resource("/ws/login/{scene}").route(web::get().to(routes::socket)))
        .service(web::resource("/auth/ticket").route(web::post().to(routes::ticket)));
}

impl From<SceneError> for ApiError {
    fn from(e: SceneError) -> ApiError {
        match e {
            SceneError::Db(e) => e.into(),
            SceneError::InvalidReturnPath => ApiError::bad_request("invalid_return_path", e.to_string()),
            SceneError::NotFound(m) => ApiError::not_found(m),
            SceneError::Expired(m) => ApiError::new(StatusCode::GONE, "scene_expired", m),
            SceneError::Conflict { code, message } => ApiError::new(StatusCode::CONFLICT, code, message),
            SceneError::InvalidTicket => ApiError::bad_request("invalid_ticket", e.to_string()),
        }
    }
}
