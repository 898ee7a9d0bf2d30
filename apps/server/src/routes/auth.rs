//! Who is calling: admin bearer token, staff POS tokens, and customer/staff sessions established through silent
//! WeChat OAuth (`snsapi_base`) with a signed, single-use state.

use crate::db::{self, DbError, coupons as repo};
use crate::routes::errors::ApiError;
use crate::routes::pages;
use crate::startup::AppState;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use wechat_oauth::state::{StateError, StateStore};
use wechat_oauth::web::Scope;

/// The session cookie.
pub const SESSION_COOKIE: &str = "wxkit_session";
/// Sessions last a week.
pub const SESSION_SECS: i64 = 7 * 86_400;
/// OAuth states live 10 minutes.
pub const STATE_TTL_SECS: i64 = 600;

pub use crate::platform::clock::now_ms;
pub use crate::platform::crypto::{random_token, sha256_hex, sha256_hex_bytes};

fn mac(key: &[u8], parts: &[&str]) -> String {
    // HMAC accepts any key length; an empty MAC would never verify if this ever failed.
    let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return String::new();
    };
    for p in parts {
        m.update(p.as_bytes());
        m.update(b"\x1f");
    }
    wechat_core::push::hex_lower(&m.finalize().into_bytes())
}

/// The `Authorization: Bearer` token, if any. The scheme is matched without regard to case (RFC 9110).
pub fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// Proof that the request carries the admin bearer token: an extractor, so that an admin handler cannot forget
/// the check. Put it first among a handler's parameters — it then runs before any body is read.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth;

impl actix_web::FromRequest for AdminAuth {
    type Error = ApiError;
    type Future = std::future::Ready<Result<AdminAuth, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(match req.app_data::<web::Data<AppState>>() {
            Some(state) => require_admin(req, state).map(|()| AdminAuth),
            None => Err(ApiError::internal(&"application state missing")),
        })
    }
}

/// A POS caller's bearer token, as the sha256 hex it is stored as. The extractor enforces the per-address limit on
/// failed authentications and the presence of a token; whether a staff member holds it is the redemption's
/// business (the POS batch looks it up with the attempt).
#[derive(Clone)]
pub struct StaffBearer {
    /// sha256 hex of the token.
    pub token_hash: String,
}

impl std::fmt::Debug for StaffBearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash identifies a bearer token: keep it out of logs.
        f.write_str("StaffBearer")
    }
}

impl actix_web::FromRequest for StaffBearer {
    type Error = ApiError;
    type Future = std::future::Ready<Result<StaffBearer, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return std::future::ready(Err(ApiError::internal(&"application state missing")));
        };
        std::future::ready((|| {
            state.auth_limiter.check(req)?;
            let Some(token) = bearer(req) else {
                state.auth_limiter.failed(req);
                return Err(unauthorized("POS calls need Authorization: Bearer <staff api_token>"));
            };
            Ok(StaffBearer {
                token_hash: sha256_hex(&token),
            })
        })())
    }
}

/// Checks the admin bearer token (constant time). Failures count against the caller's address
/// ([`crate::routes::ratelimit::AuthLimiter`]).
pub fn require_admin(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    state.auth_limiter.check(req)?;
    let Some(expected) = state.admin_token.as_ref() else {
        return Err(unauthorized("the admin API is disabled: set WXKIT__ADMIN__TOKEN"));
    };
    let Some(given) = bearer(req) else {
        state.auth_limiter.failed(req);
        return Err(unauthorized("admin calls need Authorization: Bearer <admin token>"));
    };
    if wechat_core::constant_time_eq(given.as_bytes(), expected.secret().as_bytes()) {
        Ok(())
    } else {
        state.auth_limiter.failed(req);
        Err(unauthorized("wrong admin token"))
    }
}

/// True when a login failed because WeChat is down, slow or busy (the user can retry), not because of the code.
fn wechat_unavailable(e: &wechat_oauth::Error) -> bool {
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

/// Signs a session for `openid`.
pub fn session_cookie(state: &AppState, openid: &str) -> Cookie<'static> {
    use base64::Engine as _;
    let exp = (now_ms() / 1000 + SESSION_SECS).to_string();
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(openid);
    let sig = mac(&state.session_key, &["session", openid, &exp]);
    Cookie::build(SESSION_COOKIE, format!("{id}.{exp}.{sig}"))
        .path("/")
        .http_only(true)
        .secure(state.public_base_url.starts_with("https://"))
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(SESSION_SECS))
        .finish()
}

