//! Used OAuth state nonces (single-use states), shared by every instance through a unique key.

use crate::db::schema::oauth_states;
use crate::db::{DbConnection, DbError};
use diesel::prelude::*;

/// Records an OAuth state nonce as used; false when it already was (a replay). Forgets expired nonces.
pub fn consume_state_nonce(
    conn: &mut DbConnection,
    nonce: &str,
    expires_at: i64,
    now_secs: i64,
) -> Result<bool, DbError> {
    diesel::delete(oauth_states::table.filter(oauth_states::expires_at.lt(now_secs - 60))).execute(conn)?;
    match diesel::insert_into(oauth_states::table)
        .values((oauth_states::nonce.eq(nonce), oauth_states::expires_at.eq(expires_at)))
        .execute(conn)
    {
        Ok(_) => Ok(true),
        Err(e) if crate::db::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
