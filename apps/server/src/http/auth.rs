//! Who is calling: admin bearer token, staff POS tokens, and customer/staff sessions established through silent
//! WeChat OAuth (`snsapi_base`) with a signed, single-use state.

use crate::http::errors::ApiError;
use crate::startup::AppState;
use actix_web::cookie::{Cookie, CookieJar, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The session cookie.
pub const SESSION_COOKIE: &str = "wxkit_session";
/// Sessions last a week.
pub const SESSION_SECS: i64 = 7 * 86_400;

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
/// ([`crate::http::ratelimit::AuthLimiter`]).
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

/// A web session: who, and until when (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The user's openid (from WeChat OAuth).
    pub openid: String,
    /// When the session ends, Unix seconds.
    pub expires_at: i64,
}

/// The session cookie for `openid`: `expires_at.openid`, signed (HMAC-SHA256) by the cookie crate's signed jar with
/// a key derived from the shared server secret, so every instance accepts it.
pub fn session_cookie(state: &AppState, openid: &str) -> Cookie<'static> {
    let expires_at = state.clock.now_ms() / 1000 + SESSION_SECS;
    let cookie = Cookie::build(SESSION_COOKIE, format!("{expires_at}.{openid}"))
        .path("/")
        .http_only(true)
        .secure(state.public_base_url.starts_with("https://"))
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(SESSION_SECS))
        .finish();
    let mut jar = CookieJar::new();
    jar.signed_mut(&state.cookie_key).add(cookie);
    jar.get(SESSION_COOKIE)
        .cloned()
        .unwrap_or_else(|| Cookie::new(SESSION_COOKIE, ""))
}

/// The request's valid, unexpired session.
pub fn session(req: &HttpRequest, state: &AppState) -> Option<Session> {
    let raw = req.cookie(SESSION_COOKIE)?;
    let mut jar = CookieJar::new();
    jar.add_original(raw);
    let verified = jar.signed(&state.cookie_key).get(SESSION_COOKIE)?;
    let (expires_at, openid) = verified.value().split_once('.')?;
    let expires_at: i64 = expires_at.parse().ok()?;
    (expires_at > state.clock.now_ms() / 1000 && !openid.is_empty()).then(|| Session {
        openid: openid.to_owned(),
        expires_at,
    })
}

/// The openid of the request's valid session.
pub fn session_openid(req: &HttpRequest, state: &AppState) -> Option<String> {
    session(req, state).map(|s| s.openid)
}

/// The session, if any, as an extractor (pages decide what a visitor without one sees).
#[derive(Clone, Debug)]
pub struct WebSession(pub Option<Session>);

impl actix_web::FromRequest for WebSession {
    type Error = ApiError;
    type Future = std::future::Ready<Result<WebSession, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(match req.app_data::<web::Data<AppState>>() {
            Some(state) => Ok(WebSession(session(req, state))),
            None => Err(ApiError::internal(&"application state missing")),
        })
    }
}

/// The CSRF token binding a form to the session (its openid and expiry) and the coupon: it dies with the session.
pub fn csrf_token(state: &AppState, session: &Session, code: &str) -> String {
    mac(
        &state.session_key,
        &["csrf", &session.openid, &session.expires_at.to_string(), code],
    )
}

/// Checks a CSRF token in constant time.
pub fn csrf_ok(state: &AppState, session: &Session, code: &str, token: &str) -> bool {
    wechat_core::constant_time_eq(csrf_token(state, session, code).as_bytes(), token.as_bytes())
}
