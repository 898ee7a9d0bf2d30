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

/// `GET /readyz`: 200 only when the database answers a query.
pub async fn readyz(state: web::Data<Platform>) -> Result<HttpResponse, ApiError> {
    // A short checkout timeout: a probe must answer quickly, not wait out the pool's default.
    let pool = state.db.clone();
    let checked = tokio::task::spawn_blocking(move || -> Result<(), DbError> {
        let mut conn = pool.get_timeout(Duration::from_secs(2))?;
        conn.batch_execute("SELECT 1").map_err(DbError::Query)
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
