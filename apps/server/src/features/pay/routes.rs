//! `POST /api/v1/pay/orders`, `GET /api/v1/pay/orders/{no}`, `POST .../close`, the NATIVE code image, the operators'
//! view of notifies, and WeChat's `POST /wechat/pay/notify`.

use super::gateway::{Gateway, NewPayment};
use super::repo::{self, Applied, NewOrder};
use crate::db;
use crate::http::auth::{AdminAuth, AnySession, bearer};
use crate::http::errors::ApiError;
use crate::http::json::ApiJson;
use crate::startup::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

/// The API of this capability (under `/api/v1`).
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/pay/orders").route(web::post().to(create)))
        .service(web::resource("/pay/orders/{out_trade_no}").route(web::get().to(status)))
        .service(web::resource("/pay/orders/{out_trade_no}/close").route(web::post().to(close)))
        .service(web::resource("/pay/orders/{out_trade_no}/qr.png").route(web::get().to(native_qr)))
        .service(web::resource("/pay/orders/{out_trade_no}/refunds").route(web::post().to(refund)))
        .service(web::resource("/admin/pay/notifications").route(web::get().to(notifications)));
}

/// The pages (WeChat callbacks) of this capability.
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/wechat/pay/notify").route(web::post().to(notify)))
        .service(web::resource("/wechat/pay/refund-notify").route(web::post().to(refund_notify)))
        .service(web::resource("/wechat/pay/v3/notify").route(web::post().to(notify_v3)));
}

fn client(state: &AppState) -> Result<&Gateway, ApiError> {
    state.pay.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "pay_not_configured",
            "WeChat Pay is not configured: set pay.mch_id and pay.key",
        )
    })
}

/// The client for the appid the order was placed with.
fn payer<'a>(state: &'a AppState, order: &repo::Order) -> Result<&'a Gateway, ApiError> {
    state
        .payers
        .as_ref()
        .and_then(|p| p.for_appid(order.appid.as_deref()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "pay_not_configured",
                format!(
                    "WeChat Pay is not configured for appid {}",
                    order.appid.as_deref().unwrap_or("(the official account's)")
                ),
            )
        })
}

/// Verifies a notify against each appid the merchant takes payments for: the first that is not an appid mismatch
/// decides.
fn parse_for_any<T>(
    state: &AppState,
    parse: impl Fn(&wechat_pay::Merchant) -> Result<T, wechat_pay::Error>,
) -> Option<Result<T, wechat_pay::Error>> {
    let payers = state.payers.as_ref()?;
    let mut last = None;
    for client in payers.all().filter_map(Gateway::v2) {
        match parse(client.merchant()) {
            Err(wechat_pay::Error::MerchantMismatch { field: "appid" }) => {
                last = Some(Err(wechat_pay::Error::MerchantMismatch { field: "appid" }));
            }
            other => return Some(other),
        }
    }
    last
}

fn pay_error(e: &wechat_pay::Error) -> ApiError {
    match e.err_code() {
        // A refusal (ORDERPAID, NOT_ENOUGH, PARAM_ERROR...) will not change by asking again; SYSTEM_ERROR and the
        // like will, with the same number.
        Some(code) if !e.is_retryable() => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "wechat_pay_refused",
            format!("WeChat Pay refused the order: {code}"),
        ),
        _ => pay_unavailable(e),
    }
}

fn pay_unavailable(e: &wechat_pay::Error) -> ApiError {
    tracing::warn!(error = %e, "WeChat Pay call failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "wechat_unavailable",
        "WeChat Pay did not answer properly: try again in a few seconds",
    )
    .with_retry_after(5)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    description: Option<String>,
    total_fee: Option<i64>,
    trade_type: String,
    campaign_id: Option<i64>,
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn random_out_trade_no() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    wechat_core::push::hex_lower(&b)
}

