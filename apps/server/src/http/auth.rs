//! Who is calling: admin bearer token, staff POS tokens, and customer/staff sessions established through silent
//! WeChat OAuth (`snsapi_base`) with a signed, single-use state.

use crate::http::errors::ApiError;
use crate::startup::AppState;
use actix_web::cookie::{Cookie, SameSite};
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

/// Signs a session for `openid`.
pub fn session_cookie(state: &AppState, openid: &str) -> Cookie<'static> {
    use base64::Engine as _;
    let exp = (state.clock.now_ms() / 1000 + SESSION_SECS).to_string();
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
    (exp.parse::<i64>().ok()? > state.clock.now_ms() / 1000).then_some(openid)
}

/// The CSRF token binding a form to the session's openid and the coupon.
pub fn csrf_token(state: &AppState, openid: &str, code: &str) -> String {
    mac(&state.session_key, &["csrf", openid, code])
}

/// Checks a CSRF token in constant time.
pub fn csrf_ok(state: &AppState, openid: &str, code: &str, token: &str) -> bool {
    wechat_core::constant_time_eq(csrf_token(state, openid, code).as_bytes(), token.as_bytes())
}
