//! The operators' view of the outbox: list items by status, put a failed one back in the queue.

use super::State;
use super::repo;
use crate::db;
use crate::http::auth;
use crate::http::errors::ApiError;
use actix_web::{HttpResponse, web};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    status: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/admin/outbox?status=pending|done|failed&limit=N` (admin): the newest items.
pub async fn list_outbox(
    _admin: auth::AdminAuth,
    query: web::Query<OutboxQuery>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let status = query.status.clone();
    if let Some(s) = &status
        && !matches!(s.as_str(), "pending" | "done" | "failed")
    {
        return Err(ApiError::bad_request(
            "invalid_status",
            "status must be pending, done or failed",
        ));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let items = db::blocking(&state.db, move |conn| repo::list(conn, status.as_deref(), limit))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// `POST /api/v1/admin/outbox/{id}/retry` (admin): puts a failed item back in the queue.
pub async fn retry_outbox(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let now = state.clock.now_ms();
    let requeued = db::blocking(&state.db, move |conn| repo::retry(conn, id, now))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    if !requeued {
        return Err(ApiError::not_found("no failed outbox item with that id"));
    }
    state.outbox.wake();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": id, "status": "pending" })))
}