/// `POST /api/v1/pay/orders {"description", "total_fee", "trade_type": "JSAPI" | "NATIVE"}` (a logged-in buyer) →
/// `{"out_trade_no", "pay_params"}` (JSAPI: what `wx.requestPayment` takes) or `{"out_trade_no", "code_url",
/// "qr_url"}` (NATIVE). The order is stored before WeChat hears of it, so a notify can never find it missing.
pub async fn create(
    req: HttpRequest,
    AnySession(session): AnySession,
    state: web::Data<AppState>,
    body: ApiJson<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let mut pay = client(&state)?;
    // The appid the order is placed with: the official account's (None), or the mini program's for a mini-program
    // buyer paying inside it.
    let mut appid: Option<String> = None;
    let body = body.into_inner();
    // A coupon's order takes its description and price from the campaign; a given total_fee must agree (the page
    // showed a price: if it changed since, the buyer should see the new one before paying).
    let (description, total_fee) = match body.campaign_id {
        Some(id) => {
            let campaign = db::blocking(&state.db, move |conn| {
                crate::features::merchants::repo::campaign(conn, id)
            })
            .await
            .map_err(|e| ApiError::unavailable(&e))?
            .ok_or_else(|| ApiError::not_found("no such campaign"))?;
            let Some(price) = campaign.price_fen else {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "not_for_sale",
                    "this campaign's coupons are not sold",
                ));
            };
            if body.total_fee.is_some_and(|f| f != price) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "price_changed",
                    format!("the price is now {price} fen: show it to the buyer and order again"),
                ));
            }
            let description = body.description.unwrap_or(campaign.title);
            (truncate(description.trim(), 128).to_owned(), price)
        }
        None => (
            body.description.as_deref().unwrap_or_default().trim().to_owned(),
            body.total_fee.ok_or_else(|| {
                ApiError::bad_request("missing_field", "total_fee (fen) is required without campaign_id")
            })?,
        ),
    };
    if description.is_empty() || description.len() > 128 {
        return Err(ApiError::bad_request(
            "invalid_field",
            "description must be 1 to 128 bytes",
        ));
    }
    if !(1..=100_000_000).contains(&total_fee) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "total_fee is in fen: 1 to 100000000",
        ));
    }
    let out_trade_no = random_out_trade_no();
    let openid = match body.trade_type.as_str() {
        "JSAPI" => {
            if bearer(&req).is_some() {
                // A mini-program token: its openid belongs to the mini program's appid, so the order is placed
                // with that appid (wx.requestPayment inside the mini program takes the same pay_params).
                let Some(mp) = state.payers.as_ref().and_then(|p| p.miniprogram.as_ref()) else {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "miniprogram_pay_not_configured",
                        "paying inside the mini program needs miniprogram.app_id with the merchant",
                    ));
                };
                pay = mp;
                appid = Some(mp.app_id().as_str().to_owned());
            }
            Some(session.openid.clone())
        }
        "NATIVE" => None,
        other => {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("trade_type {other:?} is not JSAPI or NATIVE"),
            ));
        }
    };
    let now = state.clock.now_ms();
    let expires_at = now / 1000 + i64::from(state.settings.pay.order_ttl_secs);
    let ip = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let order = NewPayment {
        description: &description,
        out_trade_no: &out_trade_no,
        total_fee: u64::try_from(total_fee).unwrap_or(1),
        client_ip: &ip,
        openid: openid.as_deref(),
        expires_at,
        public_base_url: &state.public_base_url,
    };
    pay.check(&order)
        .map_err(|e| ApiError::bad_request("invalid_field", e))?;
    let placed = {
        let (no, desc, tt, oid, buyer) = (
            out_trade_no.clone(),
            description.clone(),
            body.trade_type.clone(),
            openid.clone(),
            session.openid.clone(),
        );
        let (user_id, fee, campaign_id, appid) = (session.user_id, total_fee, body.campaign_id, appid.clone());
        db::blocking(&state.db, move |conn| {
            Ok(repo::place(
                conn,
                &NewOrder {
                    out_trade_no: &no,
                    user_id: Some(user_id),
                    openid: oid.as_deref(),
                    description: &desc,
                    total_fee: fee,
                    trade_type: &tt,
                    expires_at,
                    now,
                    campaign_id,
                    buyer_openid: campaign_id.map(|_| buyer.as_str()),
                    appid: appid.as_deref(),
                },
            ))
        })
        .await
        .map_err(|e| ApiError::unavailable(&e))?
    };
    placed.map_err(|e| match e {
        repo::PlaceRefused::NotFound => ApiError::not_found("no such campaign"),
        repo::PlaceRefused::NotForSale => ApiError::new(
            StatusCode::CONFLICT,
            "not_for_sale",
            "this campaign's coupons are not sold",
        ),
        repo::PlaceRefused::PriceChanged(price) => ApiError::new(
            StatusCode::CONFLICT,
            "price_changed",
            format!("the price is now {price} fen: show it to the buyer and order again"),
        ),
        repo::PlaceRefused::Rule(rule) => {
            let code = match rule {
                redemption_core::IssueError::SoldOut => "sold_out",
                redemption_core::IssueError::PerUserLimit => "limit_reached",
                redemption_core::IssueError::Ended => "campaign_ended",
            };
            ApiError::new(StatusCode::CONFLICT, code, rule.to_string())
        }
        repo::PlaceRefused::Db(e) => ApiError::unavailable(&e),
    })?;
    let prepay = match pay.place(&order).await {
        Ok(p) => p,
        Err(e) => {
            // WeChat has no payable order: ours is closed so it can never be paid by a late surprise.
            let no = out_trade_no.clone();
            let _ = db::blocking(&state.db, move |conn| repo::close(conn, &no, now)).await;
            return Err(pay_error(&e));
        }
    };
    let (no, pid, code_url) = (out_trade_no.clone(), prepay.prepay_id.clone(), prepay.code_url.clone());
    db::blocking(&state.db, move |conn| {
        repo::set_prepay(conn, &no, pid.as_deref(), code_url.as_deref(), now)
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
    metrics::counter!("wxkit_pay_orders_total", "trade_type" => body.trade_type.clone()).increment(1);
    Ok(HttpResponse::Created().json(match body.trade_type.as_str() {
        "JSAPI" => serde_json::json!({
            "out_trade_no": out_trade_no,
            "pay_params": pay.pay_params(prepay.prepay_id.as_deref().unwrap_or_default(), now / 1000),
        }),
        _ => serde_json::json!({
            "out_trade_no": out_trade_no,
            "code_url": prepay.code_url,
            "qr_url": format!("{}/api/v1/pay/orders/{out_trade_no}/qr.png", state.public_base_url),
        }),
    }))
}

/// The order, if the caller is its buyer or the admin.
async fn owned(req: &HttpRequest, state: &AppState, out_trade_no: &str) -> Result<repo::Order, ApiError> {
    let no = out_trade_no.to_owned();
    let order = db::blocking(&state.db, move |conn| repo::get(conn, &no))
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    // The admin token or the buyer's own session (cookie or mini-program token). A bearer token that is neither
    // counts as a failed authentication; a cookie-only caller is not charged for polling its order.
    state.auth_limiter.check(req)?;
    let token = bearer(req);
    let admin = match (&token, state.admin_token.as_ref()) {
        (Some(t), Some(expected)) => wechat_core::constant_time_eq(t.as_bytes(), expected.secret().as_bytes()),
        _ => false,
    };
    let buyer = if admin {
        None
    } else if let Some(token) = &token {
        let found =
            crate::features::auth::service::live_session(state, token, crate::features::auth::service::MINIPROGRAM)
                .await?
                .map(|(s, _)| s.user_id);
        if found.is_none() {
            state.auth_limiter.failed(req);
        }
        found
    } else {
        crate::http::auth::session(req, state).await?.map(|s| s.user_id)
    };
    match order {
        Some(o) if admin || (buyer.is_some() && o.user_id == buyer) => Ok(o),
        // Someone else's order is as good as none.
        _ => Err(ApiError::not_found("no such order of yours")),
    }
}

/// `GET /api/v1/pay/orders/{out_trade_no}` (its buyer, or the admin).
pub async fn status(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let order = owned(&req, &state, &path).await?;
    let expired = order.status == "created" && order.expires_at <= state.clock.now_ms() / 1000;
    let no = order.out_trade_no.clone();
    let refunds = db::blocking(&state.db, move |conn| repo::refunds_of(conn, &no))
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    let no = order.out_trade_no.clone();
    let purchase = db::blocking(&state.db, move |conn| repo::purchase(conn, &no))
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    let coupon_code = purchase.as_ref().and_then(|p| p.coupon_code.clone());
    let refunded: i64 = refunds.iter().filter(|r| r.2 == "succeeded").map(|r| r.1).sum();
    // Refund progress is read off the refunds: fully refunded, a refund under way, or as stored.
    let status = if expired {
        "expired"
    } else if order.status == "paid" && refunded == order.total_fee {
        "refunded"
    } else if order.status == "paid" && refunds.iter().any(|r| r.2 == "requested") {
        "refunding"
    } else {
        order.status.as_str()
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "out_trade_no": order.out_trade_no,
        "status": status,
        "description": order.description,
        "total_fee": order.total_fee,
        "refunded_fee": refunded,
        "refunds": refunds.iter().map(|(no, fee, st)| serde_json::json!({"out_refund_no": no, "refund_fee": fee, "status": st})).collect::<Vec<_>>(),
        "trade_type": order.trade_type,
        "transaction_id": order.transaction_id,
        "paid_at": order.paid_at.and_then(chrono::DateTime::from_timestamp_millis).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "expires_at": chrono::DateTime::from_timestamp(order.expires_at, 0).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "campaign_id": purchase.as_ref().map(|p| p.campaign_id),
        "coupon_code": coupon_code,
        "coupon_url": coupon_code.as_ref().map(|c| format!("/c/{c}")),
    })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    refund_fee: i64,
    reason: Option<String>,
    #[serde(default)]
    force: bool,
}

