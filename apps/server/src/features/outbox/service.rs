//! The operators' use cases: look at the queue by status, put a failed item back.

use super::State;
use super::repo::{self, OutboxRow};
use crate::db::{self, DbError};

/// Why an operator's request was refused.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Not a status items have.
    #[error("status must be pending, done or failed")]
    InvalidStatus,
    /// No failed item with that id.
    #[error("no failed outbox item with that id")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The newest items (with `status`), at most `limit` (1 to 1000).
pub async fn list(state: &State, status: Option<String>, limit: i64) -> Result<Vec<OutboxRow>, OutboxError> {
    if status.as_deref().is_some_and(|s| repo::ItemStatus::parse(s).is_none()) {
        return Err(OutboxError::InvalidStatus);
    }
    let limit = limit.clamp(1, 1000);
    Ok(db::blocking(&state.db, move |conn| repo::list(conn, status.as_deref(), limit)).await?)
}

/// Puts failed item `id` back in the queue and wakes the worker.
pub async fn retry(state: &State, id: i64) -> Result<(), OutboxError> {
    let now = state.clock.now_ms();
    if !db::blocking(&state.db, move |conn| repo::retry(conn, id, now)).await? {
        return Err(OutboxError::NotFound);
    }
    state.outbox.wake();
    Ok(())
}
