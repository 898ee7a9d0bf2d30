//! Logging in through WeChat web OAuth (silent `snsapi_base`): the redirect to WeChat with a signed, single-use
//! state, the callback that starts a session, and the state store in the database.

use super::service::DbStateStore;
use crate::db;
use crate::http::auth::session_cookie;
use crate::http::pages;
use crate::startup::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use wechat_oauth::state::StateError;

/// The pages of this capability.
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/callback", web::get().to(callback));
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
    let store = DbStateStore::new(state.db.clone(), state.clock.clone());
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
    let now = state.clock.now_ms();
    if let Err(e) = db::blocking(&state.db, move |conn| {
        crate::db::users::touch(conn, &upsert_openid, now)
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
