//! Server-wide secrets shared by every instance on one database (session and state signing keys), created on
//! first start.

use crate::db::schema::server_secrets;
use crate::db::{DbConnection, DbError};
use diesel::prelude::*;

/// A shared secret by name, created with `generate` on first use. Every instance on one database gets the same.
pub fn shared_secret(
    conn: &mut DbConnection,
    name: &str,
    generate: impl FnOnce() -> String,
) -> Result<String, DbError> {
    if let Some(v) = server_secrets::table
        .find(name)
        .select(server_secrets::value)
        .first::<String>(conn)
        .optional()?
    {
        return Ok(v);
    }
    match diesel::insert_into(server_secrets::table)
        .values((server_secrets::name.eq(name), server_secrets::value.eq(generate())))
        .execute(conn)
    {
        Ok(_) => {}
        Err(e) if crate::db::is_unique_violation(&e) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(server_secrets::table
        .find(name)
        .select(server_secrets::value)
        .first(conn)?)
}
