//! The admin API (bearer admin token): merchants, staff, campaigns, issuing coupons.

use super::State;
use super::repo;
use super::service::{self, AdminError};
use super::views::{CampaignRequest, campaign_json, campaign_json_at, merchant_json, staff_json};
use crate::db;
use crate::features::coupons::admin::{self as coupons_admin, StatusFilter};
use crate::features::coupons::views::{coupon_item, public_view};
use crate::http::auth;
use crate::http::errors::ApiError;
use crate::http::paging::{self, Page, query};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

fn db_error(e: db::DbError) -> ApiError {
    ApiError::from(e)
}

/// The HTTP form of a refused admin use case.
pub fn admin_error(e: AdminError) -> ApiError {
    match e {
        AdminError::Rejected { code, message } => ApiError::bad_request(code, message),
        AdminError::Invalid { field, message } => ApiError::bad_request("invalid_field", format!("{field} {message}")),
        AdminError::NotFound(what) => ApiError::not_found(what),
        AdminError::Conflict { code, message } => ApiError::new(StatusCode::CONFLICT, code, message),
        AdminError::Db(e) => ApiError::from(e),
    }
}

/// Runs an admin use case on a pooled connection.
async fn run<T: Send + 'static>(
    state: &State,
    work: impl FnOnce(&mut db::DbConnection) -> Result<T, AdminError> + Send + 'static,
) -> Result<T, ApiError> {
    db::blocking(&state.db, move |conn| Ok(work(conn)))
        .await
        .map_err(db_error)?
        .map_err(admin_error)
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    merchant_id: Option<i64>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/merchants?limit=&cursor=`.
pub async fn list_merchants(
    _admin: auth::AdminAuth,
    req: HttpRequest,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = query(&req)?;
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let rows = db::blocking(&state.db, move |conn| {
        repo::merchants_page(conn, page.after, page.fetch())
    })
    .await?;
    Ok(HttpResponse::Ok().json(paging::paged(page, rows, |m| m.id, merchant_json)))
}

/// `GET /api/v1/merchants/{id}`.
pub async fn get_merchant(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let m = db::blocking(&state.db, move |conn| repo::merchant(conn, id))
        .await?
        .ok_or_else(|| ApiError::not_found("no such merchant"))?;
    Ok(HttpResponse::Ok().json(merchant_json(&m)))
}

/// `GET /api/v1/staff?merchant_id=&limit=&cursor=`.
pub async fn list_staff(
    _admin: auth::AdminAuth,
    req: HttpRequest,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = query(&req)?;
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let merchant = q.merchant_id;
    let rows = db::blocking(&state.db, move |conn| {
        repo::staff_page(conn, merchant, page.after, page.fetch())
    })
    .await?;
    Ok(HttpResponse::Ok().json(paging::paged(page, rows, |s| s.id, staff_json)))
}

/// `GET /api/v1/campaigns/{id}`.
pub async fn get_campaign(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let c = db::blocking(&state.db, move |conn| repo::campaign(conn, id))
        .await?
        .ok_or_else(|| ApiError::not_found("no such campaign"))?;
    Ok(HttpResponse::Ok().json(campaign_json_at(&c, state.clock.now_ms())))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndBody {
    reason: Option<String>,
    /// `keep` (sold, unused coupons stay usable until the campaign's own date) or `refund` (each is refunded;
    /// unsold unused coupons are voided). Required when sold coupons are unused.
    sold: Option<String>,
    /// Answer what the end would touch, change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// `POST /api/v1/campaigns/{id}/end {reason?, sold?: "keep"|"refund", dry_run?}`: no more issuing or buying from
/// now; sold unused coupons kept or refunded, open orders closed at WeChat. `dry_run` answers the numbers
/// (`sold_unused`, `sold_amount_fen`, `unsold_unused`, `open_orders`) and changes nothing; without `sold`, a
/// campaign with sold unused coupons is refused (409 `choose_sold`, with the numbers). Ending an ended campaign
/// changes nothing (200 either way).
pub async fn end_campaign(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    // No body, or JSON null: no reason.
    let body = if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        EndBody::default()
    } else {
        crate::http::json::parse::<EndBody>(&body)?
    };
    let ending = service::EndRequest::parse(body.reason, body.sold.as_deref(), body.dry_run).map_err(admin_error)?;
    let id = path.into_inner();
    let now = state.clock.now_ms();
    let actor = crate::features::pay::ending::Actor {
        channel: "admin",
        user_id: None,
    };
    let out = run(&state, move |conn| service::end_campaign(conn, id, &ending, actor, now)).await?;
    if out.refunds > 0 {
        crate::features::pay::ending::kick(
            state.db.clone(),
            state.payers.clone(),
            state.clock.clone(),
            state.public_base_url.clone(),
        );
    }
    Ok(HttpResponse::Ok().json(out.json(now)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMerchant {
    name: String,
}

/// `POST /api/v1/merchants {name}` → `{id, name}`.
pub async fn create_merchant(
    _admin: auth::AdminAuth,
    body: crate::http::json::ApiJson<NewMerchant>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let name = body.into_inner().name;
    let now = state.clock.now_ms();
    let m = run(&state, move |conn| service::create_merchant(conn, &name, now)).await?;
    Ok(HttpResponse::Created().json(json!({"id": m.id, "name": m.name})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStaff {
    merchant_id: i64,
    openid: String,
    name: String,
}

/// `POST /api/v1/staff {merchant_id, openid, name}` → `{id, api_token}`. The token is shown once; only its hash is
/// stored.
pub async fn create_staff(
    _admin: auth::AdminAuth,
    body: crate::http::json::ApiJson<NewStaff>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let NewStaff {
        merchant_id,
        openid,
        name,
    } = body.into_inner();
    let now = state.clock.now_ms();
    let service::NewStaffMember {
        row: created,
        api_token: token,
    } = run(&state, move |conn| {
        service::add_staff(conn, merchant_id, &openid, &name, now)
    })
    .await?;
    Ok(HttpResponse::Created().json(json!({
        "id": created.id, "merchant_id": created.merchant_id, "openid": created.openid, "name": created.name,
        "api_token": token,
    })))
}

/// `DELETE /api/v1/staff/{id}` → 204; the staff member can no longer redeem.
pub async fn delete_staff(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    run(&state, move |conn| service::remove_staff(conn, id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/v1/campaigns {...}` → `{id, ...}`.
pub async fn create_campaign(
    _admin: auth::AdminAuth,
    body: crate::http::json::ApiJson<CampaignRequest>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now_ms();
    let new = body.validate(now).map_err(admin_error)?;
    let created = run(&state, move |conn| service::create_campaign(conn, &new, now)).await?;
    Ok(HttpResponse::Created().json(campaign_json(&created)))
}

/// `GET /api/v1/campaigns?merchant_id=&limit=&cursor=` → `{items, next_cursor}` (and the same items as `campaigns`,
/// the first release's field).
pub async fn list_campaigns(
    _admin: auth::AdminAuth,
    req: HttpRequest,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = query(&req)?;
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let merchant = q.merchant_id;
    let rows = db::blocking(&state.db, move |conn| {
        repo::campaigns_page(conn, merchant, page.after, page.fetch())
    })
    .await?;
    let now = state.clock.now_ms();
    let out = paging::paged(page, rows, |c| c.id, |c| campaign_json_at(c, now));
    Ok(HttpResponse::Ok().json(json!({"items": out.items, "next_cursor": out.next_cursor, "campaigns": out.items})))
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    owner_openid: Option<String>,
}

/// `POST /api/v1/campaigns/{id}/coupons {owner_openid?}` → `{code, url, qr_url}`.
pub async fn issue(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    // An empty body is allowed (a coupon without owner); anything else must be the JSON object.
    let owner = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        crate::http::json::parse::<IssueBody>(&body)?.owner_openid
    };
    let campaign_id = path.into_inner();
    let now = state.clock.now_ms();
    let (coupon, campaign) = run(&state, move |conn| {
        service::issue_coupon(conn, campaign_id, owner.as_deref(), now)
    })
    .await?;
    let (Some(coupon), campaign) = (coupon.to_domain(), campaign.to_domain()) else {
        return Err(ApiError::internal(&"issued coupon has an invalid code"));
    };
    let mut view = public_view(&state, &coupon, &campaign);
    view["owner_openid"] = json!(coupon.owner_openid);
    Ok(HttpResponse::Created().json(view))
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
    state: web::Data<State>,
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
        coupons_admin::campaign_coupons(conn, id, status, owner.as_deref(), page.after, page.fetch(), now)
    })
    .await?;
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