/// `POST /api/v1/pay/orders/{out_trade_no}/refunds {"refund_fee", "reason"?}` (admin): records the refund (never more
/// than was paid in total, however many refunds run at once), then asks WeChat over the certificate transport.
/// 201 `{out_refund_no, refund_fee, status: "requested"}`; its notify settles it.
pub async fn refund(
    _admin: AdminAuth,
    path: web::Path<String>,
    state: web::Data<AppState>,
    body: ApiJson<RefundBody>,
) -> Result<HttpResponse, ApiError> {
    let pay = client(&state)?;
    let body = body.into_inner();
    if body.refund_fee < 1 {
        return Err(ApiError::bad_request(
            "invalid_field",
            "refund_fee is in fen, at least 1",
        ));
    }
    if body.reason.as_ref().is_some_and(|r| r.len() > 80) {
        return Err(ApiError::bad_request("invalid_field", "reason is at most 80 bytes"));
    }
    let out_trade_no = path.into_inner();
    let out_refund_no = format!("r{}", &random_out_trade_no()[..31]);
    let now = state.clock.now_ms();
    let (no, rno, fee, reason, force) = (
        out_trade_no.clone(),
        out_refund_no.clone(),
        body.refund_fee,
        body.reason.clone(),
        body.force,
    );
    let recorded = db::blocking(&state.db, move |conn| {
        Ok(repo::request_refund(
            conn,
            &no,
            &rno,
            fee,
            reason.as_deref(),
            force,
            now,
        ))
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
    let (total_fee, appid) = match recorded {
        Ok(order) => (order.total_fee, order.appid),
        Err(repo::RefundRefused::NotFound) => return Err(ApiError::not_found("no such order")),
        Err(repo::RefundRefused::NotPaid(status)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_paid",
                format!("the order is {status}"),
            ));
        }
        Err(repo::RefundRefused::TooMuch(taken, paid)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "over_refund",
                format!(
                    "{taken} of {paid} fen are refunded or being refunded: at most {} more",
                    paid - taken
                ),
            ));
        }
        Err(repo::RefundRefused::Redeemed(code)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "coupon_redeemed",
                format!("the bought coupon {code} was redeemed: refund it anyway with \"force\": true"),
            ));
        }
        Err(repo::RefundRefused::Db(e)) => return Err(ApiError::unavailable(&e)),
    };
    // Refunded through the appid the order was placed with.
    let pay = state
        .payers
        .as_ref()
        .and_then(|p| p.for_appid(appid.as_deref()))
        .unwrap_or(pay);
    let outcome = pay
        .refund(
            &out_trade_no,
            &out_refund_no,
            u64::try_from(total_fee).unwrap_or(0),
            u64::try_from(body.refund_fee).unwrap_or(0),
            body.reason.as_deref(),
            &state.public_base_url,
        )
        .await;
    match outcome {
        Ok(refund_id) => {
            let (rno, id) = (out_refund_no.clone(), refund_id);
            // Stays `requested` until its notify; only the refund id is kept now.
            let _ = db::blocking(&state.db, move |conn| {
                use crate::db::schema::pay_refunds;
                use diesel::prelude::*;
                diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(&rno)))
                    .set(pay_refunds::refund_id.eq(&id))
                    .execute(conn)?;
                Ok(())
            })
            .await;
            Ok(HttpResponse::Created().json(serde_json::json!({
                "out_refund_no": out_refund_no,
                "refund_fee": body.refund_fee,
                "status": "requested",
            })))
        }
        Err(e) => {
            let rno = out_refund_no.clone();
            let _ = db::blocking(&state.db, move |conn| {
                repo::settle_refund(conn, &rno, "failed", None, now)
            })
            .await;
            Err(pay_error(&e))
        }
    }
}

