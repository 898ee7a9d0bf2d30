//! The login use cases: sending a visitor to WeChat to log in, recording users, and sessions (web cookies and
//! mini-program bearer tokens) that live in the database so that logging out revokes them on every instance.

use super::repo::{self, Identity, NewSession, Profile, User};
use crate::db::{self, DbError};
use crate::http::auth::Session;
use crate::http::errors::ApiError;
use crate::platform::crypto::{random_token, sha256_hex};
use crate::startup::AppState;
use actix_web::HttpResponse;
use async_trait::async_trait;
use wechat_oauth::state::{StateError, StateStore};
use wechat_oauth::web::Scope;

/// OAuth states live 10 minutes.
pub const STATE_TTL_SECS: i64 = 600;
/// A web session (cookie).
pub const WEB: &str = "web";
/// A mini-program session (bearer token).
pub const MINIPROGRAM: &str = "miniprogram";

/// A 302 to WeChat's authorize page that will bring the user back to `return_path` (silent `snsapi_base`).
pub fn login_redirect(state: &AppState, return_path: &str) -> Result<HttpResponse, ApiError> {
    login_redirect_with(state, return_path, Scope::Base)
}

/// [`login_redirect`] with a scope: `snsapi_userinfo` asks the user for their nickname and avatar.
pub fn login_redirect_with(state: &AppState, return_path: &str, scope: Scope) -> Result<HttpResponse, ApiError> {
    let issued = state
        .state_signer
        .issue(return_path, state.clock.now_ms() / 1000, STATE_TTL_SECS)
        .map_err(|e| ApiError::bad_request("invalid_return_path", e.to_string()))?;
    let redirect_uri = format!("{}/auth/callback", state.public_base_url);
    let url = state
        .oauth
        .authorize_url(&redirect_uri, scope, Some(&issued.value))
        .map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Found()
        .insert_header((actix_web::http::header::LOCATION, url))
        .finish())
}

/// True when a login failed because WeChat is down, slow or busy (the user can retry), not because of the code.
pub fn wechat_unavailable(e: &wechat_oauth::Error) -> bool {
    match e {
        wechat_oauth::Error::RateLimited { .. } => true,
        wechat_oauth::Error::Wechat(inner) => {
            inner.is_transient()
                || matches!(
                    inner,
                    wechat_core::Error::Transport(_)
                        | wechat_core::Error::HttpStatus { .. }
                        | wechat_core::Error::Decode { .. }
                        | wechat_core::Error::RateLimited { .. }
                )
        }
        _ => false,
    }
}

/// The HTTP form of a failed WeChat login call: the client's fault (bad, used or blocked code; data that does not
/// decrypt) is a 400 carrying WeChat's errcode; WeChat being down or busy is a 503 (429 for its per-user quota) with
/// a retry hint; anything else is a 502 naming WeChat.
pub fn wechat_error(e: &wechat_oauth::Error) -> ApiError {
    use actix_web::http::StatusCode;
    use wechat_oauth::Error as E;
    let errcode = e.errcode();
    match e {
        E::InvalidCode { .. } => ApiError::bad_request("invalid_code", format!("WeChat refused the code: {e}")),
        E::CodeUsed { .. } => ApiError::bad_request("code_used", format!("the code was already used: {e}")),
        E::CodeBlocked { .. } => ApiError::new(StatusCode::FORBIDDEN, "code_blocked", e.to_string()),
        E::InvalidOpenId { .. } => ApiError::bad_request("invalid_openid", e.to_string()),
        E::Data(_) => ApiError::bad_request("invalid_data", e.to_string()),
        E::InvalidInput { .. } => ApiError::bad_request("invalid_field", e.to_string()),
        E::RateLimited { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "wechat_rate_limited",
            "WeChat's per-user login quota is used up: try again in a minute",
        )
        .with_retry_after(60),
        e if wechat_unavailable(e) => {
            tracing::warn!(error = %e, "WeChat unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "wechat_unavailable",
                "WeChat is not answering right now: try again in a few seconds",
            )
            .with_retry_after(5)
        }
        e => {
            tracing::error!(error = %e, "WeChat refused a login call");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "wechat_error",
                format!("WeChat refused the call: {e}"),
            )
        }
    }
    .with_wechat_errcode(errcode)
}

/// How long sessions last, seconds.
pub fn session_secs(state: &AppState) -> i64 {
    i64::from(state.settings.login.session_days) * 86_400
}

