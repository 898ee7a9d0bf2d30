//! The admin API (bearer admin token): merchants, staff, campaigns, issuing coupons.

use crate::db;
use crate::features::coupons::admin_routes::query;
use crate::features::coupons::routes::{public_view, rfc3339};
use crate::features::merchants::repo;
use crate::features::merchants::service::{self, AdminError};
use crate::http::auth;
use crate::http::errors::ApiError;
use crate::http::paging::{self, Page};
use crate::startup::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

fn db_error(e: db::DbError) -> ApiError {
    ApiError::internal(&e)
}

/// The HTTP form of a refused admin use case.
fn admin_error(e: AdminError) -> ApiError {
    match e {
        AdminError::Invalid { field, message } => ApiError::bad_request("invalid_field", format!("{field} {message}")),
        AdminError::NotFound(what) => ApiError::not_found(what),
        AdminError::Conflict { code, message } => ApiError::new(StatusCode::CONFLICT, code, message),
        AdminError::Db(e) => ApiError::internal(&e),
    }
}

/// Runs an admin use case on a pooled connection.
async fn run<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&mut db::DbConnection) -> Result<T, AdminError> + Send + 'static,
) -> Result<T, ApiError> {
    db::blocking(&state.db, move |conn| Ok(work(conn)))
        .await
        .map_err(db_error)?
        .map_err(admin_error)
}

/// The admin API of this capability (inside `/api/v1`).
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/merchants")
            .route(web::post().to(create_merchant))
            .route(web::get().to(list_merchants)),
    )
    .service(web::resource("/merchants/{id}").route(web::get().to(get_merchant)))
    .service(
        web::resource("/staff")
            .route(web::post().to(create_staff))
            .route(web::get().to(list_staff)),
    )
    .service(web::resource("/staff/{id}").route(web::delete().to(delete_staff)))
    .service(
        web::resource("/campaigns")
            .route(web::post().to(create_campaign))
            .route(web::get().to(list_campaigns)),
    )
    .service(web::resource("/campaigns/{id}").route(web::get().to(get_campaign)))
    .service(web::resource("/campaigns/{id}/end").route(web::post().to(end_campaign)))
    .service(
        web::resource("/campaigns/{id}/coupons")
            .route(web::post().to(issue))
            .route(web::get().to(crate::features::coupons::admin_routes::list_coupons)),
    )
    .service(web::resource("/campaigns/{id}/follow-code").route(web::post().to(super::follow::create)))
    .service(
        web::resource("/campaigns/{id}/redeemed-message")
            .route(web::put().to(super::messages::put))
            .route(web::get().to(super::messages::get))
            .route(web::delete().to(super::messages::delete)),
    )
    .service(
        web::resource("/campaigns/{id}/wechat-card")
            .app_data(web::PayloadConfig::new(super::card::MAX_BODY))
            .route(web::post().to(super::card::attach)),
    );
}

/// Merchant JSON.
fn merchant_json(m: &repo::MerchantRow) -> serde_json::Value {
    json!({"id": m.id, "name": m.name, "created_at": rfc3339(m.created_at)})
}

