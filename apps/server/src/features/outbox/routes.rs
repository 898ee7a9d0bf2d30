//! The operators' view of the outbox: list items by status, put a failed one back in the queue.

use super::State;
use super::service::{self, OutboxError};
use crate::http::auth;
use crate::http::errors::ApiError;
use actix_web::{HttpResponse, web};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    status: Option<String>,
    limit: Option<i64>,
}

impl From<OutboxError> for ApiError {
    fn from(e: OutboxError) -> ApiError {
        match e {
            OutboxError::InvalidStatus => ApiError::bad_request("invalid_status", e.to_string()),
            OutboxError::NotFound => ApiError::not_found(e.to_string()),
            OutboxError::Db(e) => ApiError::from(e),
        }
    }
}

/// `GET /api/v1/admin/outbox?status=pending|done|failed&limit=N` (admin): the newest items.
pub async fn list_outbox(
    _admin: auth::AdminAuth,
    query: web::Query<OutboxQuery>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let items = service::list(&state, q.status, q.limit.unwrap_or(100)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// `POST /api/v1/admin/outbox/{id}/retry` (admin): puts a failed item back in the queue.
pub async fn retry_outbox(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    service::retry(&state, id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": id, "status": "pending" })))
}
