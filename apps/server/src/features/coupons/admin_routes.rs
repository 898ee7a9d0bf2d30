//! `GET /api/v1/campaigns/{id}/coupons`, `POST /api/v1/coupons/{code}/void`, `GET /api/v1/redemptions` (JSON pages,
//! or CSV with `Accept: text/csv`). Admin bearer token.

use super::admin::{self, LogFilter, StatusFilter, VoidOutcome};
use crate::db;
use crate::features::coupons::repo::CouponRow;
use crate::features::coupons::routes::{public_view, rfc3339};
use crate::http::auth;
use crate::http::errors::ApiError;
use crate::http::paging::{self, Page};
use crate::startup::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use redemption_core::CouponCode;
use serde::Deserialize;
use serde_json::json;

/// The query string as `T`, or 400 `invalid_query` naming what is wrong.
pub fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", format!("query string: {e}")))
}

/// An RFC 3339 time from a query parameter.
fn time_param(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_time",
                        format!("{field} must be RFC 3339, e.g. 2026-12-01T00:00:00+08:00"),
                    )
                })
        })
        .transpose()
}

fn coupon_item(
    state: &AppState,
    c: &CouponRow,
    k: &crate::features::merchants::repo::CampaignRow,
) -> serde_json::Value {
    let campaign = k.to_domain();
    match c.to_domain() {
        Some(coupon) => {
            let mut v = public_view(state, &coupon, &campaign);
            v["owner_openid"] = json!(c.owner_openid);
            v["redeemed_by"] = json!(c.redeemed_by);
            v["in_wechat_card_bag"] = json!(c.wechat_card_code.is_some());
            v
        }
        None => json!({"code": c.code, "status": "void"}),
    }
}

#[derive(Debug, Deserialize)]
pub struct CouponsQuery {
    status: Option<String>,
    owner_openid: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/campaigns/{id}/coupons?status=&owner_openid=&limit=&cursor=`.
pub async fn list_coupons(
    _admin: auth::AdminAuth,
    req: HttpRequest,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: CouponsQuery = query(&req)?;
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let status = q
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            StatusFilter::parse(s).ok_or_else(|| {
                ApiError::bad_request("invalid_status", "status must be issued, redeemed, void or expired")
            })
        })
        .transpose()?;
    let id = path.into_inner();
    let now = state.clock.now_ms();
    let owner = q.owner_openid.filter(|o| !o.is_empty());
    let found = db::blocking(&state.db, move |conn| {
        admin::campaign_coupons(conn, id, status, owner.as_deref(), page.after, page.fetch(), now)
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
    let Some((campaign, rows)) = found else {
        return Err(ApiError::not_found("no such campaign"));
    };
    Ok(HttpResponse::Ok().json(paging::paged(
        page,
        rows,
        |c| c.id,
        |c| coupon_item(&state, c, &campaign),
    )))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidBody {
    reason: String,
}

/// `POST /api/v1/coupons/{code}/void {"reason"}`: 200 with the coupon (voided now, or already void); 409
/// `coupon_redeemed`; 404.
pub async fn void(
    _admin: auth::AdminAuth,
    path: web::Path<String>,
    body: crate::http::json::ApiJson<VoidBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.into_inner().reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > admin::REASON_MAX {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("reason must be 1 to {} characters", admin::REASON_MAX),
        ));
    }
    let Some(code) = CouponCode::parse_typed(&path) else {
        return Err(ApiError::not_found("no such coupon"));
    };
    let now = state.clock.now_ms();
    let outcome = db::blocking(&state.db, move |conn| admin::void(conn, code.as_str(), &reason, now))
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    match outcome {
        VoidOutcome::Voided(c, k) | VoidOutcome::AlreadyVoid(c, k) => {
            Ok(HttpResponse::Ok().json(coupon_item(&state, &c, &k)))
        }
        VoidOutcome::Redeemed(c, _) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "coupon_redeemed",
            format!(
                "the coupon was redeemed at {}: a redeemed coupon cannot be voided",
                c.redeemed_at.map(rfc3339).unwrap_or_default()
            ),
        )),
        VoidOutcome::NotFound => Err(ApiError::not_found("no such coupon")),
    }
}

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    merchant_id: Option<i64>,
    campaign_id: Option<i64>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// The most rows one CSV export holds (a larger export is narrowed with `since`/`until`).
pub const CSV_MAX_ROWS: i64 = 100_000;

fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().starts_with("text/csv")))
}

/// `GET /api/v1/redemptions?merchant_id=&campaign_id=&since=&until=&limit=&cursor=`: the redemption log, newest
/// first. With `Accept: text/csv`: every matching row (up to [`CSV_MAX_ROWS`]) as CSV.
pub async fn log(
    _admin: auth::AdminAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: LogQuery = query(&req)?;
    let filter = LogFilter {
        merchant_id: q.merchant_id,
        campaign_id: q.campaign_id,
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
    };
    if wants_csv(&req) {
        let rows = db::blocking(&state.db, move |conn| {
            admin::redemption_log(conn, &filter, None, CSV_MAX_ROWS)
        })
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
        let mut body = String::with_capacity(admin::CSV_HEADER.len() + rows.len() * 96);
        body.push_str(admin::CSV_HEADER);
        for r in &rows {
            body.push_str(&admin::csv_line(r));
        }
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header(("Content-Disposition", "attachment; filename=\"redemptions.csv\""))
            .insert_header(("Cache-Control", "no-store"))
            .body(body));
    }
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let rows = db::blocking(&state.db, move |conn| {
        admin::redemption_log(conn, &filter, page.after, page.fetch())
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
    Ok(HttpResponse::Ok().json(paging::paged(
        page,
        rows,
        |r| r.id,
        |r| {
            json!({
                "id": r.id, "redeemed_at": rfc3339(r.at), "channel": r.channel, "coupon_code": r.coupon_code,
                "campaign_id": r.campaign_id, "campaign_title": r.campaign_title, "merchant_id": r.merchant_id,
                "staff": r.staff_id.map(|id| json!({"id": id, "name": r.staff_name})),
            })
        },
    )))
}
