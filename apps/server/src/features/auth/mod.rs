//! Logging in through WeChat web OAuth (silent `snsapi_base`, or `snsapi_userinfo`) and the open platform's
//! website QR login: the redirect to WeChat with a signed, single-use state, the callbacks that start a session,
//! the account page, `GET /api/v1/me`, and the sessions every other capability uses ([`service::Sessions`]).

pub mod openapi;
pub mod repo;
mod routes;
pub mod service;

use crate::configuration::Settings;
use crate::http::auth::{AuthKeys, Session, SessionKind, SessionLookup};
use crate::http::errors::ApiError;
use crate::platform::Platform;
use crate::platform::jobs::Jobs;
use crate::platform::wechat::WechatApps;
use actix_web::web;
use service::{AuthError, Sessions, WebLogin};
use std::sync::Arc;

/// What the login capability holds.
pub struct State {
    platform: Platform,
    /// The official account's web OAuth.
    pub oauth: wechat_oauth::web::OAuthClient,
    /// The open platform's website app, when configured.
    pub website: Option<wechat_oauth::web::OAuthClient>,
    /// Signs OAuth states (key shared by all instances through the database).
    pub state_signer: Arc<wechat_oauth::state::StateSigner>,
    /// Users and sessions.
    pub sessions: Sessions,
    /// Cookie and CSRF keys.
    pub keys: Arc<AuthKeys>,
}
crate::slice_state!(State);

/// The login capability's state.
pub fn init(
    platform: &Platform,
    apps: &WechatApps,
    sessions: Sessions,
    state_signer: Arc<wechat_oauth::state::StateSigner>,
    keys: Arc<AuthKeys>,
) -> State {
    State {
        platform: platform.clone(),
        oauth: apps.official.oauth(),
        website: apps.website.clone(),
        state_signer,
        sessions,
        keys,
    }
}

/// Sending visitors to WeChat to log in, for the pages of other capabilities.
pub fn web_login(platform: &Platform, apps: &WechatApps, signer: Arc<wechat_oauth::state::StateSigner>) -> WebLogin {
    WebLogin::new(platform.clone(), signer, apps.official.oauth())
}

/// The sessions of `settings`, for every capability that logs people in.
pub fn sessions(platform: &Platform, settings: &Settings) -> Sessions {
    Sessions::new(platform.clone(), settings)
}

/// Forgets ended sessions every minute.
pub fn jobs(sessions: &Sessions, jobs: &mut Jobs) {
    let sessions = sessions.clone();
    jobs.every("prune sessions", std::time::Duration::from_secs(60), move || {
        let sessions = sessions.clone();
        async move {
            if let Err(e) = sessions.prune().await {
                tracing::warn!(error = %e, "cannot prune sessions");
            }
        }
    });
}

/// The API of this capability (under `/api/v1`).
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/me").route(web::get().to(routes::me)));
}

/// The pages of this capability.
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/wechat").route(web::get().to(routes::start)))
        .service(web::resource("/auth/callback").route(web::get().to(routes::callback)))
        .service(web::resource("/auth/qrconnect").route(web::get().to(routes::qrconnect)))
        .service(web::resource("/auth/qrconnect/callback").route(web::get().to(routes::qrconnect_callback)))
        .service(web::resource("/auth/logout").route(web::post().to(routes::logout)))
        .service(web::resource("/account").route(web::get().to(routes::account)));
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Db(e) => e.into(),
            AuthError::InvalidReturnPath(m) => ApiError::bad_request("invalid_return_path", m),
            AuthError::AuthorizeUrl(m) => ApiError::internal(&m),
            AuthError::UserGone => crate::http::auth::unauthorized("the session's user no longer exists"),
        }
    }
}

#[async_trait::async_trait]
impl SessionLookup for Sessions {
    async fn live(&self, secret: &str, kind: SessionKind) -> Result<Option<(Session, Option<String>)>, ApiError> {
        Sessions::live(self, secret, kind).await.map_err(ApiError::from)
    }
}
