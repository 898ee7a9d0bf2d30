//! Who is calling: admin bearer token, staff POS tokens, and customer/staff sessions established through silent
//! WeChat OAuth (`snsapi_base`) with a signed, single-use state.

use crate::http::errors::ApiError;
use crate::platform::Platform;
use actix_web::cookie::{Cookie, CookieJar, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The session cookie.
pub const SESSION_COOKIE: &str = "wxkit_session";

pub use crate::platform::clock::now_ms;

/// Which kind of session a secret opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// A web session (signed cookie).
    Web,
    /// A mini-program session (bearer token).
    MiniProgram,
}

impl SessionKind {
    /// Its name in the `sessions` table.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Web => "web",
            SessionKind::MiniProgram => "miniprogram",
        }
    }
}

/// Where live sessions are looked up. The kernel's extractors ask it; the login capability provides it (the
/// kernel names no capability).
#[async_trait::async_trait]
pub trait SessionLookup: Send + Sync {
    /// The live session of `kind` whose secret is `secret`, with WeChat's session_key for mini-program sessions.
    /// A database failure is an error (503), never "no session".
    async fn live(&self, secret: &str, kind: SessionKind) -> Result<Option<(Session, Option<String>)>, ApiError>;
}

/// The keys of authentication, shared by every instance: the admin token, the session and CSRF signing key, the
/// cookie key derived from it; and the session lookup. Registered once as application data.
pub struct AuthKeys {
    /// The admin API token (generated in sandbox mode when unset).
    pub admin_token: Option<wechat_core::SecretString>,
    /// Signs CSRF tokens.
    session_key: Vec<u8>,
    /// Signs session cookies (derived from the session key).
    cookie_key: actix_web::cookie::Key,
    /// Cookies are `Secure` when the public URL is https.
    secure_cookies: bool,
    /// Finds live sessions.
    pub sessions: std::sync::Arc<dyn SessionLookup>,
}

impl std::fmt::Debug for AuthKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys and tokens stay out of Debug output.
        f.debug_struct("AuthKeys")
            .field("admin_token", &self.admin_token)
            .field("secure_cookies", &self.secure_cookies)
            .finish_non_exhaustive()
    }
}

impl AuthKeys {
    /// The keys from the shared `session_key` secret; cookies `Secure` when `public_base_url` is https.
    pub fn new(
        admin_token: Option<wechat_core::SecretString>,
        session_key: &str,
        public_base_url: &str,
        sessions: std::sync::Arc<dyn SessionLookup>,
    ) -> AuthKeys {
        AuthKeys {
            admin_token,
            cookie_key: actix_web::cookie::Key::derive_from(session_key.as_bytes()),
            session_key: session_key.as_bytes().to_vec(),
            secure_cookies: public_base_url.starts_with("https://"),
            sessions,
        }
    }
}

/// The platform and the keys, as registered application data.
fn kernel(req: &HttpRequest) -> Result<(&Platform, &AuthKeys), ApiError> {
    match (
        req.app_data::<web::Data<Platform>>(),
        req.app_data::<web::Data<AuthKeys>>(),
    ) {
        (Some(platform), Some(keys)) => Ok((platform.get_ref(), keys.get_ref())),
        _ => Err(ApiError::internal(
            &"the platform or the authentication keys are not registered",
        )),
    }
}
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
    wechat_core::encoding::hex_lower(&m.finalize().into_bytes())
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

pub(crate) fn unauthorized(message: &str) -> ApiError {
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
        std::future::ready(match kernel(req) {
            Ok((platform, keys)) => require_admin(req, platform, keys).map(|()| AdminAuth),
            Err(e) => Err(e),
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
        let platform = match kernel(req) {
            Ok((platform, _)) => platform,
            Err(e) => return std::future::ready(Err(e)),
        };
        std::future::ready((|| {
            let Some(token) = bearer(req) else {
                platform.limits.auth.check(req)?;
                platform.limits.auth.failed(req);
                return Err(unauthorized("POS calls need Authorization: Bearer <staff api_token>"));
            };
            let token_hash = sha256_hex(&token);
            // The redemption marks the token verified once the database knows it (`AuthLimiter::verified`).
            platform.limits.auth.check_credential(req, Some(&token_hash))?;
            Ok(StaffBearer { token_hash })
        })())
    }
}

/// Checks the admin bearer token (constant time). Failures count against the caller's address
/// ([`crate::http::ratelimit::AuthLimiter`]).
pub fn require_admin(req: &HttpRequest, platform: &Platform, keys: &AuthKeys) -> Result<(), ApiError> {
    let limiter = &platform.limits.auth;
    let given = bearer(req);
    let digest = given.as_deref().map(sha256_hex);
    limiter.check_credential(req, digest.as_deref())?;
    let Some(expected) = keys.admin_token.as_ref() else {
        return Err(unauthorized("the admin API is disabled: set WXKIT__ADMIN__TOKEN"));
    };
    let (Some(given), Some(digest)) = (given, digest) else {
        limiter.failed(req);
        return Err(unauthorized("admin calls need Authorization: Bearer <admin token>"));
    };
    if wechat_core::constant_time_eq(given.as_bytes(), expected.secret().as_bytes()) {
        limiter.verified(&digest);
        Ok(())
    } else {
        limiter.failed(req);
        Err(unauthorized("wrong admin token"))
    }
}

/// A live session: which row, whose, acting as which openid, until when (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The session's id (revocation, CSRF binding).
    pub id: i64,
    /// Our user id.
    pub user_id: i64,
    /// The openid the session acts as (from WeChat OAuth, or the user's mini-program openid).
    pub openid: String,
    /// When the session ends, Unix seconds.
    pub expires_at: i64,
}

