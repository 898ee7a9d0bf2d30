//! Scan-to-login over HTTP: the scene API (browser and mini-program sides), the code image, the WebSocket, the
//! ticket exchange and the login page.

use super::State;
use super::service;
use crate::db;
use crate::features::auth::service::PublicUser;
use crate::http::auth::{MiniProgramSession, SessionKind, WebSession, same_origin, session_cookie};
use crate::http::errors::ApiError;
use crate::http::json::ApiJson;
use crate::http::pages;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[serde(rename = "return")]
    return_path: Option<String>,
}

/// The scene's stored code image, if one was fetched.
async fn stored_png(state: &State, scene: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let s = scene.to_owned();
    Ok(db::blocking(&state.db, move |conn| super::repo::png(conn, &s))
        .await?
        .flatten())
}

/// Fetches a scene's code image from WeChat (once: see [`super::CodeFlights`]) and keeps it. The instance's budget
/// of WeChat code calls (`rate_limits.login_codes_per_minute`) keeps one client from spending the mini program's
/// quota, which every user's scan-to-login shares.
async fn fetch_code(state: &State, scene: &str) -> Result<Vec<u8>, ApiError> {
    // A request that waited for another's flight which just landed finds the stored image.
    if let Some(png) = stored_png(state, scene).await? {
        return Ok(png);
    }
    let Some(mp) = state.miniprogram.as_ref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "miniprogram_not_configured",
            "no mini program is configured: set miniprogram.app_id and miniprogram.app_secret",
        ));
    };
    if let Err(secs) = state
        .limits
        .rate
        .check_key(crate::http::ratelimit::Limit::LoginCodes, "getwxacodeunlimit")
    {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "login_codes_busy",
            format!("too many login codes are being made right now: try again in {secs} s"),
        )
        .with_retry_after(secs.max(1)));
    }
    let request = wechat_oauth::miniprogram::WxaCodeRequest::new(scene)
        .and_then(|r| r.page(&state.mp_page))
        .map_err(|e| ApiError::internal(&e))?;
    let code = mp
        .unlimited_code(&request)
        .await
        .map_err(|e| crate::http::errors::wechat_login_error(&e))?;
    let png = code.bytes;
    let (s, p) = (scene.to_owned(), png.clone());
    if let Err(e) = db::blocking(&state.db, move |conn| super::repo::store_png(conn, &s, &p)).await {
        tracing::warn!(error = %e, "could not keep a login code image");
    }
    Ok(png)
}

/// `POST /api/v1/login/scenes {"return"?}` → 201 `{"scene", "qr_url", "ws_url", "expires_at"}`. `ws_url` carries the
/// scene's watch key: only this browser can watch the scene (the QR code, which anyone nearby can photograph,
/// carries the scene alone).
pub async fn create(req: HttpRequest, state: web::Data<State>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    state.limits.rate.check_ip(crate::http::ratelimit::Limit::Login, &req)?;
    // Each code may cost a getwxacodeunlimit call (rate-limited by WeChat): a per-address budget.
    if let Some(ip) = crate::http::client::client_ip(&req) {
        if let Err(secs) = state.scene_limiter.check_ip(ip) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_login_codes",
                format!("too many login codes from this address: try again in {secs} s"),
            )
            .with_retry_after(secs));
        }
        state.scene_limiter.failed_ip(ip);
    }
    let body: CreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?
    };
    let scene = service::create(&state, body.return_path.as_deref().unwrap_or("/account")).await?;
    let base = &state.public_base_url;
    let ws_base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        format!("ws://{}", base.trim_start_matches("http://"))
    };
    // Sandbox: where the simulated phone opens this scene (what the code encodes), so a person can play the phone.
    let sandbox_phone_url = state
        .sandbox_sim_url
        .as_ref()
        .zip(state.miniprogram.as_ref())
        .map(|(sim, mp)| {
            format!(
                "{sim}/_sim/wxa/open?appid={}&scene={}&page={}",
                mp.app_id().as_str(),
                scene.scene,
                url::form_urlencoded::byte_serialize(state.mp_page.as_bytes()).collect::<String>()
            )
        });
    Ok(HttpResponse::Created().json(serde_json::json!({
        "sandbox_phone_url": sandbox_phone_url,
        "scene": scene.scene,
        "qr_url": format!("{base}/api/v1/login/scenes/{}/qr.png", scene.scene),
        "ws_url": format!("{ws_base}/ws/login/{}?key={}", scene.scene, scene.watch_key),
        "expires_at": crate::platform::time::rfc3339_unix(scene.expires_at),
    })))
}

