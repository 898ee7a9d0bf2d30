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

/// A server-wide value by name (a secret, or what the running server recorded: its public address), if set.
pub fn value(conn: &mut DbConnection, name: &str) -> Result<Option<String>, DbError> {
    Ok(server_secrets::table
        .find(name)
        .select(server_secrets::value)
        .first::<String>(conn)
        .optional()?)
}

/// Sets a server-wide value (the last instance to start wins).
pub fn set_value(conn: &mut DbConnection, name: &str, value: &str) -> Result<(), DbError> {
    let n = diesel::update(server_secrets::table.find(name))
        .set(server_secrets::value.eq(value))
        .execute(conn)?;
    if n == 0 {
        match diesel::insert_into(server_secrets::table)
            .values((server_secrets::name.eq(name), server_secrets::value.eq(value)))
            .execute(conn)
        {
            Ok(_) => {}
            Err(e) if crate::db::is_unique_violation(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The name under which a starting server records its public address, for the CLI commands that call it.
pub const PUBLIC_BASE_URL: &str = "public_base_url";
/// The name of the sandbox's admin token.
pub const SANDBOX_ADMIN_TOKEN: &str = "sandbox_admin_token";

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
        let base = platform.public_base_url.clone();
        crate::db::blocking(&platform.db, move |conn| {
            // Where this server answers (with a port chosen at start), for `wxkit` commands that call it.
            set_value(conn, PUBLIC_BASE_URL, &base)?;
            Ok(ServerKeys {
                sandbox_admin: if sandbox {
                    Some(shared_secret(conn, SANDBOX_ADMIN_TOKEN, random_token)?)
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
