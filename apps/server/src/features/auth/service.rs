//! The login use cases other capabilities call: sending a visitor to WeChat to log in, and the single-use state
//! store that the callback checks.

use crate::db::{self, DbError};
use crate::http::errors::ApiError;
use crate::startup::AppState;
use actix_web::HttpResponse;
use async_trait::async_trait;
use wechat_oauth::state::{StateError, StateStore};
use wechat_oauth::web::Scope;

/// OAuth states live 10 minutes.
pub const STATE_TTL_SECS: i64 = 600;

/// A 302 to WeChat's authorize page that will bring the user back to `return_path`.
pub fn login_redirect(state: &AppState, return_path: &str) -> Result<HttpResponse, ApiError> {
    let issued = state
        .state_signer
        .issue(return_path, state.clock.now_ms() / 1000, STATE_TTL_SECS)
        .map_err(|e| ApiError::bad_request("invalid_return_path", e.to_string()))?;
    let redirect_uri = format!("{}/auth/callback", state.public_base_url);
    let url = state
        .oauth
        .authorize_url(&redirect_uri, Scope::Base, Some(&issued.value))
        .map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Found()
        .insert_header((actix_web::http::header::LOCATION, url))
        .finish())
}

/// Single-use OAuth states in the database (a unique key), shared by every instance.
#[derive(Debug)]
pub struct DbStateStore {
    pool: db::DbPool,
    clock: std::sync::Arc<dyn wechat_core::Clock>,
}

impl DbStateStore {
    /// A store on `pool`, forgetting expired states by `clock`.
    pub fn new(pool: db::DbPool, clock: std::sync::Arc<dyn wechat_core::Clock>) -> Self {
        Self { pool, clock }
    }
}

#[async_trait]
impl StateStore for DbStateStore {
    async fn consume(&self, nonce: &str, expires_at: i64) -> Result<bool, StateError> {
        let nonce = nonce.to_owned();
        let now_secs = self.clock.now_ms() / 1000;
        db::blocking(&self.pool, move |conn| {
            super::repo::consume_state_nonce(conn, &nonce, expires_at, now_secs)
        })
        .await
        .map_err(|e: DbError| StateError::Store(e.to_string()))
    }
}