/// Staff JSON (never the token or its hash).
pub fn staff_json(s: &repo::StaffRow) -> serde_json::Value {
    json!({
        "id": s.id, "merchant_id": s.merchant_id, "openid": s.openid, "name": s.name,
        "status": if s.active { "active" } else { "removed" }, "created_at": rfc3339(s.created_at),
    })
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
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = query(&req)?;
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let rows = db::blocking(&state.db, move |conn| {
        repo::merchants_page(conn, page.after, page.fetch())
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
    Ok(HttpResponse::Ok().json(paging::paged(page, rows, |m| m.id, merchant_json)))
}

/// `GET /api/v1/merchants/{id}`.
pub async fn get_merchant(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let m = db::blocking(&state.db, move |conn| repo::merchant(conn, id))
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .ok_or_else(|| ApiError::not_found("no such merchant"))?;
    Ok(HttpResponse::Ok().json(merchant_json(&m)))
}

/// `GET /api/v1/staff?merchant_id=&limit=&cursor=`.
pub async fn list_staff(
    _admin: auth::AdminAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = query(&req)?;
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let merchant = q.merchant_id;
    let rows = db::blocking(&state.db, move |conn| {
        repo::staff_page(conn, merchant, page.after, page.fetch())
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
    Ok(HttpResponse::Ok().json(paging::paged(page, rows, |s| s.id, staff_json)))
}

/// `GET /api/v1/campaigns/{id}`.
pub async fn get_campaign(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let c = db::blocking(&state.db, move |conn| repo::campaign(conn, id))
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .ok_or_else(|| ApiError::not_found("no such campaign"))?;
    Ok(HttpResponse::Ok().json(campaign_json_at(&c, state.clock.now_ms())))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndBody {
    reason: Option<String>,
}

/// `POST /api/v1/campaigns/{id}/end {reason?}`: no more issuing, buying or redeeming after now (its coupons read as
/// expired). Ending an ended campaign changes nothing (200 either way).
pub async fn end_campaign(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // No body, or JSON null: no reason.
    let reason = if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        None
    } else {
        crate::http::json::parse::<EndBody>(&body)?.reason
    };
    if reason.as_ref().is_some_and(|r| r.chars().count() > 200) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "reason must be at most 200 characters",
        ));
    }
    let id = path.into_inner();
    let now = state.clock.now_ms();
    let c = db::blocking(&state.db, move |conn| {
        repo::end_campaign(conn, id, now, reason.as_deref())
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?
    .ok_or_else(|| ApiError::not_found("no such campaign"))?;
    Ok(HttpResponse::Ok().json(campaign_json_at(&c, now)))
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
    state: web::Data<AppState>,
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
    state: web::Data<AppState>,
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
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    run(&state, move |conn| service::remove_staff(conn, id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/v1/campaigns` body, and the arguments of `wxkit campaign create`.
#[derive(Debug, Default, Deserialize, clap::Args, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    /// The merchant.
    #[arg(long)]
    pub merchant_id: i64,
    /// Title.
    #[arg(long)]
    pub title: String,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Face value in fen.
    #[arg(long)]
    pub value_fen: Option<i64>,
    /// RFC 3339 start (default now).
    #[arg(long)]
    pub valid_from: Option<String>,
    /// RFC 3339 end (default 30 days after the start).
    #[arg(long)]
    pub valid_until: Option<String>,
    /// Total coupons (default unlimited).
    #[arg(long)]
    pub quantity: Option<i64>,
    /// Coupons per customer (default unlimited).
    #[arg(long)]
    pub per_user_limit: Option<i64>,
    /// Backing WeChat card id.
    #[arg(long)]
    pub wechat_card_id: Option<String>,
    /// Price in fen: customers can buy its coupons with WeChat Pay (`/c/buy/{id}`).
    #[arg(long)]
    pub price_fen: Option<i64>,
}

fn parse_time(field: &'static str, value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_time",
                format!("{field} must be RFC 3339, e.g. 2026-12-01T00:00:00+08:00"),
            )
        })
}

impl CampaignRequest {
    /// Validates into a row (defaults: valid from now for 30 days, unlimited).
    pub fn validate(&self, now: i64) -> Result<repo::NewCampaign, ApiError> {
        if self.title.trim().is_empty() || self.title.chars().count() > 100 {
            return Err(ApiError::bad_request(
                "invalid_field",
                "title must be 1 to 100 characters",
            ));
        }
        if let Some(d) = &self.description
            && d.chars().count() > 2000
        {
            return Err(ApiError::bad_request(
                "invalid_field",
                "description must be at most 2000 characters",
            ));
        }
        if self.value_fen.is_some_and(|v| !(0..=10_000_000_000).contains(&v)) {
            return Err(ApiError::bad_request(
                "invalid_field",
                "value_fen must be 0 to 10000000000",
            ));
        }
        let from = self
            .valid_from
            .as_deref()
            .map(|v| parse_time("valid_from", v))
            .transpose()?
            .unwrap_or(now);
        let until = self
            .valid_until
            .as_deref()
            .map(|v| parse_time("valid_until", v))
            .transpose()?
            .unwrap_or(from + 30 * 86_400_000);
        if until <= from {
            return Err(ApiError::bad_request(
                "invalid_time",
                "valid_until must be after valid_from",
            ));
        }
        if until <= now {
            return Err(ApiError::bad_request(
                "invalid_time",
                "valid_until is in the past: the campaign would have ended already",
            ));
        }
        if self.quantity.is_some_and(|q| q < 1) || self.per_user_limit.is_some_and(|q| q < 1) {
            return Err(ApiError::bad_request(
                "invalid_field",
                "quantity and per_user_limit must be at least 1",
            ));
        }
        if self.price_fen.is_some_and(|p| !(1..=100_000_000).contains(&p)) {
            return Err(ApiError::bad_request(
                "invalid_field",
                "price_fen is in fen: 1 to 100000000",
            ));
        }
        if let Some(c) = &self.wechat_card_id
            && (c.is_empty() || c.len() > 64 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(ApiError::bad_request(
                "invalid_field",
                "wechat_card_id is not a card id",
            ));
        }
        Ok(repo::NewCampaign {
            merchant_id: self.merchant_id,
            title: self.title.trim().to_owned(),
            description: self.description.clone(),
            value_fen: self.value_fen,
            valid_from: from,
            valid_until: until,
            quantity: self.quantity,
            per_user_limit: self.per_user_limit,
            wechat_card_id: self.wechat_card_id.clone(),
            price_fen: self.price_fen,
        })
    }
}

/// Campaign JSON, with its status at `now`: `scheduled`, `active` or `ended`.
pub fn campaign_json_at(c: &repo::CampaignRow, now: i64) -> serde_json::Value {
    let mut v = campaign_json(c);
    v["status"] = json!(if now < c.valid_from {
        "scheduled"
    } else if now <= c.valid_until {
        "active"
    } else {
        "ended"
    });
    v
}

/// Campaign JSON.
pub fn campaign_json(c: &repo::CampaignRow) -> serde_json::Value {
    json!({
        "id": c.id, "merchant_id": c.merchant_id, "title": c.title, "description": c.description,
        "value_fen": c.value_fen, "valid_from": rfc3339(c.valid_from), "valid_until": rfc3339(c.valid_until),
        "quantity": c.quantity, "per_user_limit": c.per_user_limit, "wechat_card_id": c.wechat_card_id,
        "issued": c.issued, "price_fen": c.price_fen,
        "buy_url": c.price_fen.map(|_| format!("/c/buy/{}", c.id)),
    })
}

/// `POST /api/v1/campaigns {...}` → `{id, ...}`.
pub async fn create_campaign(
    _admin: auth::AdminAuth,
    body: crate::http::json::ApiJson<CampaignRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now_ms();
    let new = body.validate(now)?;
    let created = run(&state, move |conn| service::create_campaign(conn, &new, now)).await?;
    Ok(HttpResponse::Created().json(campaign_json(&created)))
}

/// `GET /api/v1/campaigns?merchant_id=&limit=&cursor=` → `{items, next_cursor}` (and the same items as `campaigns`,
/// the first release's field).
pub async fn list_campaigns(
    _admin: auth::AdminAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = query(&req)?;
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let merchant = q.merchant_id;
    let rows = db::blocking(&state.db, move |conn| {
        repo::campaigns_page(conn, merchant, page.after, page.fetch())
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
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
    state: web::Data<AppState>,
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
