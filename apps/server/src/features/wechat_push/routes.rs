//! `/wechat/push`: the official account's server URL. URL verification (GET), and pushes (POST): card events
//! (`user_get_card` linking a WeChat card code to our coupon, `user_consume_card` redeeming it — exactly once,
//! whoever consumed first), follow codes and text messages. The use case is [`super::service::receive`]; this
//! answers WeChat: `success` (or a passive reply, encrypted when the push was) only after the push's transaction
//! committed, 403 for a refused push, 503 when nothing could be committed (WeChat re-sends).

use super::State;
use super::service::{self, Refused};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use std::collections::HashMap;
use wechat_core::push::{PushError, PushQuery};

fn query(req: &HttpRequest) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status).content_type("text/plain").body(body)
}

/// `GET /wechat/push?signature&timestamp&nonce&echostr`: WeChat's server-URL check.
pub async fn verify(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let receiver = state.official.push().ok();
    verify_with(&req, &state, receiver)
}

/// `GET /wechat/miniprogram/push?…`: the same check for the mini program's message push URL.
pub async fn verify_miniprogram(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let receiver = state.miniprogram.as_ref().and_then(|m| m.push().ok());
    verify_with(&req, &state, receiver)
}

fn verify_with(req: &HttpRequest, state: &State, receiver: Option<&wechat::PushReceiver>) -> HttpResponse {
    if let Err(e) = state.limits.rate.check_ip(crate::http::ratelimit::Limit::Push, req) {
        return actix_web::ResponseError::error_response(&e);
    }
    // What the operator sees while filling in WeChat's server configuration: which setting to fix.
    let Some(receiver) = receiver else {
        return crate::http::errors::envelope(
            StatusCode::NOT_FOUND,
            "push_not_configured",
            "no push token here: set wechat.token (miniprogram.token for the mini program) to the Token entered in \
             WeChat's server configuration",
        );
    };
    let q = query(req);
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if receiver.verify_server_url(get("timestamp"), get("nonce"), get("signature")) {
        HttpResponse::Ok()
            .content_type("text/plain")
            .body(get("echostr").to_owned())
    } else {
        crate::http::errors::envelope(
            StatusCode::FORBIDDEN,
            "signature_mismatch",
            "signature does not match: the Token in WeChat's server configuration must equal wechat.token \
             (miniprogram.token for the mini program)",
        )
    }
}

/// `POST /wechat/push`: a push, taken once.
pub async fn receive_push(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let receiver = state.official.push().ok();
    receive_with(&req, &body, &state, receiver).await
}

/// `POST /wechat/miniprogram/push`: the mini program's message push (XML or JSON, plaintext or safe mode), with the
/// same rules — authenticated, fresh, taken once, acknowledged after the commit. Answered `success` (the mini program
/// takes no passive replies).
pub async fn receive_miniprogram_push(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let receiver = state.miniprogram.as_ref().and_then(|m| m.push().ok());
    receive_with(&req, &body, &state, receiver).await
}

async fn receive_with(
    req: &HttpRequest,
    body: &[u8],
    state: &State,
    receiver: Option<&wechat::PushReceiver>,
) -> HttpResponse {
    if let Err(e) = state.limits.rate.check_ip(crate::http::ratelimit::Limit::Push, req) {
        return actix_web::ResponseError::error_response(&e);
    }
    let Some(receiver) = receiver else {
        return HttpResponse::NotFound().finish();
    };
    let is_miniprogram = req.path().starts_with("/wechat/miniprogram/");
    let q = query(req);
    let push_query = PushQuery {
        signature: q.get("signature").cloned().unwrap_or_default(),
        timestamp: q.get("timestamp").cloned().unwrap_or_default(),
        nonce: q.get("nonce").cloned().unwrap_or_default(),
        encrypt_type: q.get("encrypt_type").cloned(),
        msg_signature: q.get("msg_signature").cloned(),
    };
    match service::receive(state, receiver, &push_query, body).await {
        Ok(taken) => match taken.reply.filter(|_| !is_miniprogram) {
            Some(reply) => HttpResponse::Ok()
                .content_type("application/xml; charset=utf-8")
                .body(receiver.reply(&reply, &taken.message, &push_query, state.clock.now_ms() / 1000)),
            None => text(StatusCode::OK, "success"),
        },
        Err(Refused::Unauthentic(e)) => {
            tracing::warn!(error = %e, "refused a push");
            match e {
                PushError::Body(_) => text(StatusCode::BAD_REQUEST, "invalid push"),
                _ => text(StatusCode::FORBIDDEN, "push refused"),
            }
        }
        Err(Refused::InvalidNonce) => text(StatusCode::BAD_REQUEST, "invalid nonce"),
        Err(Refused::TooLong) => text(StatusCode::BAD_REQUEST, "push fields too long"),
        Err(Refused::Replay) => {
            tracing::warn!("refused a push: its timestamp and nonce came before with another body");
            text(StatusCode::FORBIDDEN, "push refused")
        }
        Err(Refused::Db(e)) => {
            // Nothing was committed: WeChat's re-send will be applied.
            tracing::error!(error = %e, "cannot apply a push");
            text(StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}
