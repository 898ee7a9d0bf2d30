//! Follow to get a coupon (关注领券): a campaign's parametric QR code of the official account. Scanning it sends a
//! `subscribe` (new follower) or `SCAN` (follower) push with the campaign's scene; the push's transaction issues the
//! user one coupon within the campaign's limits, and the reply links to it (see `wechat_push`).

use super::State;
use crate::db;
use crate::features::coupons::views::rfc3339;
use crate::features::merchants::repo;
use crate::http::auth;
use crate::http::errors::ApiError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use wechat_message::qrcode::{QrCodeRequest, Scene};

/// The scene of a campaign's follow code.
pub fn scene(campaign_id: i64) -> String {
    format!("fc{campaign_id}")
}

/// The campaign a follow code's scene names, if it is one.
pub fn campaign_of(scene: &str) -> Option<i64> {
    scene.strip_prefix("fc")?.parse().ok().filter(|id| *id > 0)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowCodeBody {
    /// Seconds the code stays valid (60 to 2592000); absent: a permanent code (WeChat allows 100,000 per account).
    expire_secs: Option<u32>,
}

/// `POST /api/v1/campaigns/{id}/follow-code {expire_secs?}` (admin) → 201 `{campaign_id, scene, qr_url, url,
/// expires_at?}`: `qr_url` is the code's image at WeChat, `url` what it encodes (to print it yourself).
pub async fn create(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        FollowCodeBody::default()
    } else {
        crate::http::json::parse::<FollowCodeBody>(&body)?
    };
    let id = path.into_inner();
    let campaign = db::blocking(&state.db, move |conn| repo::campaign(conn, id))
        .await?
        .ok_or_else(|| ApiError::not_found("no such campaign"))?;
    let now = state.clock.now_ms();
    if campaign.valid_until <= now {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "campaign_ended",
            "the campaign has ended: a code for it would hand out nothing",
        ));
    }
    let request = match body.expire_secs {
        Some(secs) if !(60..=2_592_000).contains(&secs) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                "expire_secs must be 60 to 2592000 (30 days); leave it out for a permanent code",
            ));
        }
        Some(secs) => QrCodeRequest::temporary(Scene::Str(scene(id)), secs),
        None => QrCodeRequest::permanent(Scene::Str(scene(id))),
    }
    .map_err(|e| ApiError::bad_request("invalid_field", e.to_string()))?;
    let ticket = state.qrcodes.create(&request).await.map_err(|e| {
        tracing::warn!(error = %e, "qrcode/create failed");
        match &e {
            wechat_message::qrcode::Error::Wechat(inner) if inner.errcode().is_some() => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "wechat_refused",
                format!("WeChat refused the code: {e}"),
            ),
            _ => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "wechat_unavailable",
                "WeChat did not answer: try again in a few seconds",
            )
            .with_retry_after(5),
        }
    })?;
    let expires_at = ticket
        .expire_seconds
        .map(|s| rfc3339(now + i64::try_from(s).unwrap_or(0) * 1000));
    Ok(HttpResponse::Created().json(json!({
        "campaign_id": id,
        "scene": scene(id),
        "qr_url": ticket.image_url(&state.mp_base_url),
        "url": ticket.url,
        "expires_at": expires_at,
    })))
}