/// The openid of a valid session cookie.
pub fn session_openid(req: &HttpRequest, state: &AppState) -> Option<String> {
    use base64::Engine as _;
    let cookie = req.cookie(SESSION_COOKIE)?;
    let mut parts = cookie.value().splitn(3, '.');
    let (id, exp, sig) = (parts.next()?, parts.next()?, parts.next()?);
    let openid = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id).ok()?).ok()?;
    let expected = mac(&state.session_key, &["session", &openid, exp]);
    if !wechat_core::constant_time_eq(expected.as_bytes(), sig.as_bytes()) {
        return None;
    }
    (exp.parse::<i64>().ok()? > now_ms() / 1000).then_some(openid)
}

/// The CSRF token binding a form to the session's openid and the coupon.
pub fn csrf_token(state: &AppState, openid: &str, code: &str) -> String {
    mac(&state.session_key, &["csrf", openid, code])
}

/// Checks a CSRF token in constant time.
pub fn csrf_ok(state: &AppState, openid: &str, code: &str, token: &str) -> bool {
    wechat_core::constant_time_eq(csrf_token(state, openid, code).as_bytes(), token.as_bytes())
}

/// A 302 to WeChat's authorize page that will bring the user back to `return_path`.
pub fn login_redirect(state: &AppState, return_path: &str) -> Result<HttpResponse, ApiError> {
    let issued = state
        .state_signer
        .issue(return_path, now_ms() / 1000, STATE_TTL_SECS)
        .map_err(|e| ApiError::bad_request("invalid_return_path", e.to_string()))?;
    let redirect_uri = format!("{}/auth/callback", state.public_base_url);
    let url = state
        .oauth
        .authorize_url(&redirect_uri, Scope::Base, Some(&issued.value))
        .map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Found()
        .insert_header((actix_web::http::header::LOCATION, url))
        .finish())
}

/// Single-use OAuth states in the database (a unique key), shared by every instance.
#[derive(Debug)]
pub struct DbStateStore {
    pool: db::DbPool,
}

#[async_trait]
impl StateStore for DbStateStore {
    async fn consume(&self, nonce: &str, expires_at: i64) -> Result<bool, StateError> {
        let nonce = nonce.to_owned();
        db::blocking(&self.pool, move |conn| {
            repo::consume_state_nonce(conn, &nonce, expires_at, now_ms() / 1000)
        })
        .await
        .map_err(|e: DbError| StateError::Store(e.to_string()))
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// `GET /auth/callback?code&state`: verifies the state (signature, expiry, single use), exchanges the code for the
/// openid, starts a session and sends the user back to the state's return path.
pub async fn callback(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let q = web::Query::<CallbackQuery>::from_query(req.query_string()).ok();
    let (Some(code), Some(raw_state)) = q
        .as_ref()
        .map(|q| (q.code.clone(), q.state.clone()))
        .unwrap_or((None, None))
    else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "登录链接不完整",
            "The login link is incomplete: open the page again.",
        );
    };
    let store = DbStateStore { pool: state.db.clone() };
    let verified = match state
        .state_signer
        .verify_once(&raw_state, now_ms() / 1000, &store)
        .await
    {
        Ok(v) => v,
        Err(StateError::Store(e)) => {
            tracing::error!(error = %e, "state store failed");
            return pages::error_page(StatusCode::SERVICE_UNAVAILABLE, "服务暂时不可用", "Please try again.");
        }
        Err(e) => {
            tracing::info!(reason = %e, "refused OAuth state");
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "登录已失效",
                "This login link is invalid or expired: open the page again.",
            );
        }
    };
    let token = match state.oauth.exchange_code(&code).await {
        Ok(t) => t,
        Err(e) if wechat_unavailable(&e) => {
            tracing::warn!(error = %e, "WeChat unavailable during login");
            return pages::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "微信暂时无法连接",
                "WeChat is not answering right now: wait a moment, then open the page again.",
            );
        }
        Err(e) => {
            tracing::info!(error = %e, "OAuth code exchange failed");
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "微信登录失败",
                "WeChat login failed: open the page again.",
            );
        }
    };
    if token.is_snapshotuser {
        return pages::error_page(
            StatusCode::FORBIDDEN,
            "请在微信中打开",
            "Please open this page in WeChat.",
        );
    }
    let openid = token.openid.as_str().to_owned();
    let upsert_openid = openid.clone();
    if let Err(e) = db::blocking(&state.db, move |conn| {
        crate::db::users::touch(conn, &upsert_openid, now_ms())
    })
    .await
    {
        tracing::warn!(error = %e, "could not record the user");
    }
    HttpResponse::Found()
        .cookie(session_cookie(&state, &openid))
        .insert_header((actix_web::http::header::LOCATION, verified.return_path))
        .finish()
}
