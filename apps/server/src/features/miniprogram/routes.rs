//! `POST /api/v1/miniprogram/{login, phone, profile}`.

use crate::db;
use crate::features::auth::repo::{self, Identity, Profile};
use crate::features::auth::service::{self, MINIPROGRAM, PublicUser};
use crate::http::auth::MiniProgramSession;
use crate::http::errors::ApiError;
use crate::http::json::ApiJson;
use crate::startup::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use wechat_oauth::miniprogram::MiniProgramClient;

/// The API of this capability (under `/api/v1`).
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/miniprogram/login").route(web::post().to(login)))
        .service(web::resource("/miniprogram/phone").route(web::post().to(phone)))
        .service(web::resource("/miniprogram/profile").route(web::post().to(profile)))
        .service(web::resource("/miniprogram/logout").route(web::post().to(logout)));
}

/// `POST /api/v1/miniprogram/logout` (bearer): revokes the token for good (and WeChat's session_key with it).
pub async fn logout(session: MiniProgramSession, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    service::revoke(&state, session.session.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

fn client(state: &AppState) -> Result<&MiniProgramClient, ApiError> {
    state.miniprogram.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "miniprogram_not_configured",
            "no mini program is configured: set miniprogram.app_id and miniprogram.app_secret",
        )
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    code: String,
}

/// `POST /api/v1/miniprogram/login {"code"}` (the code from `wx.login()`) → `{"token", "expires_at", "user"}`. The
/// token is a bearer token for the other mini-program calls; WeChat's session_key is kept server-side with it.
pub async fn login(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    body: ApiJson<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    state.rate_limits.check_ip(crate::http::ratelimit::Limit::Login, &req)?;
    let mp = client(&state)?;
    let code = body.into_inner().code;
    if code.is_empty() || code.len() > 512 {
        return Err(ApiError::bad_request(
            "invalid_code",
            "code must be 1 to 512 characters",
        ));
    }
    let wx = mp.code_to_session(&code).await.map_err(|e| service::wechat_error(&e))?;
    let openid = wx.openid.as_str().to_owned();
    let user = service::record_login(
        &state,
        Identity::Mini(&openid),
        Profile {
            unionid: wx.unionid.as_ref().map(|u| u.as_str().to_owned()),
            ..Profile::default()
        },
    )
    .await?;
    let (token, session) = service::start_session(
        &state,
        MINIPROGRAM,
        &user,
        &openid,
        Some(wx.session_key.secret().to_owned()),
    )
    .await?;
    metrics::counter!("wxkit_logins_total", "channel" => "miniprogram").increment(1);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "token": token,
        "expires_at": chrono::DateTime::from_timestamp(session.expires_at, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "user": PublicUser::from(user),
    })))
}

/// `POST /api/v1/miniprogram/phone {"code"}` (from the page's `getPhoneNumber` button) → `{"user"}` with the verified
/// phone stored. WeChat checks that the code belongs to the token's user.
pub async fn phone(
    session: MiniProgramSession,
    state: web::Data<AppState>,
    body: ApiJson<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    let mp = client(&state)?;
    let code = body.into_inner().code;
    let openid = wechat_core::OpenId::new(session.session.openid.clone());
    let info = mp
        .phone_number(&code, Some(&openid))
        .await
        .map_err(|e| service::wechat_error(&e))?;
    let (user_id, now) = (session.session.user_id, state.clock.now_ms());
    let user = db::blocking(&state.db, move |conn| {
        repo::set_phone(conn, user_id, &info.phone_number, &info.country_code, now)
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"user": PublicUser::from(user)})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    encrypted_data: String,
    iv: String,
}

/// `POST /api/v1/miniprogram/profile {"encrypted_data", "iv"}` (the older `wx.getUserInfo` route): decrypted with the
/// session's session_key, watermark appid checked, and the data's openId must be the token's user → `{"user"}` with
/// the nickname, avatar and unionid stored.
pub async fn profile(
    session: MiniProgramSession,
    state: web::Data<AppState>,
    body: ApiJson<ProfileBody>,
) -> Result<HttpResponse, ApiError> {
    let mp = client(&state)?;
    let Some(key) = &session.session_key else {
        return Err(ApiError::bad_request(
            "no_session_key",
            "this session has no WeChat session_key: log in again with wx.login",
        ));
    };
    let body = body.into_inner();
    let data = mp
        .decrypt(key, &body.encrypted_data, &body.iv)
        .map_err(|e| service::wechat_error(&e))?;
    // The data must be this user's: a valid blob of another user (same app) would otherwise rename this account.
    if data.get("openId").and_then(|v| v.as_str()) != Some(session.session.openid.as_str()) {
        return Err(ApiError::bad_request(
            "invalid_data",
            "encryptedData belongs to another user",
        ));
    }
    let text = |k: &str| {
        data.get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (nickname, avatar, unionid) = (text("nickName"), text("avatarUrl"), text("unionId"));
    let (user_id, now) = (session.session.user_id, state.clock.now_ms());
    let user = db::blocking(&state.db, move |conn| {
        repo::set_profile(
            conn,
            user_id,
            nickname.as_deref(),
            avatar.as_deref(),
            unionid.as_deref(),
            now,
        )
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"user": PublicUser::from(user)})))
}
