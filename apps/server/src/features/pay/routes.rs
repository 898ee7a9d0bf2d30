//! `POST /api/v1/pay/orders`, `GET /api/v1/pay/orders/{no}`, `POST .../close`, the NATIVE code image, the operators'
//! view of notifies, and WeChat's `POST /wechat/pay/notify`.

use super::State;
use super::gateway::Gateway;
use super::repo::{self, Applied};
use super::service::{self, PayError};
use crate::db;
use crate::http::auth::{AdminAuth, AnySession, SessionKind, bearer};
use crate::http::errors::ApiError;
use crate::http::json::ApiJson;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

/// Verifies a notify against each appid the merchant takes payments for: the first that is not an appid mismatch
/// decides.
fn parse_for_any<T>(
    state: &State,
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

impl From<PayError> for ApiError {
    fn from(e: PayError) -> ApiError {
        match e {
            PayError::NotConfigured(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "pay_not_configured", m),
            PayError::MiniProgramNotConfigured => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "miniprogram_pay_not_configured",
                e.to_string(),
            ),
            PayError::Invalid { code, message } => ApiError::bad_request(code, message),
            PayError::NotFound(m) => ApiError::not_found(m),
            PayError::Conflict {
                code,
                message,
                retry_after,
            } => {
                let e = ApiError::new(StatusCode::CONFLICT, code, message);
                match retry_after {
                    Some(secs) => e.with_retry_after(secs),
                    None => e,
                }
            }
            PayError::TooMany {
                code,
                message,
                retry_after,
            } => ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message).with_retry_after(retry_after),
            PayError::Wechat(e) => pay_error(&e),
            PayError::Db(e) => e.into(),
        }
    }
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

/// `POST /api/v1/pay/orders {"description", "total_fee", "trade_type": "JSAPI" | "NATIVE" | "H5"}` (a logged-in buyer) →
/// `{"out_trade_no", "pay_params"}` (JSAPI: what `wx.requestPayment` takes) or `{"out_trade_no", "code_url",
/// "qr_url"}` (NATIVE). The order is stored before WeChat hears of it, so a notify can never find it missing.
pub async fn create(
    req: HttpRequest,
    AnySession(session): AnySession,
    state: web::Data<State>,
    body: ApiJson<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let ip = crate::http::client::client_ip(&req)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let placed = service::place(
        &state,
        service::OrderRequest {
            description: body.description,
            total_fee: body.total_fee,
            trade_type: body.trade_type,
            campaign_id: body.campaign_id,
        },
        service::Buyer {
            user_id: session.user_id,
            openid: &session.openid,
            // A bearer token on this route is a mini-program session.
            in_miniprogram: bearer(&req).is_some(),
            client_ip: &ip,
        },
    )
    .await?;
    let no = &placed.out_trade_no;
    Ok(
        HttpResponse::Created().json(match (&placed.pay_params, &placed.h5_url) {
            (Some(params), _) => serde_json::json!({"out_trade_no": no, "pay_params": params}),
            (None, Some(h5_url)) => serde_json::json!({"out_trade_no": no, "h5_url": h5_url}),
            (None, None) => serde_json::json!({
                "out_trade_no": no,
                "code_url": placed.code_url,
                "qr_url": format!("{}/api/v1/pay/orders/{no}/qr.png", state.public_base_url),
            }),
        }),
    )
}

