//! `POST /api/v1/miniprogram/{login, phone, profile, logout}`: thin handlers over [`super::service`].

use super::State;
use super::service::{self, MpError};
use crate::features::auth::service::PublicUser;
use crate::http::auth::MiniProgramSession;
use crate::http::errors::ApiError;
use crate::http::json::ApiJson;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

impl From<MpError> for ApiError {
    fn from(e: MpError) -> ApiError {
        match e {
            MpError::NotConfigured => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "miniprogram_not_configured",
                e.to_string(),
            ),
            MpError::InvalidCode => ApiError::bad_request("invalid_code", e.to_string()),
            MpError::Wechat(e) => crate::http::errors::wechat_login_error(&e),
            MpError::NoSessionKey => ApiError::bad_request("no_session_key", e.to_string()),
            MpError::ForeignData => ApiError::bad_request("invalid_data", e.to_string()),
            MpError::Auth(e) => e.into(),
            MpError::Db(e) => e.into(),
        }
    }
}

/// `POST /api/v1/miniprogram/logout` (bearer): revokes the token for good (and WeChat's session_key with it).
pub async fn logout(session: MiniProgramSession, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    state.sessions.revoke(session.session.id).await?;
    Ok(HttpResponse::NoContent().finish())
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
    state: web::Data<State>,
    body: ApiJson<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    state.limits.rate.check_ip(crate::http::ratelimit::Limit::Login, &req)?;
    let mp = service::client(state.miniprogram.as_ref())?;
    let done = service::login(mp, &state.sessions, &body.into_inner().code).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "token": done.token,
        "expires_at": crate::platform::time::rfc3339_unix(done.session.expires_at),
        "user": PublicUser::from(done.user),
    })))
}

/// `POST /api/v1/miniprogram/phone {"code"}` (from the page's `getPhoneNumber` button) → `{"user"}` with the verified
/// phone stored. WeChat checks that the code belongs to the token's user.
pub async fn phone(
    session: MiniProgramSession,
    state: web::Data<State>,
    body: ApiJson<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    let mp = service::client(state.miniprogram.as_ref())?;
    let user = service::phone(&state, mp, &session.session, &body.into_inner().code).await?;
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
    state: web::Data<State>,
    body: ApiJson<ProfileBody>,
) -> Result<HttpResponse, ApiError> {
    let mp = service::client(state.miniprogram.as_ref())?;
    let body = body.into_inner();
    let user = service::profile(
        &state,
        mp,
        &session.session,
        session.session_key.as_ref(),
        &body.encrypted_data,
        &body.iv,
    )
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"user": PublicUser::from(user)})))
}