/// `POST /wechat/pay/refund-notify`: `req_info` decrypted (AES-256-ECB, key = md5 of the API key), appid/mch_id
/// ours; the refund moves from `requested` once (SUCCESS → succeeded, REFUNDCLOSE → closed, CHANGE → failed).
pub async fn refund_notify(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let Some(parsed) = parse_for_any(&state, |m| wechat_pay::notify::parse_refund_notify(m, &body)) else {
        return reply(wechat_pay::notify::fail_reply("pay not configured"));
    };
    let notify = match parsed {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "refused a refund notify");
            return reply(wechat_pay::notify::fail_reply("invalid notify"));
        }
    };
    let status = match notify.refund_status.as_str() {
        "SUCCESS" => "succeeded",
        "REFUNDCLOSE" => "closed",
        _ => "failed",
    };
    let (rno, id, now) = (
        notify.out_refund_no.clone(),
        notify.refund_id.clone(),
        state.clock.now_ms(),
    );
    match db::blocking(&state.db, move |conn| {
        repo::settle_refund(conn, &rno, status, Some(&id), now)
    })
    .await
    {
        Ok(moved) => {
            if moved {
                tracing::info!(out_refund_no = %notify.out_refund_no, status, "refund settled");
            }
            reply(wechat_pay::notify::SUCCESS_REPLY.to_owned())
        }
        Err(e) => {
            tracing::error!(error = %e, "could not settle a refund; WeChat will resend");
            reply(wechat_pay::notify::fail_reply("try again"))
        }
    }
}

