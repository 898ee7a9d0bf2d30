//! Logging in through WeChat web OAuth (silent `snsapi_base`): the redirect to WeChat with a signed, single-use
//! state, the callback that starts a session, and the state store in the database.

use super::State;
use super::repo::{Identity, Profile};
use super::service::{DbStateStore, PublicUser};
use crate::http::auth::{AnySession, SessionKind, WebSession, csrf_ok, same_origin, session_cookie};
use crate::http::errors::ApiError;
use crate::http::pages;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use wechat_oauth::state::StateError;
use wechat_oauth::web::{Lang, Scope};

#[derive(askama::Template)]
#[template(path = "account.html")]
struct AccountPage {
    title: &'static str,
    user_id: i64,
    nickname: String,
    openid: String,
    avatar_url: Option<String>,
    phone: Option<String>,
    csrf: String,
    /// Runs a shop: the page links the console.
    runs_a_shop: bool,
}

/// `GET /account`: who is logged in, with a log-out button; without a session, off to `/login`.
pub async fn account(WebSession(session): WebSession, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let Some(session) = session else {
        return Ok(HttpResponse::Found()
            .insert_header((actix_web::http::header::LOCATION, "/login?return=/account"))
            .finish());
    };
    let user = state.sessions.user(session.user_id).await?;
    let id = user.id;
    let runs_a_shop = crate::db::blocking(&state.db, move |conn| {
        crate::features::console::repo::memberships(conn, id)
    })
    .await
    .is_ok_and(|m| !m.is_empty());
    Ok(pages::render(
        StatusCode::OK,
        &AccountPage {
            runs_a_shop,
            title: "我的账号 · My account",
            user_id: user.id,
            nickname: user.nickname.clone().unwrap_or_else(|| "微信用户 · WeChat user".into()),
            openid: session.openid.clone(),
            avatar_url: user.avatar_url.clone().filter(|a| a.starts_with("https://")),
            phone: user.phone.clone(),
            csrf: crate::http::auth::csrf_token(&state.keys, &session, "logout"),
        },
    ))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    #[serde(rename = "return")]
    return_path: Option<String>,
    scope: Option<String>,
}

/// `GET /auth/wechat?return=/path&scope=base|userinfo`: off to WeChat's authorize page; back at `return` (a path on
/// this site) with a session.
pub async fn start(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<StartQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    let scope = match q.scope.as_deref() {
        None | Some("base") | Some("snsapi_base") => Scope::Base,
        Some("userinfo") | Some("snsapi_userinfo") => Scope::UserInfo,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_scope",
                format!("scope {other:?} is not base or userinfo"),
            ));
        }
    };
    let return_path = q.return_path.as_deref().unwrap_or("/");
    let login = super::service::WebLogin::new(state.platform.clone(), state.state_signer.clone(), state.oauth.clone());
    Ok(crate::http::auth::oauth_redirect(
        &req,
        &state.keys,
        &login.authorize_url(return_path, scope)?,
    ))
}

/// `GET /api/v1/me`: the caller's user (web session cookie or mini-program bearer token), or 401.
pub async fn me(AnySession(session): AnySession, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let user = state.sessions.user(session.user_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"user": PublicUser::from(user)})))
}

#[derive(Debug, serde::Deserialize)]
pub struct LogoutForm {
    csrf: Option<String>,
    #[serde(rename = "return")]
    return_path: Option<String>,
}

/// `POST /auth/logout`: ends the session for good (the row is revoked, so a copied cookie is worthless too) and
/// deletes the cookie. Cross-site requests are refused: a same-origin `Origin` header or the page's form token
/// (`csrf`) is required. Answers 303 to `return` (a path, default `/`), or 204 to `Accept: application/json`.
pub async fn logout(
    req: HttpRequest,
    WebSession(session): WebSession,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let form: LogoutForm = serde_urlencoded::from_bytes(&body).unwrap_or(LogoutForm {
        csrf: None,
        return_path: None,
    });
    if let Some(session) = &session {
        let token_ok = form
            .csrf
            .as_deref()
            .is_some_and(|t| csrf_ok(&state.keys, session, "logout", t));
        if !same_origin(&req, &state.public_base_url) && !token_ok {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "logout must come from this site (same-origin Origin header or the page's form token)",
            ));
        }
        state.sessions.revoke(session.id).await?;
        tracing::info!(session = session.id, "logged out");
    }
    let wants_json = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let mut res = if wants_json {
        HttpResponse::NoContent()
    } else {
        let to = form
            .return_path
            // The one return-path rule of /auth/wechat: a same-origin path, no control characters (a tab in
            // `/\t/evil.example/` makes browsers read `//evil.example/`), nothing a URL parser takes elsewhere.
            .filter(|p| wechat_oauth::state::is_safe_return_path(p))
            .unwrap_or_else(|| "/".to_owned());
        let mut r = HttpResponse::SeeOther();
        r.insert_header((actix_web::http::header::LOCATION, to));
        r
    };
    Ok(res
        .cookie(crate::http::auth::clear_session_cookie(&state.keys))
        .finish())
}

