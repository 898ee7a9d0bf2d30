//! Liveness and readiness.

use crate::db::DbError;
use crate::http::errors::ApiError;
use crate::platform::Platform;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use diesel::connection::SimpleConnection;
use std::time::Duration;

/// `GET /healthz`: 200 while the process lives.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: 200 only when the database answers a query. A pooled connection that fails (its backend was
/// terminated: a failover, an idle-connection killer) is discarded and the query tried again on another, and then
/// on a fresh one: a connection the pool can replace is not an outage, and a load balancer that ejects on one
/// failed probe must not drop every instance at once.
pub async fn readyz(state: web::Data<Platform>) -> Result<HttpResponse, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "this instance is stopping: send new requests elsewhere",
        ));
    }
    // A short deadline: a probe must answer quickly, not wait out the pool's default.
    let pool = state.db.clone();
    let checked = tokio::task::spawn_blocking(move || -> Result<(), DbError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut last = None;
        for _ in 0..=pool.max_size() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let mut conn = pool.get_timeout(left)?;
            match conn.batch_execute("SELECT 1").map_err(DbError::Query) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // Marks the connection (the pool drops it) and tells the pool to test the others.
                    conn.note_error(&e);
                    conn.mark_broken();
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| DbError::Task("no connection within 2 s".into())))
    })
    .await
    .map_err(|e| DbError::Task(e.to_string()))
    .and_then(|r| r);
    match checked {
        Ok(()) => Ok(HttpResponse::Ok().json(serde_json::json!({
            "status": "ready",
            "database": state.backend.name(),
        }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database does not answer",
            ))
        }
    }
}
