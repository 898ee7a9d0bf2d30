//! `/wechat/push`: the official account's server URL. URL verification (GET), and card events (POST): a
//! `user_get_card` whose `OuterStr` is one of our coupon codes links the WeChat card code to the coupon; a
//! `user_consume_card` for a linked code redeems our coupon — exactly once, whoever consumed first.

use crate::db::{self, coupons as repo};
use crate::routes::auth::now_ms;
use crate::startup::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use redemption_core::{Channel, Outcome};
use std::collections::HashMap;
use wechat_card::events::{CardEvent, PushQuery, receive};

fn query(req: &HttpRequest) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

/// `GET /wechat/push?signature&timestamp&nonce&echostr`: WeChat's server-URL check.
pub async fn verify(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(token) = state.push_token.as_ref() else {
        return HttpResponse::NotFound().finish();
    };
    let q = query(&req);
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if wechat_core::push::verify_server_signature(token.secret(), get("timestamp"), get("nonce"), get("signature")) {
        HttpResponse::Ok()
            .content_type("text/plain")
            .body(get("echostr").to_owned())
    } else {
        HttpResponse::Forbidden().finish()
    }
}

/// `POST /wechat/push`: verified (and in safe mode decrypted) events, processed once each. Answers `success`
/// (WeChat retries otherwise).
pub async fn receive_push(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let Some(token) = state.push_token.as_ref() else {
        return HttpResponse::NotFound().finish();
    };
    let q = query(&req);
    let push_query = PushQuery {
        signature: q.get("signature").cloned().unwrap_or_default(),
        timestamp: q.get("timestamp").cloned().unwrap_or_default(),
        nonce: q.get("nonce").cloned().unwrap_or_default(),
        encrypt_type: q.get("encrypt_type").cloned(),
        msg_signature: q.get("msg_signature").cloned(),
    };
    let push = match receive(token.secret(), state.push_crypto.as_ref(), &push_query, &body) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "refused a push");
            return HttpResponse::BadRequest()
                .content_type("text/plain")
                .body("invalid push");
        }
    };
    let key = push.dedupe_key();
    let record_key = key.clone();
    let first_time = db::blocking(&state.db, move |conn| repo::record_push(conn, &record_key, now_ms())).await;
    match first_time {
        Ok(false) => return HttpResponse::Ok().content_type("text/plain").body("success"),
        Ok(true) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot record push");
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    match push.event {
        CardEvent::UserGetCard {
            user_card_code,
            outer_str: Some(code),
            ..
        } => {
            let linked = db::blocking(&state.db, move |conn| {
                repo::link_card_code(conn, &code.to_ascii_uppercase(), &user_card_code)
            })
            .await;
            if let Err(e) = linked {
                tracing::error!(error = %e, "cannot link card code");
            }
        }
        CardEvent::UserConsumeCard { user_card_code, .. } => {
            let result = db::blocking(&state.db, move |conn| {
                let Some(row) = repo::coupon_by_card_code(conn, &user_card_code)? else {
                    return Ok(None);
                };
                redemption_core::redeem(
                    &mut repo::DbRedemptionStore(conn),
                    &row.code,
                    None,
                    Channel::Wechat,
                    now_ms(),
                )
                .map(|(o, _)| Some(o))
            })
            .await;
            match result {
                Ok(Some(Outcome::Redeemed { .. })) => tracing::info!("coupon redeemed at WeChat's side"),
                Ok(Some(other)) => tracing::info!(outcome = other.name(), "card consumed at WeChat's side"),
                Ok(None) => tracing::info!("consumed card code is not linked to a coupon"),
                Err(e) => {
                    tracing::error!(error = %e, "cannot apply card consumption");
                    // Let WeChat's retry process it again.
                    let _ = db::blocking(&state.db, move |conn| repo::forget_push(conn, &key)).await;
                    return HttpResponse::ServiceUnavailable().finish();
                }
            }
        }
        _ => {}
    }
    HttpResponse::Ok().content_type("text/plain").body("success")
}