#[derive(Debug, serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// `GET /auth/qrconnect?return=/path`: the website QR login (open platform `qrconnect`, a second way to log in on a
/// computer beside the mini-program code): off to WeChat's login page; back at `return` with a session.
pub async fn qrconnect(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let Some(website) = state.website.as_ref() else {
        return pages::error_page_with(
            StatusCode::NOT_FOUND,
            "网站扫码登录未开通",
            "Logging in with WeChat's website QR code is not set up here (website.app_id): use the mini-program code.",
            &[pages::Action::new("/login", "扫码登录 · Log in")],
        );
    };
    let q = web::Query::<StartQuery>::from_query(req.query_string()).ok();
    let return_path = q
        .as_ref()
        .and_then(|q| q.return_path.clone())
        .unwrap_or_else(|| "/account".into());
    let issued = match state.state_signer.issue(
        &return_path,
        state.clock.now_ms() / 1000,
        super::service::STATE_TTL_SECS,
    ) {
        Ok(i) => i,
        Err(e) => {
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "返回地址无效",
                &format!("The return path is not valid: {e}"),
            );
        }
    };
    let redirect_uri = format!("{}/auth/qrconnect/callback", state.public_base_url);
    match website.qrconnect_url(&redirect_uri, Some(&issued.value)) {
        Ok(url) => crate::http::auth::oauth_redirect(&req, &state.keys, &url),
        Err(e) => {
            tracing::error!(error = %e, "qrconnect URL");
            pages::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "服务出错",
                "Something went wrong on our side.",
            )
        }
    }
}

/// `GET /auth/qrconnect/callback?code&state`: as `/auth/callback`, with the website app's code and identity (linked
/// to the same person by unionid).
pub async fn qrconnect_callback(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    match state.website.clone() {
        Some(website) => complete_login(req, state, &website, true).await,
        None => pages::error_page(
            StatusCode::NOT_FOUND,
            "网站扫码登录未开通",
            "Logging in with WeChat's website QR code is not set up here.",
        ),
    }
}

/// `GET /auth/callback?code&state`: verifies the state (signature, expiry, single use), exchanges the code for the
/// openid, starts a session and sends the user back to the state's return path.
pub async fn callback(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let oauth = state.oauth.clone();
    complete_login(req, state, &oauth, false).await
}