/// The session cookie carrying `secret` (a random token; the database keeps only its sha256), signed (HMAC-SHA256)
/// by the cookie crate's signed jar with a key derived from the shared server secret, so every instance accepts it
/// and a forged or altered cookie is not even looked up.
pub fn session_cookie(keys: &AuthKeys, secret: &str, max_age_secs: i64) -> Cookie<'static> {
    let cookie = Cookie::build(SESSION_COOKIE, secret.to_owned())
        .path("/")
        .http_only(true)
        .secure(keys.secure_cookies)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish();
    let mut jar = CookieJar::new();
    jar.signed_mut(&keys.cookie_key).add(cookie);
    jar.get(SESSION_COOKIE)
        .cloned()
        .unwrap_or_else(|| Cookie::new(SESSION_COOKIE, ""))
}

/// The cookie that binds OAuth states to the browser that asked for them (login CSRF: an attacker's unfinished
/// callback link must not log a victim's browser into the attacker's account).
pub const OAUTH_BINDING_COOKIE: &str = "wxkit_oauth";
/// States a browser may have in flight at once (tabs logging in side by side).
const OAUTH_BINDINGS_KEPT: usize = 4;

fn oauth_binding(keys: &AuthKeys, state: &str) -> String {
    mac(&keys.session_key, &["oauth-binding", state])[..32].to_owned()
}

/// A 302 to WeChat's authorize `url` that also binds the URL's `state` to this browser: the binding cookie keeps
/// the MACs of its last few states (HttpOnly, SameSite=Lax — sent on the top-level GET back from WeChat).
pub fn oauth_redirect(req: &HttpRequest, keys: &AuthKeys, url: &str) -> actix_web::HttpResponse {
    let state = url::Url::parse(url)
        .ok()
        .and_then(|u| u.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()));
    let mut res = crate::http::errors::found(url);
    if let Some(state) = state {
        let mut kept: Vec<String> = req
            .cookie(OAUTH_BINDING_COOKIE)
            .map(|c| c.value().split('.').map(str::to_owned).collect())
            .unwrap_or_default();
        kept.retain(|b| b.len() == 32 && b.bytes().all(|c| c.is_ascii_hexdigit()));
        kept.push(oauth_binding(keys, &state));
        let skip = kept.len().saturating_sub(OAUTH_BINDINGS_KEPT);
        let cookie = Cookie::build(OAUTH_BINDING_COOKIE, kept[skip..].join("."))
            .path("/auth")
            .http_only(true)
            .secure(keys.secure_cookies)
            .same_site(SameSite::Lax)
            .max_age(actix_web::cookie::time::Duration::minutes(15))
            .finish();
        let _ = res.add_cookie(&cookie);
    }
    res
}

/// Whether a callback's `state` may complete a login in this browser: it must be bound to the browser (its MAC in
/// the binding cookie). WeChat's own webview is the one exception, and only when it sent no binding cookie at all:
/// some of its versions drop cookies across the authorize hop, and inside WeChat the link opens in the user's own
/// account anyway.
pub fn oauth_state_bound(req: &HttpRequest, keys: &AuthKeys, state: &str) -> bool {
    match req.cookie(OAUTH_BINDING_COOKIE) {
        Some(c) => {
            let want = oauth_binding(keys, state);
            c.value()
                .split('.')
                .any(|b| wechat_core::constant_time_eq(b.as_bytes(), want.as_bytes()))
        }
        None => in_wechat(req),
    }
}

/// Whether the request comes from WeChat's in-app browser (its user agent says `MicroMessenger`).
pub fn in_wechat(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.contains("MicroMessenger"))
}

/// A cookie that deletes the session cookie.
pub fn clear_session_cookie(keys: &AuthKeys) -> Cookie<'static> {
    let mut c = Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .secure(keys.secure_cookies)
        .same_site(SameSite::Lax)
        .finish();
    c.make_removal();
    c
}