/// Records a login (see [`repo::upsert_login`]).
pub async fn record_login(state: &AppState, who: Identity<'_>, profile: Profile) -> Result<User, ApiError> {
    // Owned for the blocking task.
    let (kind, openid) = match who {
        Identity::Web(o) => (0u8, o.to_owned()),
        Identity::Mini(o) => (1, o.to_owned()),
        Identity::Website(o) => (2, o.to_owned()),
    };
    let now = state.clock.now_ms();
    db::blocking(&state.db, move |conn| {
        let identity = match kind {
            0 => Identity::Web(&openid),
            1 => Identity::Mini(&openid),
            _ => Identity::Website(&openid),
        };
        repo::upsert_login(conn, identity, &profile, now)
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))
}

/// Starts a session of `kind` for `user` acting as `openid`; returns the secret for the client (cookie value or
/// bearer token; only its sha256 is stored) and the session.
pub async fn start_session(
    state: &AppState,
    kind: &'static str,
    user: &User,
    openid: &str,
    session_key: Option<String>,
) -> Result<(String, Session), ApiError> {
    let secret = random_token();
    let token_hash = sha256_hex(&secret);
    let now = state.clock.now_ms();
    let expires_at = now / 1000 + session_secs(state);
    let (user_id, openid_owned) = (user.id, openid.to_owned());
    let id = db::blocking(&state.db, move |conn| {
        repo::create_session(
            conn,
            &NewSession {
                token_hash: &token_hash,
                kind,
                user_id,
                openid: &openid_owned,
                session_key: session_key.as_deref(),
                now,
                expires_at,
            },
        )
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
    Ok((
        secret,
        Session {
            id,
            user_id,
            openid: openid.to_owned(),
            expires_at,
        },
    ))
}

/// The live session of `kind` whose secret is `secret`, with its WeChat session_key (mini-program sessions).
pub async fn live_session(
    state: &AppState,
    secret: &str,
    kind: &'static str,
) -> Result<Option<(Session, Option<String>)>, ApiError> {
    let token_hash = sha256_hex(secret);
    let now_secs = state.clock.now_ms() / 1000;
    let row = db::blocking(&state.db, move |conn| {
        repo::live_session(conn, &token_hash, kind, now_secs)
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
    Ok(row.map(|r| {
        (
            Session {
                id: r.id,
                user_id: r.user_id,
                openid: r.openid,
                expires_at: r.expires_at,
            },
            r.session_key,
        )
    }))
}

/// Ends a session for good (every instance sees the row).
pub async fn revoke(state: &AppState, session_id: i64) -> Result<bool, ApiError> {
    let now = state.clock.now_ms();
    db::blocking(&state.db, move |conn| repo::revoke_session(conn, session_id, now))
        .await
        .map_err(|e| ApiError::unavailable(&e))
}

/// The user of a session.
pub async fn user(state: &AppState, user_id: i64) -> Result<User, ApiError> {
    db::blocking(&state.db, move |conn| repo::user_by_id(conn, user_id))
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .ok_or_else(|| crate::http::auth::unauthorized("the session's user no longer exists"))
}

/// What a client may see of a user (its own record).
#[derive(Debug, serde::Serialize)]
pub struct PublicUser {
    /// Our id.
    pub id: i64,
    /// Official-account openid.
    pub openid: Option<String>,
    /// Mini-program openid.
    pub mini_openid: Option<String>,
    /// unionid.
    pub unionid: Option<String>,
    /// Nickname.
    pub nickname: Option<String>,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// Verified phone number.
    pub phone: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_login_at: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl From<User> for PublicUser {
    fn from(u: User) -> Self {
        PublicUser {
            id: u.id,
            openid: u.openid,
            mini_openid: u.mini_openid,
            unionid: u.unionid,
            nickname: u.nickname,
            avatar_url: u.avatar_url,
            phone: u.phone,
            created_at: rfc3339(u.created_at),
            last_login_at: u.last_login_at.map(rfc3339),
        }
    }
}

/// Single-use OAuth states in the database (a unique key), shared by every instance.
#[derive(Debug)]
pub struct DbStateStore {
    pool: db::DbPool,
    clock: std::sync::Arc<dyn wechat_core::Clock>,
}

impl DbStateStore {
    /// A store on `pool`, forgetting expired states by `clock`.
    pub fn new(pool: db::DbPool, clock: std::sync::Arc<dyn wechat_core::Clock>) -> Self {
        Self { pool, clock }
    }
}

#[async_trait]
impl StateStore for DbStateStore {
    async fn consume(&self, nonce: &str, expires_at: i64) -> Result<bool, StateError> {
        let nonce = nonce.to_owned();
        let now_secs = self.clock.now_ms() / 1000;
        db::blocking(&self.pool, move |conn| {
            super::repo::consume_state_nonce(conn, &nonce, expires_at, now_secs)
        })
        .await
        .map_err(|e: DbError| StateError::Store(e.to_string()))
    }
}
