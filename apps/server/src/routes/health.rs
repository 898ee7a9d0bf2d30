//! Liveness and readiness.

use crate::db::{self, DbError};
use crate::routes::errors::ApiError;
use crate::startup::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use diesel::connection::SimpleConnection;

/// `GET /healthz`: 200 while the process lives.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: 200 only when the database answers a query.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let checked = db::blocking(&state.db, |conn| conn.batch_execute("SELECT 1").map_err(DbError::Query)).await;
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
