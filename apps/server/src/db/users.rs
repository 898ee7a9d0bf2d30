//! WeChat users we have seen.

use super::schema::users;
use super::{DbConnection, DbError};
use diesel::prelude::*;

/// Records that `openid` logged in (creates the row the first time).
pub fn touch(conn: &mut DbConnection, openid: &str, now: i64) -> Result<(), DbError> {
    let updated = diesel::update(users::table.filter(users::openid.eq(openid)))
        .set(users::updated_at.eq(now))
        .execute(conn)?;
    if updated == 0 {
        match diesel::insert_into(users::table)
            .values((
                users::openid.eq(openid),
                users::created_at.eq(now),
                users::updated_at.eq(now),
            ))
            .execute(conn)
        {
            Ok(_) => {}
            // Another request created it meanwhile.
            Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