/// The order, if the caller is its buyer or the admin.
async fn owned(req: &HttpRequest, state: &State, out_trade_no: &str) -> Result<repo::Order, ApiError> {
    let no = out_trade_no.to_owned();
    let order = db::blocking(&state.db, move |conn| repo::get(conn, &no)).await?;
    // The admin token or the buyer's own session (cookie or mini-program token). A bearer token that is neither
    // counts as a failed authentication; a cookie-only caller is not charged for polling its order.
    state.limits.auth.check(req)?;
    let token = bearer(req);
    let admin = match (&token, state.keys.admin_token.as_ref()) {
        (Some(t), Some(expected)) => wechat_core::constant_time_eq(t.as_bytes(), expected.secret().as_bytes()),
        _ => false,
    };
    let buyer = if admin {
        None
    } else if let Some(token) = &token {
        let found = state
            .sessions
            .live(token, SessionKind::MiniProgram)
            .await?
            .map(|(s, _)| s.user_id);
        if found.is_none() {
            state.limits.auth.failed(req);
        }
        found
    } else {
        crate::http::auth::session(req, &state.keys).await?.map(|s| s.user_id)
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
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let order = owned(&req, &state, &path).await?;
    let expired = order.status == repo::OrderStatus::Created && order.expires_at <= state.clock.now_ms() / 1000;
    let no = order.out_trade_no.clone();
    let refunds = db::blocking(&state.db, move |conn| repo::refunds_of(conn, &no)).await?;
    let no = order.out_trade_no.clone();
    let purchase = db::blocking(&state.db, move |conn| repo::purchase(conn, &no)).await?;
    let coupon_code = purchase.as_ref().and_then(|p| p.coupon_code.clone());
    let refunded: i64 = refunds.iter().filter(|r| r.2 == "succeeded").map(|r| r.1).sum();
    // Refund progress is read off the refunds: fully refunded, a refund under way, or as stored.
    let status = if expired {
        "expired"
    } else if order.status == repo::OrderStatus::Paid && refunded == order.total_fee {
        "refunded"
    } else if order.status == repo::OrderStatus::Paid && refunds.iter().any(|r| r.2 == "requested") {
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
        "paid_at": order.paid_at.map(crate::platform::time::rfc3339_secs).filter(|t| !t.is_empty()),
        "expires_at": crate::platform::time::rfc3339_unix(order.expires_at),
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
    state: web::Data<State>,
    body: ApiJson<RefundBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let refunding = service::refund(
        &state,
        service::RefundRequest {
            out_trade_no: &path,
            refund_fee: body.refund_fee,
            reason: body.reason.as_deref(),
            force: body.force,
        },
    )
    .await?;
    let mut answer = serde_json::json!({
        "out_refund_no": refunding.out_refund_no,
        "refund_fee": body.refund_fee,
        "status": "requested",
        "confirmed": refunding.confirmed,
    });
    if !refunding.confirmed {
        answer["message"] =
            "WeChat Pay's answer was lost or unclear: the refund is kept and asked again with the same \
                             number until WeChat Pay settles it (never twice)"
                .into();
    }
    Ok(HttpResponse::Created().json(answer))
}

/// Logs and counts what a refund notify did; a contradiction is an operator's business.
fn refund_notified(out_refund_no: &str, status: &str, outcome: &repo::RefundNotified) {
    metrics::counter!("wxkit_pay_refund_notifies_total", "outcome" => outcome.as_str()).increment(1);
    match outcome {
        repo::RefundNotified::Settled => tracing::info!(out_refund_no, status, "refund settled"),
        repo::RefundNotified::Duplicate => {}
        repo::RefundNotified::Corrected { was } => tracing::warn!(
            out_refund_no,
            status,
            was = %was,
            "a refund notify contradicted our state: WeChat's wins (audited)"
        ),
        repo::RefundNotified::Unknown => {
            tracing::warn!(out_refund_no, status, "a refund we never asked for: recorded (audited)")
        }
    }
}

/// `POST /wechat/pay/refund-notify`: `req_info` decrypted (AES-256-ECB, key = md5 of the API key), appid/mch_id
/// ours; the refund moves from `requested` once (SUCCESS → succeeded, REFUNDCLOSE → closed, CHANGE → failed).
pub async fn refund_notify(state: web::Data<State>, body: web::Bytes) -> HttpResponse {
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
    let (n, now) = (notify.clone(), state.clock.now_ms());
    match db::blocking(&state.db, move |conn| {
        repo::apply_refund_fact(
            conn,
            &repo::RefundFact {
                out_refund_no: &n.out_refund_no,
                out_trade_no: &n.out_trade_no,
                refund_fee: i64::try_from(n.refund_fee.0).unwrap_or(i64::MAX),
                status,
                refund_id: &n.refund_id,
            },
            now,
        )
    })
    .await
    {
        Ok(outcome) => {
            refund_notified(&notify.out_refund_no, status, &outcome);
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
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    service::gateway(&state)?;
    let order = owned(&req, &state, &path).await?;
    service::close(&state, &order).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"out_trade_no": order.out_trade_no, "status": "closed"})))
}

