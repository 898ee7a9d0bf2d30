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

/// The secrets every instance on one database shares, read (or created) once at start-up.
pub struct ServerKeys {
    /// Signs OAuth states.
    pub state_key: String,
    /// Signs sessions and CSRF tokens.
    pub session_key: String,
    /// Sandbox mode's admin token (one per database, so a restart or a second instance keeps the printed one).
    pub sandbox_admin: Option<String>,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKeys([redacted])")
    }
}

impl ServerKeys {
    /// The keys of `platform`'s database (the sandbox admin token too when `sandbox`).
    pub async fn load(platform: &crate::platform::Platform, sandbox: bool) -> Result<ServerKeys, DbError> {
        use crate::platform::crypto::random_token;
        crate::db::blocking(&platform.db, move |conn| {
            Ok(ServerKeys {
                sandbox_admin: if sandbox {
                    Some(shared_secret(conn, "sandbox_admin_token", random_token)?)
                } else {
                    None
                },
                state_key: shared_secret(conn, "oauth_state_key", random_token)?,
                session_key: shared_secret(conn, "session_key", random_token)?,
            })
        })
        .await
    }
}
