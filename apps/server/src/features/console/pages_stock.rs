//! The console's way into WeChat card bags for a campaign created today: the shop owner uploads a logo and the
//! merchant's name, and the campaign is backed by a WeChat Pay 商家券 stock — the same use case as the admin API's
//! `POST /api/v1/campaigns/{id}/wechat-pay-coupon`, with no developer in between.

use super::State;
use super::pages::{csrf, done, member};
use super::repo::{self, Role};
use crate::http::auth::WebSession;
use crate::http::multipart;
use crate::http::pages::{self, Action};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

/// `POST /console/{mid}/campaigns/{cid}/wechat-pay-coupon` (multipart: `csrf`, `logo`, `brand_name`, `notice?`): the
/// owner or a manager backs a running campaign with a new stock; 303 back with a message, or a page naming what is
/// wrong (the field, WeChat's refusal, WeChat down, 商家券 not enabled for this merchant).
pub async fn wechat_pay_coupon(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<(i64, i64)>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (mid, cid) = path.into_inner();
    let m = match member(&req, &state, session, mid).await {
        Ok(m) => m,
        Err(page) => return page,
    };
    let back = format!("/console/{mid}/campaigns/{cid}");
    let say = |status: StatusCode, en: &str| {
        pages::error_page_with(
            status,
            "没有接入微信卡包",
            en,
            &[Action::new(back.clone(), "返回 · Back")],
        )
    };
    if m.role == Role::Staff {
        return say(StatusCode::FORBIDDEN, "Only the shop's owner or a manager can do this.");
    }
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let limits = multipart::Limits {
        max_parts: 16,
        file_bytes: crate::features::merchants::card::MAX_BODY,
        text_bytes: 4096,
    };
    let parts = match multipart::read(&content_type, body.to_vec(), limits).await {
        Ok(p) => p,
        Err(e) => return say(StatusCode::BAD_REQUEST, &format!("The form did not arrive whole: {e}")),
    };
    let token = parts.iter().find(|p| p.name == "csrf").and_then(multipart::Part::text);
    if let Err(page) = csrf(&state, &m, token) {
        return page;
    }
    let Some(b) = state.busifavor.clone() else {
        return say(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::platform::busifavor::NOT_CONFIGURED,
        );
    };
    let found = crate::db::blocking(&state.db, move |conn| {
        let c = crate::features::merchants::repo::campaign(conn, cid)?.filter(|c| c.merchant_id == mid);
        Ok((c, crate::features::coupons::busifavor::stock_of(conn, cid)?))
    })
    .await;
    let campaign = match found {
        Ok((Some(c), None)) => c,
        Ok((Some(_), Some(stock))) => {
            return say(
                StatusCode::CONFLICT,
                &format!("This campaign is in WeChat card bags already (stock {stock})."),
            );
        }
        Ok((None, _)) => return say(StatusCode::NOT_FOUND, "No such campaign in this shop."),
        Err(_) => return pages::unavailable_page(&back),
    };
    let now = state.clock.now_ms();
    let made = crate::features::merchants::stock::back_with_new_stock(
        &state.db,
        &b,
        &campaign,
        &parts,
        now,
        &state.public_base_url,
    )
    .await;
    match made {
        Ok(stock_id) => {
            let actor = m.user_id();
            let audited = crate::db::blocking(&state.db, move |conn| {
                repo::audit(
                    conn,
                    "wechat_pay_coupon",
                    mid,
                    actor,
                    &format!("campaign {cid}: WeChat Pay stock {stock_id}"),
                    None,
                    now,
                )
            })
            .await;
            if let Err(e) = audited {
                tracing::warn!(error = %e, "console: the stock was made but not audited");
            }
            done(&back, "wechat_pay_coupon")
        }
        Err(e) => say(actix_web::ResponseError::status_code(&e), e.message()),
    }
}