/// The verified secret in the request's session cookie, if its signature holds.
pub fn session_secret(req: &HttpRequest, keys: &AuthKeys) -> Option<String> {
    let raw = req.cookie(SESSION_COOKIE)?;
    let mut jar = CookieJar::new();
    jar.add_original(raw);
    let verified = jar.signed(&keys.cookie_key).get(SESSION_COOKIE)?;
    let secret = verified.value();
    (!secret.is_empty()).then(|| secret.to_owned())
}

/// The request's live web session: signed cookie, then the database row (unexpired, not revoked).
pub async fn session(req: &HttpRequest, keys: &AuthKeys) -> Result<Option<Session>, ApiError> {
    let Some(secret) = session_secret(req, keys) else {
        return Ok(None);
    };
    keys.sessions
        .live(&secret, SessionKind::Web)
        .await
        .map(|found| found.map(|(s, _)| s))
}

/// The session, if any, as an extractor (pages decide what a visitor without one sees). A database failure is a
/// 503, never "no session".
#[derive(Clone, Debug)]
pub struct WebSession(pub Option<Session>);

impl actix_web::FromRequest for WebSession {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<WebSession, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (_, keys) = kernel(&req)?;
            session(&req, keys).await.map(WebSession)
        })
    }
}

/// A required web session or mini-program bearer session (the `/api/v1/me` caller): 401 without one.
#[derive(Clone, Debug)]
pub struct AnySession(pub Session);

impl actix_web::FromRequest for AnySession {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<AnySession, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (platform, keys) = kernel(&req)?;
            if let Some(token) = bearer(&req) {
                let digest = sha256_hex(&token);
                platform.limits.auth.check_credential(&req, Some(&digest))?;
                return match keys.sessions.live(&token, SessionKind::MiniProgram).await? {
                    Some((s, _)) => {
                        platform.limits.auth.verified(&digest);
                        Ok(AnySession(s))
                    }
                    None => {
                        platform.limits.auth.failed(&req);
                        Err(unauthorized(
                            "the bearer token is unknown, expired or revoked: log in again",
                        ))
                    }
                };
            }
            match session(&req, keys).await? {
                Some(s) => Ok(AnySession(s)),
                None => Err(unauthorized("not logged in: log in with WeChat (GET /auth/wechat)")),
            }
        })
    }
}

/// A required mini-program session (`Authorization: Bearer <token from /api/v1/miniprogram/login>`), with WeChat's
/// session_key for decrypting the user's data (server-side only).
#[derive(Clone)]
pub struct MiniProgramSession {
    /// The session.
    pub session: Session,
    /// WeChat's session_key from the latest `jscode2session`.
    pub session_key: Option<wechat_oauth::miniprogram::SessionKey>,
}

impl std::fmt::Debug for MiniProgramSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniProgramSession")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl actix_web::FromRequest for MiniProgramSession {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<MiniProgramSession, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (platform, keys) = kernel(&req)?;
            let Some(token) = bearer(&req) else {
                platform.limits.auth.check(&req)?;
                platform.limits.auth.failed(&req);
                return Err(unauthorized(
                    "mini-program calls need Authorization: Bearer <token from POST /api/v1/miniprogram/login>",
                ));
            };
            let digest = sha256_hex(&token);
            platform.limits.auth.check_credential(&req, Some(&digest))?;
            match keys.sessions.live(&token, SessionKind::MiniProgram).await? {
                Some((session, session_key)) => {
                    platform.limits.auth.verified(&digest);
                    Ok(MiniProgramSession {
                        session,
                        session_key: session_key.map(wechat_oauth::miniprogram::SessionKey::new),
                    })
                }
                None => {
                    platform.limits.auth.failed(&req);
                    Err(unauthorized(
                        "the bearer token is unknown, expired or revoked: log in again",
                    ))
                }
            }
        })
    }
}

/// The CSRF token binding a form to the session (its id, openid and expiry) and its purpose (a coupon code, or
/// `logout`): it dies with the session.
pub fn csrf_token(keys: &AuthKeys, session: &Session, purpose: &str) -> String {
    mac(
        &keys.session_key,
        &[
            "csrf",
            &session.id.to_string(),
            &session.openid,
            &session.expires_at.to_string(),
            purpose,
        ],
    )
}

/// Checks a CSRF token in constant time.
pub fn csrf_ok(keys: &AuthKeys, session: &Session, code: &str, token: &str) -> bool {
    wechat_core::constant_time_eq(csrf_token(keys, session, code).as_bytes(), token.as_bytes())
}

/// True when the request's `Origin` is this site's (`public_base_url`): a form posted from another site is not.
pub fn same_origin(req: &HttpRequest, public_base_url: &str) -> bool {
    let Some(origin) = req
        .headers()
        .get(actix_web::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    match url::Url::parse(public_base_url) {
        Ok(base) => base.origin().ascii_serialization() == origin,
        Err(_) => false,
    }
}