/// `GET /api/v1/login/scenes/{scene}/qr.png`: the mini-program code (`getwxacodeunlimit`, page `login.mp_page`),
/// fetched from WeChat once per scene and kept with it.
pub async fn qr(req: HttpRequest, path: web::Path<String>, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    state.limits.rate.check_ip(crate::http::ratelimit::Limit::Login, &req)?;
    let scene = path.into_inner();
    let row = service::load(&state, &scene).await?;
    if service::expired(&row, state.clock.now_ms()) {
        return Err(service::SceneError::Expired("this login code has expired: create a new scene").into());
    }
    let png = match stored_png(&state, &scene).await? {
        Some(png) => png,
        None => {
            // Single flight: concurrent requests for one scene share one WeChat call and its answer.
            let flight = state.code_flights.join(&scene);
            let result = flight.get_or_init(|| fetch_code(&state, &scene)).await.clone();
            state.code_flights.land(&scene, &flight);
            result?
        }
    };
    // WeChat answers PNG or JPEG; the bytes say which.
    let content_type = if png.starts_with(&[0xFF, 0xD8]) {
        "image/jpeg"
    } else {
        "image/png"
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "private, max-age=300"))
        .body(png))
}

/// `POST /api/v1/login/scenes/{scene}/scan` (mini program, bearer token): the user opened the scene's code.
pub async fn scan(
    session: MiniProgramSession,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    service::load(&state, &path).await?;
    service::scan(&state, &path, session.session.user_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "scanned"})))
}

/// `POST /api/v1/login/scenes/{scene}/confirm` (mini program, bearer token): the user confirmed on the phone.
pub async fn confirm(
    session: MiniProgramSession,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    service::load(&state, &path).await?;
    service::confirm(&state, &path, session.session.user_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "confirmed"})))
}

/// `POST /api/v1/login/scenes/{scene}/cancel` (mini program, bearer token): the user declined.
pub async fn cancel(
    session: MiniProgramSession,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    service::load(&state, &path).await?;
    service::cancel(&state, &path, session.session.user_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "cancelled"})))
}

/// `GET /ws/login/{scene}?key=` without `Upgrade: websocket`: the socket is served by the HTTP service's upgrade hook
/// ([`super::socket::upgrade`]); a plain GET is told what to do.
pub async fn socket() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::UPGRADE_REQUIRED,
        "not_websocket",
        "this is a WebSocket: connect with Upgrade: websocket (JSON text frames {\"event\": ...})",
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketBody {
    ticket: String,
}

/// `POST /auth/ticket {"ticket"}`: the one-time ticket from the socket's `confirmed` event → the session cookie and
/// `{"user", "return"}`. A used, expired or unknown ticket is a 400.
pub async fn ticket(
    req: HttpRequest,
    state: web::Data<State>,
    body: ApiJson<TicketBody>,
) -> Result<HttpResponse, ApiError> {
    // Login CSRF: another site must not log this browser into someone else's account with a ticket of theirs.
    // Browsers always send Origin on a cross-site POST.
    if req.headers().contains_key(actix_web::http::header::ORIGIN) && !same_origin(&req, &state.public_base_url) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_origin",
            "tickets are exchanged by this site's own login page",
        ));
    }
    let (user, return_path) = service::take_ticket(&state, &body.into_inner().ticket).await?;
    let Some(openid) = user.acting_openid().map(str::to_owned) else {
        return Err(ApiError::internal(&"a confirmed user without an openid"));
    };
    let (secret, _) = state.sessions.start(SessionKind::Web, &user, &openid, None).await?;
    metrics::counter!("wxkit_logins_total", "channel" => "scan").increment(1);
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&state.keys, &secret, state.sessions.session_secs()))
        .json(serde_json::json!({"user": PublicUser::from(user), "return": return_path})))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    title: &'a str,
    return_path: &'a str,
    /// The website QR login, when configured: offered beside the mini-program code.
    website_login: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(rename = "return")]
    return_path: Option<String>,
}

/// `GET /login?return=/path`: the website's login page — a mini-program code to scan with WeChat, its live status,
/// a fresh code when one expires, and off to `return` once confirmed. Already logged in: straight to `return`.
pub async fn login_page(req: HttpRequest, WebSession(session): WebSession, state: web::Data<State>) -> HttpResponse {
    let q = web::Query::<LoginQuery>::from_query(req.query_string()).ok();
    let return_path = q
        .and_then(|q| q.into_inner().return_path)
        .and_then(|p| service::safe_return_path(&p).ok())
        .unwrap_or_else(|| "/account".to_owned());
    if session.is_some() {
        return HttpResponse::Found()
            .insert_header((actix_web::http::header::LOCATION, return_path))
            .finish();
    }
    pages::render(
        StatusCode::OK,
        &LoginPage {
            title: "微信扫码登录 · Log in with WeChat",
            return_path: &return_path,
            website_login: state.website_login.then(|| {
                format!(
                    "/auth/qrconnect?return={}",
                    url::form_urlencoded::byte_serialize(return_path.as_bytes()).collect::<String>()
                )
            }),
        },
    )
}
