//! `/wechat/push`: the official account's server URL. URL verification (GET), and card events (POST): a
//! `user_get_card` whose `OuterStr` is one of our coupon codes links the WeChat card code to the coupon (after the
//! checks in [`super::repo`]); a `user_consume_card` for a linked code redeems our coupon — exactly once, whoever
//! consumed first.
//!
//! Every push is authenticated (signature; in safe mode only encrypted pushes with a valid `msg_signature`),
//! fresh (timestamp within the window, `(timestamp, nonce)` accepted once per body) and applied once (nonce, dedupe
//! record and effect in one transaction); `success` is answered only after that transaction committed.

use crate::db;
use crate::features::wechat_push::repo;
use crate::platform::crypto::sha256_hex_bytes;
use crate::startup::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use std::collections::HashMap;
use wechat_card::events::{CardEvent, PushQuery, PushSecurity};
use wechat_core::push::{PushError, check_timestamp, open_push};
use wechat_message::{Article, Event, Kind, Reply};

/// Longest dedupe key (FromUserName + CreateTime + event + card code) accepted.
pub const MAX_DEDUPE_KEY: usize = 256;
/// Longest nonce accepted.
pub const MAX_NONCE: usize = 64;

/// The pages of this capability: WeChat's server URL.
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/wechat/push")
            .route(web::get().to(verify))
            .route(web::post().to(receive_push)),
    );
}

fn query(req: &HttpRequest) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

fn text(status: actix_web::http::StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status).content_type("text/plain").body(body)
}

