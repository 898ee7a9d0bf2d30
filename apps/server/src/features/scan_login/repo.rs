//! `login_scenes`: every transition is one conditional UPDATE, so concurrent scans, confirms and cancels (on any
//! instance) cannot both win.

use crate::db::schema::login_scenes;
use crate::db::{DbConnection, DbError};
use diesel::prelude::*;

crate::text_enum! {
    /// A login scene's status (`login_scenes.status`).
    SceneStatus {
        /// Shown, not scanned.
        Pending => "pending",
        /// Scanned by a mini-program user.
        Scanned => "scanned",
        /// Confirmed on the phone.
        Confirmed => "confirmed",
        /// Declined on the phone.
        Cancelled => "cancelled",
    }
}

/// A scene row (without its image).
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = login_scenes)]
pub struct SceneRow {
    /// The scene (in the QR code).
    pub scene: String,
    /// sha256 hex of the watch key.
    pub watch_key_hash: String,
    /// pending | scanned | confirmed | cancelled.
    #[diesel(deserialize_as = String)]
    pub status: SceneStatus,
    /// Who scanned (and confirmed).
    pub user_id: Option<i64>,
    /// Unix seconds the current ticket dies.
    pub ticket_expires_at: Option<i64>,
    /// When the ticket was exchanged, Unix ms.
    pub ticket_used_at: Option<i64>,
    /// Where the browser goes once logged in.
    pub return_path: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A new scene.
pub fn create(
    conn: &mut DbConnection,
    scene: &str,
    watch_key_hash: &str,
    return_path: &str,
    now_ms: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    diesel::insert_into(login_scenes::table)
        .values((
            login_scenes::scene.eq(scene),
            login_scenes::watch_key_hash.eq(watch_key_hash),
            login_scenes::status.eq(SceneStatus::Pending.as_str()),
            login_scenes::return_path.eq(return_path),
            login_scenes::created_at.eq(now_ms),
            login_scenes::expires_at.eq(expires_at),
            login_scenes::updated_at.eq(now_ms),
        ))
        .execute(conn)?;
    Ok(())
}

/// A scene by its name.
pub fn get(conn: &mut DbConnection, scene: &str) -> Result<Option<SceneRow>, DbError> {
    Ok(login_scenes::table
        .find(scene)
        .select(SceneRow::as_select())
        .first(conn)
        .optional()?)
}

/// The scene's stored mini-program code, if fetched yet (`None` when the scene does not exist).
pub fn png(conn: &mut DbConnection, scene: &str) -> Result<Option<Option<Vec<u8>>>, DbError> {
    Ok(login_scenes::table
        .find(scene)
        .select(login_scenes::qr_png)
        .first(conn)
        .optional()?)
}

/// Keeps the mini-program code fetched for the scene (the first one stored wins).
pub fn store_png(conn: &mut DbConnection, scene: &str, png: &[u8]) -> Result<(), DbError> {
    diesel::update(login_scenes::table.find(scene).filter(login_scenes::qr_png.is_null()))
        .set(login_scenes::qr_png.eq(png))
        .execute(conn)?;
    Ok(())
}

/// pending/scanned (by nobody else) → scanned by `user_id`, while the scene lives. True if it moved.
pub fn scan(conn: &mut DbConnection, scene: &str, user_id: i64, now_ms: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        login_scenes::table
            .find(scene)
            .filter(login_scenes::status.eq_any([SceneStatus::Pending.as_str(), SceneStatus::Scanned.as_str()]))
            .filter(login_scenes::user_id.is_null().or(login_scenes::user_id.eq(user_id)))
            .filter(login_scenes::expires_at.gt(now_ms / 1000)),
    )
    .set((
        login_scenes::status.eq(SceneStatus::Scanned.as_str()),
        login_scenes::user_id.eq(user_id),
        login_scenes::updated_at.eq(now_ms),
    ))
    .execute(conn)?
        == 1)
}