/// `GET /api/v1/pay/orders/{out_trade_no}/qr.png`: the NATIVE order's code to scan with WeChat.
pub async fn native_qr(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<State>,
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
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items = db::blocking(&state.db, move |conn| {
        repo::notifications(conn, q.outcome.as_deref(), limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": items})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationQuery {
    date: String,
    #[serde(default)]
    refresh: bool,
}

/// `GET /api/v1/pay/reconciliations?date=YYYY-MM-DD[&refresh=true]` (admin): the day's reconciliation — WeChat Pay's
/// trade bill against the ledger — as stored, or made now when there is none (or `refresh`). JSON, or CSV (one line
/// per difference) with `Accept: text/csv`.
pub async fn reconciliation(
    req: HttpRequest,
    _admin: AdminAuth,
    q: web::Query<ReconciliationQuery>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    if super::bills::day_bounds(&q.date).is_none() {
        return Err(ApiError::bad_request(
            "invalid_date",
            "date is a Beijing day, YYYY-MM-DD",
        ));
    }
    let date = q.date.clone();
    let stored = if q.refresh {
        None
    } else {
        db::blocking(&state.db, move |conn| super::bills::stored(conn, &date)).await?
    };
    let report = match stored {
        Some(r) => r,
        None => {
            let payers = state.payers.as_ref().ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "pay_not_configured",
                    "no merchant is configured",
                )
            })?;
            service::reconcile_day(payers, &state.db, &q.date, state.clock.now_ms()).await?
        }
    };
    let csv = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().starts_with("text/csv")));
    if !csv {
        return Ok(HttpResponse::Ok().json(&report));
    }
    let mut out = csv::Writer::from_writer(Vec::new());
    let row = |d: &super::bills::Difference| {
        [
            d.kind.clone(),
            d.out_trade_no.clone(),
            d.out_refund_no.clone().unwrap_or_default(),
            d.ours.clone().unwrap_or_default(),
            d.wechat.clone().unwrap_or_default(),
        ]
    };
    let written = out
        .write_record(["kind", "out_trade_no", "out_refund_no", "ours", "wechat"])
        .and_then(|()| report.differences.iter().try_for_each(|d| out.write_record(row(d))));
    let bytes = written
        .map_err(|e| ApiError::internal(&e))
        .and_then(|()| out.into_inner().map_err(|e| ApiError::internal(&e)))?;
    // A BOM, so that Excel reads the UTF-8 right.
    let mut body = "\u{feff}".as_bytes().to_vec();
    body.extend(bytes);
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"reconciliation-{}.csv\"", report.date),
        ))
        .body(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillQuery {
    date: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// `GET /api/v1/pay/bills?date=YYYY-MM-DD[&type=trade|fundflow]` (admin): the day's bill as WeChat Pay serves it
/// (text; v3 checked against its SHA-1). The fund-flow bill is a v3 call.
pub async fn bill(
    _admin: AdminAuth,
    q: web::Query<BillQuery>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    if super::bills::day_bounds(&q.date).is_none() {
        return Err(ApiError::bad_request(
            "invalid_date",
            "date is a Beijing day, YYYY-MM-DD",
        ));
    }
    let fund_flow = match q.kind.as_deref() {
        None | Some("trade") => false,
        Some("fundflow") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_type",
                format!("type {other:?} is not trade or fundflow"),
            ));
        }
    };
    let payers = state.payers.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "pay_not_configured",
            "no merchant is configured",
        )
    })?;
    let text = payers
        .web
        .raw_bill(&q.date, fund_flow)
        .await
        .map_err(|e| ApiError::from(PayError::Wechat(e)))?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(text))
}

fn reply(xml: String) -> HttpResponse {
    HttpResponse::Ok().content_type("text/xml; charset=utf-8").body(xml)
}