/// `POST /api/v1/pay/orders/{out_trade_no}/close` (its buyer, or the admin): closed at WeChat, then here.
pub async fn close(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    client(&state)?;
    let order = owned(&req, &state, &path).await?;
    let pay = payer(&state, &order)?;
    if order.status != "created" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_open",
            format!("the order is {}", order.status),
        ));
    }
    // WeChat closes an order only 5 minutes after it was placed; closing ours alone would let a payment through.
    let age_ms = state.clock.now_ms() - order.created_at;
    if age_ms < 300_000 {
        let wait = u64::try_from((300_000 - age_ms) / 1000 + 1).unwrap_or(300);
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_soon",
            format!("WeChat closes an order only 5 minutes after it was placed: try again in {wait} s"),
        )
        .with_retry_after(wait));
    }
    pay.close(&order.out_trade_no).await.map_err(|e| pay_error(&e))?;
    let (no, now) = (order.out_trade_no.clone(), state.clock.now_ms());
    let closed = db::blocking(&state.db, move |conn| repo::close(conn, &no, now))
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    if !closed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_open",
            "the order was paid meanwhile",
        ));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"out_trade_no": order.out_trade_no, "status": "closed"})))
}

/// `GET /api/v1/pay/orders/{out_trade_no}/qr.png`: the NATIVE order's code to scan with WeChat.
pub async fn native_qr(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let order = owned(&req, &state, &path).await?;
    let Some(code_url) = order.code_url else {
        return Err(ApiError::not_found("this order has no code to scan"));
    };
    let png =
        qr_render::render_png(&code_url, &qr_render::RenderOptions::default()).map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header(("Cache-Control", "private, no-store"))
        .body(png))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsQuery {
    outcome: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/admin/pay/notifications?outcome=&limit=` (admin): every notify received and what it did — the
/// operator's list of amount mismatches and notifies for unknown or closed orders.
pub async fn notifications(
    _admin: AdminAuth,
    q: web::Query<NotificationsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items = db::blocking(&state.db, move |conn| {
        repo::notifications(conn, q.outcome.as_deref(), limit)
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": items})))
}

fn reply(xml: String) -> HttpResponse {
    HttpResponse::Ok().content_type("text/xml; charset=utf-8").body(xml)
}

/// `POST /wechat/pay/notify`: WeChat's payment notify. The body is parsed by the hardened codec and its signature
/// verified (constant time); appid and mch_id must be ours and the amount the order's. Applied once in one
/// transaction with its record; answered `SUCCESS` after the commit (also for duplicates, and for mismatches, which
/// are recorded for an operator and would not improve by being resent), `FAIL` for forged or unreadable ones and
/// when the database is down (WeChat resends).
pub async fn notify(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let Some(parsed) = parse_for_any(&state, |m| wechat_pay::notify::parse_payment_notify(m, &body)) else {
        return reply(wechat_pay::notify::fail_reply("pay not configured"));
    };
    let notify = match parsed {
        Ok(n) => n,
        Err(wechat_pay::Error::MerchantMismatch { field }) => {
            // Signed with our key but for another appid or merchant: not paid; recorded for an operator, and
            // acknowledged (resending cannot make it ours).
            let Some(pay) = state.pay.as_ref().and_then(Gateway::v2) else {
                return reply(wechat_pay::notify::fail_reply("pay not configured"));
            };
            let Ok(n) = wechat_pay::notify::verify_payment_notify(&pay.merchant().key, &body) else {
                return reply(wechat_pay::notify::fail_reply("invalid notify"));
            };
            tracing::error!(
                out_trade_no = %n.out_trade_no,
                transaction_id = %n.transaction_id,
                field,
                "a signed payment notify names another appid or merchant: not applied, recorded for an operator"
            );
            metrics::counter!("wxkit_pay_notifies_total", "outcome" => "merchant_mismatch").increment(1);
            let (no, txn, fee, now) = (
                n.out_trade_no.clone(),
                n.transaction_id.clone(),
                i64::try_from(n.total_fee.0).unwrap_or(i64::MAX),
                state.clock.now_ms(),
            );
            return match db::blocking(&state.db, move |conn| repo::record_mismatch(conn, &no, &txn, fee, now)).await {
                Ok(()) => reply(wechat_pay::notify::SUCCESS_REPLY.to_owned()),
                Err(_) => reply(wechat_pay::notify::fail_reply("try again")),
            };
        }
        Err(e) => {
            tracing::warn!(error = %e, "refused a payment notify");
            metrics::counter!("wxkit_pay_notifies_total", "outcome" => "refused").increment(1);
            return reply(wechat_pay::notify::fail_reply("invalid notify"));
        }
    };
    if !notify.paid {
        // The user did not pay: nothing to apply.
        return reply(wechat_pay::notify::SUCCESS_REPLY.to_owned());
    }
    let (no, txn, fee, now) = (
        notify.out_trade_no.clone(),
        notify.transaction_id.clone(),
        i64::try_from(notify.total_fee.0).unwrap_or(i64::MAX),
        state.clock.now_ms(),
    );
    match db::blocking(&state.db, move |conn| repo::apply_payment(conn, &no, &txn, fee, now)).await {
        Ok(outcome) => {
            metrics::counter!("wxkit_pay_notifies_total", "outcome" => outcome.as_str()).increment(1);
            match outcome {
                Applied::Applied => tracing::info!(out_trade_no = %notify.out_trade_no, "order paid"),
                Applied::Duplicate => {}
                other => tracing::error!(
                    out_trade_no = %notify.out_trade_no,
                    transaction_id = %notify.transaction_id,
                    outcome = other.as_str(),
                    "a payment notify was not applied: recorded for an operator"
                ),
            }
            reply(wechat_pay::notify::SUCCESS_REPLY.to_owned())
        }
        Err(e) => {
            tracing::error!(error = %e, "could not apply a payment notify; WeChat will resend it");
            reply(wechat_pay::notify::fail_reply("try again"))
        }
    }
}

/// The `http` 1 headers of an actix request (wechat-pay takes the `http` crate's types).
fn http_headers(req: &HttpRequest) -> ::http::HeaderMap {
    let mut h = ::http::HeaderMap::new();
    for (k, v) in req.headers() {
        if let (Ok(k), Ok(v)) = (
            ::http::HeaderName::from_bytes(k.as_str().as_bytes()),
            ::http::HeaderValue::from_bytes(v.as_bytes()),
        ) {
            h.append(k, v);
        }
    }
    h
}

fn v3_fail(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({"code": "FAIL", "message": message}))
}

/// `POST /wechat/pay/v3/notify`: WeChat Pay v3's notifies, payments and refunds. The signature is checked against
/// the platform certificates and public keys held (a new serial brings one certificate download), the timestamp must
/// be within 5 minutes, the resource decrypts with the APIv3 key, and mchid and appid must be ours. Applied once
/// through the same transactions as v2's; answered 204 after the commit (also for duplicates and for mismatches,
/// which resending would not improve). Forged, stale or undecryptable: 401 `{"code": "FAIL"}`, nothing applied.
/// Database down: 500, and WeChat resends.
pub async fn notify_v3(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    use wechat_pay::v3::{Event, RefundState};
    let Some(client) = state.pay.as_ref().and_then(Gateway::v3) else {
        return v3_fail(StatusCode::SERVICE_UNAVAILABLE, "WeChat Pay v3 is not configured here");
    };
    let notify = match client.verify_notify(&http_headers(&req), &body).await {
        Ok(n) => n,
        Err(wechat_pay::Error::MerchantMismatch { field }) => {
            tracing::error!(field, "a genuine v3 notify names another merchant: not applied");
            metrics::counter!("wxkit_pay_notifies_total", "outcome" => "merchant_mismatch").increment(1);
            return HttpResponse::NoContent().finish();
        }
        Err(e) => {
            tracing::warn!(error = %e, "refused a v3 notify");
            metrics::counter!("wxkit_pay_notifies_total", "outcome" => "refused").increment(1);
            return v3_fail(StatusCode::UNAUTHORIZED, "invalid notify");
        }
    };
    let now = state.clock.now_ms();
    match notify.event {
        Event::TransactionSuccess(t) => {
            let txn = t.transaction_id.clone().unwrap_or_default();
            let fee = t
                .amount
                .as_ref()
                .map_or(i64::MAX, |a| i64::try_from(a.total).unwrap_or(i64::MAX));
            let ours = state
                .payers
                .as_ref()
                .is_some_and(|p| p.for_appid(Some(&t.appid)).is_some());
            let no = t.out_trade_no.clone();
            if !ours {
                tracing::error!(out_trade_no = %no, appid = %t.appid, "a v3 payment notify names another appid: recorded for an operator");
                metrics::counter!("wxkit_pay_notifies_total", "outcome" => "merchant_mismatch").increment(1);
                return match db::blocking(&state.db, move |conn| repo::record_mismatch(conn, &no, &txn, fee, now)).await
                {
                    Ok(()) => HttpResponse::NoContent().finish(),
                    Err(_) => v3_fail(StatusCode::INTERNAL_SERVER_ERROR, "try again"),
                };
            }
            if t.trade_state != wechat_pay::TradeState::Success {
                return HttpResponse::NoContent().finish();
            }
            match db::blocking(&state.db, move |conn| repo::apply_payment(conn, &no, &txn, fee, now)).await {
                Ok(outcome) => {
                    metrics::counter!("wxkit_pay_notifies_total", "outcome" => outcome.as_str()).increment(1);
                    match outcome {
                        Applied::Applied => tracing::info!(out_trade_no = %t.out_trade_no, "order paid (v3)"),
                        Applied::Duplicate => {}
                        other => tracing::error!(
                            out_trade_no = %t.out_trade_no,
                            outcome = other.as_str(),
                            "a v3 payment notify was not applied: recorded for an operator"
                        ),
                    }
                    HttpResponse::NoContent().finish()
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not apply a v3 payment notify; WeChat will resend it");
                    v3_fail(StatusCode::INTERNAL_SERVER_ERROR, "try again")
                }
            }
        }
        Event::Refund(r) => {
            let status = match r.status {
                RefundState::Success => "succeeded",
                RefundState::Closed => "closed",
                RefundState::Abnormal => "failed",
                _ => return HttpResponse::NoContent().finish(),
            };
            let (rno, id) = (r.out_refund_no.clone(), r.refund_id.clone());
            match db::blocking(&state.db, move |conn| {
                repo::settle_refund(conn, &rno, status, Some(&id), now)
            })
            .await
            {
                Ok(moved) => {
                    if moved {
                        tracing::info!(out_refund_no = %r.out_refund_no, status, "refund settled (v3)");
                    }
                    HttpResponse::NoContent().finish()
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not settle a v3 refund; WeChat will resend");
                    v3_fail(StatusCode::INTERNAL_SERVER_ERROR, "try again")
                }
            }
        }
        _ => {
            tracing::info!(event_type = %notify.event_type, "v3 notify acknowledged, nothing to do");
            HttpResponse::NoContent().finish()
        }
    }
}
