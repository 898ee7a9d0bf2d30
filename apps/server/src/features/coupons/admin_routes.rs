//! `GET /api/v1/campaigns/{id}/coupons`, `POST /api/v1/coupons/{code}/void`, `GET /api/v1/redemptions` (JSON pages,
//! or CSV with `Accept: text/csv`). Admin bearer token.

use super::State;
use super::admin::{self, LogFilter, VoidOutcome};
use super::views::{coupon_item, rfc3339};
use crate::db;
use crate::http::auth;
use crate::http::errors::ApiError;
use crate::http::paging::{self, Page, query};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use redemption_core::CouponCode;
use serde::Deserialize;
use serde_json::json;

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
    state: web::Data<State>,
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
    let outcome = db::blocking(&state.db, move |conn| admin::void(conn, code.as_str(), &reason, now)).await?;
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

use super::admin::CSV_MAX_ROWS;

fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().starts_with("text/csv")))
}

/// `GET /api/v1/redemptions?merchant_id=&campaign_id=&since=&until=&limit=&cursor=`: the redemption log, newest
/// first. With `Accept: text/csv`: every matching row (up to [`CSV_MAX_ROWS`]) as CSV.
pub async fn log(_admin: auth::AdminAuth, req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
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
        .await?;
        // Streamed in slices of rows: a 100,000-row export is never one string in memory.
        const SLICE: usize = 1000;
        let rows = std::sync::Arc::new(rows);
        let slices = (0..rows.len()).step_by(SLICE).map(move |from| {
            let chunk = &rows[from..(from + SLICE).min(rows.len())];
            let mut out = Vec::with_capacity(chunk.len() * 96);
            admin::write_csv(&mut out, chunk).map(|()| web::Bytes::from(out))
        });
        let chunks = std::iter::once(Ok(web::Bytes::from_static(admin::CSV_HEADER.as_bytes()))).chain(slices);
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header(("Content-Disposition", "attachment; filename=\"redemptions.csv\""))
            .insert_header(("Cache-Control", "no-store"))
            .streaming(futures_util::stream::iter(chunks)));
    }
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let rows = db::blocking(&state.db, move |conn| {
        admin::redemption_log(conn, &filter, page.after, page.fetch())
    })
    .await?;
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