/// scanned by `user_id` → confirmed, with a fresh ticket, while the scene lives. True if it moved.
pub fn confirm(
    conn: &mut DbConnection,
    scene: &str,
    user_id: i64,
    ticket_hash: &str,
    ticket_expires_at: i64,
    now_ms: i64,
) -> Result<bool, DbError> {
    Ok(diesel::update(
        login_scenes::table
            .find(scene)
            .filter(login_scenes::status.eq(SceneStatus::Scanned.as_str()))
            .filter(login_scenes::user_id.eq(user_id))
            .filter(login_scenes::expires_at.gt(now_ms / 1000)),
    )
    .set((
        login_scenes::status.eq(SceneStatus::Confirmed.as_str()),
        login_scenes::ticket_hash.eq(ticket_hash),
        login_scenes::ticket_expires_at.eq(ticket_expires_at),
        login_scenes::updated_at.eq(now_ms),
    ))
    .execute(conn)?
        == 1)
}

/// pending, or scanned by `user_id` → cancelled. True if it moved.
pub fn cancel(conn: &mut DbConnection, scene: &str, user_id: i64, now_ms: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        login_scenes::table
            .find(scene)
            .filter(login_scenes::status.eq_any([SceneStatus::Pending.as_str(), SceneStatus::Scanned.as_str()]))
            .filter(login_scenes::user_id.is_null().or(login_scenes::user_id.eq(user_id)))
            .filter(login_scenes::expires_at.gt(now_ms / 1000)),
    )
    .set((
        login_scenes::status.eq(SceneStatus::Cancelled.as_str()),
        login_scenes::updated_at.eq(now_ms),
    ))
    .execute(conn)?
        == 1)
}

/// A confirmed scene whose ticket is unused gets a new ticket (for a browser socket that connected late or
/// reconnected: the previous ticket dies). True if it was replaced.
pub fn reissue_ticket(
    conn: &mut DbConnection,
    scene: &str,
    ticket_hash: &str,
    ticket_expires_at: i64,
    now_ms: i64,
) -> Result<bool, DbError> {
    Ok(diesel::update(
        login_scenes::table
            .find(scene)
            .filter(login_scenes::status.eq(SceneStatus::Confirmed.as_str()))
            .filter(login_scenes::ticket_used_at.is_null()),
    )
    .set((
        login_scenes::ticket_hash.eq(ticket_hash),
        login_scenes::ticket_expires_at.eq(ticket_expires_at),
        login_scenes::updated_at.eq(now_ms),
    ))
    .execute(conn)?
        == 1)
}

/// Exchanges a ticket once: marks it used if it is live and unused; returns the user and the return path.
pub fn consume_ticket(
    conn: &mut DbConnection,
    ticket_hash: &str,
    now_ms: i64,
) -> Result<Option<(i64, String)>, DbError> {
    let taken = diesel::update(
        login_scenes::table
            .filter(login_scenes::ticket_hash.eq(ticket_hash))
            .filter(login_scenes::status.eq(SceneStatus::Confirmed.as_str()))
            .filter(login_scenes::ticket_used_at.is_null())
            .filter(login_scenes::ticket_expires_at.gt(now_ms / 1000)),
    )
    .set(login_scenes::ticket_used_at.eq(now_ms))
    .execute(conn)?;
    if taken != 1 {
        return Ok(None);
    }
    let row: Option<(Option<i64>, String)> = login_scenes::table
        .filter(login_scenes::ticket_hash.eq(ticket_hash))
        .select((login_scenes::user_id, login_scenes::return_path))
        .first(conn)
        .optional()?;
    Ok(row.and_then(|(user, path)| user.map(|u| (u, path))))
}

/// Forgets scenes that ended more than an hour ago (housekeeping).
pub fn prune(conn: &mut DbConnection, now_secs: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(login_scenes::table.filter(login_scenes::expires_at.lt(now_secs - 3600))).execute(conn)?)
}

/// `NOTIFY` on PostgreSQL (a no-op on SQLite, whose one process delivers in memory).
pub fn notify(conn: &mut DbConnection, channel: &str, payload: &str) -> Result<(), DbError> {
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<diesel::sql_types::Text, _>(channel)
            .bind::<diesel::sql_types::Text, _>(payload)
            .execute(pg)?;
    }
    Ok(())
}