/// `GET /wechat/push?signature&timestamp&nonce&echostr`: WeChat's server-URL check.
pub async fn verify(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(e) = state.rate_limits.check_ip(crate::http::ratelimit::Limit::Push, &req) {
        return actix_web::ResponseError::error_response(&e);
    }
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

/// `POST /wechat/push`: verified (and in safe mode decrypted) events, processed once each. Answers `success` once
/// the push is durably applied (WeChat retries otherwise).
pub async fn receive_push(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    if let Err(e) = state.rate_limits.check_ip(crate::http::ratelimit::Limit::Push, &req) {
        return actix_web::ResponseError::error_response(&e);
    }
    use actix_web::http::StatusCode;
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
    let security = match (state.push_crypto.as_ref(), state.settings.wechat.push_compatible_mode) {
        (None, _) => PushSecurity::Plaintext,
        (Some(c), false) => PushSecurity::Safe(c),
        (Some(c), true) => PushSecurity::Compatible(c),
    };
    let window = i64::from(state.settings.wechat.push_window_secs);
    let checked = open_push(token.secret(), security, &push_query, &body).and_then(|plain| {
        let ts = check_timestamp(&push_query.timestamp, state.clock.now_ms() / 1000, window)?;
        let push = wechat_card::events::parse_push(plain.as_bytes())?;
        let message = wechat_message::incoming::parse(plain.as_bytes())?;
        Ok((push, message, ts))
    });
    let (push, message, timestamp) = match checked {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "refused a push");
            return match e {
                PushError::Body(_) => text(StatusCode::BAD_REQUEST, "invalid push"),
                _ => text(StatusCode::FORBIDDEN, "push refused"),
            };
        }
    };
    if push_query.nonce.is_empty() || push_query.nonce.len() > MAX_NONCE {
        return text(StatusCode::BAD_REQUEST, "invalid nonce");
    }
    let key = message.dedupe_key();
    if key.len() > MAX_DEDUPE_KEY {
        return text(StatusCode::BAD_REQUEST, "push fields too long");
    }
    let effect = match push.event {
        CardEvent::UserGetCard {
            card_id,
            user_card_code,
            outer_str: Some(code),
            ..
        } => repo::PushEffect::LinkCard {
            coupon_code: code,
            card_id,
            card_code: user_card_code,
            from_user: push.from_user_name.clone(),
        },
        CardEvent::UserConsumeCard { user_card_code, .. } => repo::PushEffect::ConsumeCard {
            card_code: user_card_code,
        },
        _ => match &message.kind {
            // Follow to get a coupon: a campaign's code scanned by a new follower or a follower.
            Kind::Event(Event::Subscribe { scene: Some(scene), .. }) | Kind::Event(Event::Scan { scene, .. }) => {
                match crate::features::merchants::follow::campaign_of(scene) {
                    Some(campaign_id) if !message.from_user_name.is_empty() => repo::PushEffect::FollowCoupon {
                        campaign_id,
                        openid: message.from_user_name.clone(),
                    },
                    _ => repo::PushEffect::Nothing,
                }
            }
            _ => repo::PushEffect::Nothing,
        },
    };
    let nonce = repo::PushNonce {
        timestamp,
        nonce: push_query.nonce.clone(),
        body_sha256: sha256_hex_bytes(&body),
    };
    let now = state.clock.now_ms();
    let applied = db::blocking(&state.db, move |conn| {
        repo::apply_push(conn, &nonce, &key, &effect, now)
    })
    .await;
    match applied {
        Ok(repo::PushApplied::Applied(what)) => {
            tracing::info!(what, "applied a push");
            match &message.kind {
                // A customer writing to the account gets the way to their coupons.
                Kind::Text { .. } => passive_reply(&state, &push_query, &message, &text_reply(&state)),
                _ => text(StatusCode::OK, "success"),
            }
        }
        Ok(repo::PushApplied::Followed(outcome)) => {
            // The outcome carries the coupon code, a bearer secret: log what happened, not the code.
            let what = match &outcome {
                repo::FollowOutcome::Issued { .. } => "coupon issued",
                repo::FollowOutcome::Refused(_) => "refused by the campaign's rules",
                repo::FollowOutcome::NoCampaign => "no such campaign",
            };
            tracing::info!(what, "follow code scanned");
            passive_reply(&state, &push_query, &message, &follow_reply(&state, &outcome))
        }
        Ok(repo::PushApplied::Duplicate) => text(StatusCode::OK, "success"),
        Ok(repo::PushApplied::Replay) => {
            tracing::warn!("refused a push: its timestamp and nonce came before with another body");
            text(StatusCode::FORBIDDEN, "push refused")
        }
        Err(e) => {
            // Nothing was committed: WeChat's re-send will be applied.
            tracing::error!(error = %e, "cannot apply a push");
            text(StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}

/// Answers a push with a passive reply: to the user who wrote, from our account, encrypted when the push was.
fn passive_reply(
    state: &AppState,
    query: &PushQuery,
    message: &wechat_message::Incoming,
    reply: &Reply,
) -> HttpResponse {
    let now_secs = state.clock.now_ms() / 1000;
    let (to, from) = (&message.from_user_name, &message.to_user_name);
    let encrypted = query
        .encrypt_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("aes"));
    let body = match state.push_crypto.as_ref() {
        Some(crypto) if encrypted => reply.render_encrypted(crypto, to, from, now_secs, &query.nonce),
        _ => reply.render(to, from, now_secs),
    };
    HttpResponse::Ok()
        .content_type("application/xml; charset=utf-8")
        .body(body)
}

/// The answer to a text message: where the customer's coupons are.
fn text_reply(state: &AppState) -> Reply {
    Reply::text(format!(
        "你的优惠券都在这里 · Your coupons: {}/coupons/mine",
        state.public_base_url
    ))
}

/// The passive reply to a follow code's scan: a news message opening the coupon, or why there is none.
fn follow_reply(state: &AppState, outcome: &repo::FollowOutcome) -> Reply {
    let base = &state.public_base_url;
    match outcome {
        repo::FollowOutcome::Issued { code, title } => Reply::News(Article {
            title: format!("领取成功 · {title}"),
            description: "点此打开你的券，到店出示二维码核销 · Tap to open your coupon and show its QR code in store"
                .into(),
            pic_url: String::new(),
            url: format!("{base}/c/{code}"),
        }),
        repo::FollowOutcome::Refused(redemption_core::IssueError::PerUserLimit) => Reply::text(format!(
            "你已领取过这张券 · You already have this coupon: {base}/coupons/mine"
        )),
        repo::FollowOutcome::Refused(redemption_core::IssueError::SoldOut) => {
            Reply::text("这张券已领完 · All of these coupons have been given out")
        }
        repo::FollowOutcome::Refused(redemption_core::IssueError::Ended) | repo::FollowOutcome::NoCampaign => {
            Reply::text("活动已结束 · This offer has ended")
        }
    }
}