async fn complete_login(
    req: HttpRequest,
    state: web::Data<State>,
    oauth: &wechat_oauth::web::OAuthClient,
    website: bool,
) -> HttpResponse {
    if let Some(page) = state
        .limits
        .rate
        .check_page(crate::http::ratelimit::Limit::OAuthCallback, &req)
    {
        return page;
    }
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
    if let Some(refused) = unbound_callback(&req, &state, &raw_state, website) {
        return refused;
    }
    let store = DbStateStore::with_clock(state.db.clone(), state.clock.clone());
    let verified = match state
        .state_signer
        .verify_once(&raw_state, state.clock.now_ms() / 1000, &store)
        .await
    {
        Ok(v) => v,
        Err(StateError::Store(e)) => {
            tracing::error!(error = %e, "state store failed");
            return pages::error_page(StatusCode::SERVICE_UNAVAILABLE, "服务暂时不可用", "Please try again.");
        }
        Err(e) => {
            tracing::info!(reason = %e, "refused OAuth state");
            return pages::error_page_with(
                StatusCode::BAD_REQUEST,
                "登录已失效",
                "This login link is invalid or expired: open the page you came from again (or scan its code again).",
                &[pages::Action::home()],
            );
        }
    };
    let token = match oauth.exchange_code(&code).await {
        Ok(t) => t,
        Err(e) => return exchange_failed(&e, &verified.return_path),
    };
    if token.is_snapshotuser {
        return pages::error_page(
            StatusCode::FORBIDDEN,
            "请在微信中打开",
            "Please open this page in WeChat.",
        );
    }
    let openid = token.openid.as_str().to_owned();
    let mut profile = Profile {
        unionid: token.unionid.as_ref().map(|u| u.as_str().to_owned()),
        ..Profile::default()
    };
    // With snsapi_userinfo the user agreed to share their nickname and avatar: fetch them now (a failure here
    // costs the profile, not the login).
    if token.has_userinfo_scope() {
        match oauth.user_info(&token.access_token, &token.openid, Lang::ZhCn).await {
            Ok(info) => {
                profile.nickname = Some(info.nickname).filter(|n| !n.is_empty());
                profile.avatar_url = Some(info.headimgurl).filter(|a| !a.is_empty());
                if let Some(u) = info.unionid {
                    profile.unionid = Some(u.as_str().to_owned());
                }
            }
            Err(e) => tracing::warn!(error = %e, "userinfo failed; logging in without the profile"),
        }
    }
    let started = async {
        let identity = if website {
            Identity::Website(&openid)
        } else {
            Identity::Web(&openid)
        };
        let user = state.sessions.record_login(identity, profile).await?;
        // A website login acts as the person's official-account openid when the unionid linked one (their coupons
        // are owned by it), else as its own.
        let acting = user.acting_openid().unwrap_or(&openid).to_owned();
        state.sessions.start(SessionKind::Web, &user, &acting, None).await
    };
    let (secret, _) = match started.await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "could not start the session");
            return pages::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "服务暂时不可用",
                "We could not log you in just now: wait a moment, then open the page again.",
            );
        }
    };
    HttpResponse::Found()
        .cookie(session_cookie(&state.keys, &secret, state.sessions.session_secs()))
        .insert_header((actix_web::http::header::LOCATION, verified.return_path))
        .finish()
}

/// The refusal of a callback whose (genuine) state was not started in this browser: a login link started elsewhere
/// (an attacker's, sent to a victim) does not log this browser in; the user starts their own login instead. A forged
/// or expired state is left to the state check, which refuses it as such without spending anything here.
fn unbound_callback(req: &HttpRequest, state: &State, raw_state: &str, website: bool) -> Option<HttpResponse> {
    let genuine = state
        .state_signer
        .verify(raw_state, state.clock.now_ms() / 1000)
        .is_ok();
    if !genuine || crate::http::auth::oauth_state_bound(req, &state.keys, raw_state) {
        return None;
    }
    tracing::info!("refused an OAuth callback not started in this browser");
    let again = if website { "/auth/qrconnect" } else { "/auth/wechat" };
    Some(pages::error_page_with(
        StatusCode::FORBIDDEN,
        "请重新登录",
        "This login link was started in another browser, so it cannot log you in here: log in again yourself.",
        &[pages::Action::new(again, "重新登录 · Log in"), pages::Action::home()],
    ))
}

/// The page for a code WeChat would not exchange: refused (log in again) or WeChat failing (try again).
fn exchange_failed(e: &wechat_oauth::Error, return_path: &str) -> HttpResponse {
    match e {
        e if e.is_wechat_unavailable() => {
            tracing::warn!(error = %e, "WeChat unavailable during login");
            pages::error_page_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "微信暂时无法连接",
                "WeChat is not answering right now: wait a moment, then try again.",
                &[pages::Action::retry(return_path), pages::Action::home()],
            )
        }
        // The code was refused (stale link, reused, blocked): the person opens the page again for a new one.
        e @ (wechat_oauth::Error::InvalidCode { .. }
        | wechat_oauth::Error::CodeUsed { .. }
        | wechat_oauth::Error::CodeBlocked { .. }) => {
            tracing::info!(error = %e, "OAuth code refused");
            pages::error_page_with(
                StatusCode::BAD_REQUEST,
                "微信登录失败",
                "WeChat did not accept this login link (it was used or is too old): log in again.",
                &[pages::Action::retry(return_path), pages::Action::home()],
            )
        }
        // Anything else is WeChat failing, not the person: 503, try again.
        e => {
            tracing::warn!(error = %e, "OAuth code exchange failed at WeChat");
            pages::error_page_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "微信暂时无法登录",
                "WeChat could not complete the login just now: wait a moment, then try again.",
                &[pages::Action::retry(return_path), pages::Action::home()],
            )
        }
    }
}