/// `POST /wechat/pay/notify`: WeChat's payment notify. The body is parsed by the hardened codec and its signature
/// verified (constant time); appid and mch_id must be ours and the amount the order's. Applied once in one
/// transaction with its record; answered `SUCCESS` after the commit (also for duplicates, and for mismatches, which
/// are recorded for an operator and would not improve by being resent), `FAIL` for forged or unreadable ones and
/// when the database is down (WeChat resends).
pub async fn notify(state: web::Data<State>, body: web::Bytes) -> HttpResponse {
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
                Applied::RefundedAfterEnd => refund_after_end(&state, &notify.out_trade_no),
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

#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    merchant_id: Option<i64>,
    campaign_id: Option<i64>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/pay/orders?status=&merchant_id=&campaign_id=&since=&until=&limit=&cursor=` (admin): orders newest
/// first; `status` is `created`, `paid` (no refund), `refunded` (a refund succeeded) or `closed`.
pub async fn list(
    _admin: crate::http::auth::AdminAuth,
    req: HttpRequest,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = crate::http::paging::query(&req)?;
    let page = crate::http::paging::Page::parse(q.limit, q.cursor.as_deref())?;
    if let Some(s) = &q.status
        && !repo::ORDER_STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "invalid_status",
            "status must be created, paid, refunded or closed",
        ));
    }
    let time = |field: &str, v: Option<&str>| -> Result<Option<i64>, ApiError> {
        v.filter(|v| !v.is_empty())
            .map(|v| {
                chrono::DateTime::parse_from_rfc3339(v)
                    .map(|t| t.timestamp_millis())
                    .map_err(|_| ApiError::bad_request("invalid_time", format!("{field} must be RFC 3339")))
            })
            .transpose()
    };
    let filter = repo::OrderFilter {
        merchant_id: q.merchant_id,
        campaign_id: q.campaign_id,
        status: q.status.filter(|s| !s.is_empty()),
        since: time("since", q.since.as_deref())?,
        until: time("until", q.until.as_deref())?,
        out_trade_no: None,
    };
    let rows = db::blocking(&state.db, move |conn| {
        repo::orders_page(conn, &filter, page.after, page.fetch())
    })
    .await?;
    Ok(HttpResponse::Ok().json(crate::http::paging::paged(
        page,
        rows,
        |l| l.order.id,
        super::order_json,
    )))
}

/// A payment for a campaign that had ended: its refund (recorded with the payment) is sent now, after the commit;
/// the reconciler sends it if this fails.
fn refund_after_end(state: &State, out_trade_no: &str) {
    tracing::warn!(out_trade_no, "an order was paid after its campaign ended: refunding it");
    metrics::counter!("wxkit_pay_refunds_after_end_total").increment(1);
    kick_refunds(state);
}

/// Sends recorded, unsent refunds in the background (see [`super::ending::send_new_refunds`]).
pub(crate) fn kick_refunds(state: &State) {
    super::ending::kick(
        state.db.clone(),
        state.payers.clone(),
        state.clock.clone(),
        state.public_base_url.clone(),
    );
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

/// `COUPON.SEND` (a 商家券 coupon reached a card bag), verified: applied once, 204 after the commit; 500 to have it
/// resent when the database failed.
async fn coupon_send(state: &State, c: wechat_pay::v3::marketing::busifavor::CouponSent, now: i64) -> HttpResponse {
    let code = c.coupon_code.clone();
    match db::blocking(&state.db, move |conn| {
        crate::features::coupons::busifavor::apply_received(
            conn,
            &c.coupon_code,
            &c.stock_id,
            &c.openid,
            "callback",
            now,
        )
    })
    .await
    {
        Ok(outcome) => {
            use crate::features::coupons::busifavor::Received;
            let label = match outcome {
                Received::Added => "added",
                Received::Already => "duplicate",
                Received::Refused(_) => "refused",
            };
            metrics::counter!("wxkit_card_bag_arrivals_total", "via" => "callback", "outcome" => label).increment(1);
            match outcome {
                Received::Added => {
                    tracing::info!(coupon_tail = %crate::features::coupons::busifavor::tail(&code), "coupon added to a WeChat card bag (商家券)")
                }
                Received::Already => {}
                Received::Refused(why) => tracing::warn!(
                    coupon_tail = %crate::features::coupons::busifavor::tail(&code),
                    why,
                    "COUPON.SEND for a coupon that cannot be used: refused and audited"
                ),
            }
            HttpResponse::NoContent().finish()
        }
        Err(e) => {
            tracing::error!(error = %e, "could not apply COUPON.SEND; WeChat will resend it");
            v3_fail(StatusCode::INTERNAL_SERVER_ERROR, "try again")
        }
    }
}

/// `POST /wechat/pay/v3/notify`: WeChat Pay v3's notifies, payments and refunds. The signature is checked against
/// the platform certificates and public keys held (a new serial brings one certificate download), the timestamp must
/// be within 5 minutes, the resource decrypts with the APIv3 key, and mchid and appid must be ours. Applied once
/// through the same transactions as v2's; answered 204 after the commit (also for duplicates and for mismatches,
/// which resending would not improve). Forged, stale or undecryptable: 401 `{"code": "FAIL"}`, nothing applied.
/// Database down: 500, and WeChat resends.
pub async fn notify_v3(req: HttpRequest, state: web::Data<State>, body: web::Bytes) -> HttpResponse {
    use wechat_pay::v3::{Event, RefundState};
    // The payments' v3 client, or (sandbox on v2 payments) the 商家券 one: COUPON.SEND comes here too.
    let Some(client) = state
        .pay
        .as_ref()
        .and_then(Gateway::v3)
        .or(state.busifavor.as_ref().map(|b| &b.client))
    else {
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
                        Applied::RefundedAfterEnd => refund_after_end(&state, &t.out_trade_no),
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
            let fact = r.clone();
            match db::blocking(&state.db, move |conn| {
                repo::apply_refund_fact(
                    conn,
                    &repo::RefundFact {
                        out_refund_no: &fact.out_refund_no,
                        out_trade_no: fact.out_trade_no.as_deref().unwrap_or_default(),
                        refund_fee: i64::try_from(fact.amount.refund).unwrap_or(i64::MAX),
                        status,
                        refund_id: &fact.refund_id,
                    },
                    now,
                )
            })
            .await
            {
                Ok(outcome) => {
                    refund_notified(&r.out_refund_no, status, &outcome);
                    HttpResponse::NoContent().finish()
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not settle a v3 refund; WeChat will resend");
                    v3_fail(StatusCode::INTERNAL_SERVER_ERROR, "try again")
                }
            }
        }
        Event::CouponSend(c) => coupon_send(&state, c, now).await,
        _ => {
            tracing::info!(event_type = %notify.event_type, "v3 notify acknowledged, nothing to do");
            HttpResponse::NoContent().finish()
        }
    }
}
