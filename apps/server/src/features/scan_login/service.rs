//! The scene lifecycle: create → scan (mini program) → confirm or cancel → the browser exchanges its one-time
//! ticket for a session. Every transition is a conditional update in the database; its event is then published
//! through the hub.

use super::State;
use super::repo::{self, SceneRow, SceneStatus};
use crate::db::{self, DbConnection, DbError};
use crate::features::auth::repo as users;
use crate::platform::crypto::{random_hex, sha256_hex};
use std::sync::Arc;

/// Why a scene's use case refused (the message is for the person, the code for machines).
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    /// The database failed (nothing changed).
    #[error(transparent)]
    Db(#[from] DbError),
    /// The return path is not a path on this site.
    #[error("return must be a path on this site, like /account")]
    InvalidReturnPath,
    /// No such scene.
    #[error("{0}")]
    NotFound(&'static str),
    /// The scene's code has expired.
    #[error("{0}")]
    Expired(&'static str),
    /// The scene is not in a state that allows the step.
    #[error("{message}")]
    Conflict {
        /// `already_confirmed`, `cancelled`, `scanned_by_another`, `not_scanned`, `conflict`.
        code: &'static str,
        /// What to do.
        message: &'static str,
    },
    /// The login ticket is unknown, used or expired.
    #[error("this login ticket is unknown, used or expired: scan the code again")]
    InvalidTicket,
}

/// A login ticket lives 60 seconds.
pub const TICKET_SECS: i64 = 60;

/// A fresh scene for the browser.
#[derive(Debug)]
pub struct NewScene {
    /// The scene (32 hex characters: 128 random bits, within WeChat's `scene` rule).
    pub scene: String,
    /// The watch key: only the browser that created the scene may watch it (and so receive its ticket).
    pub watch_key: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Creates a scene that returns the browser to `return_path` (a path on this site).
pub async fn create(state: &State, return_path: &str) -> Result<NewScene, SceneError> {
    let return_path = safe_return_path(return_path)?;
    let scene = random_hex(16);
    let watch_key = random_hex(16);
    let now = state.clock.now_ms();
    let expires_at = now / 1000 + state.scene_ttl_secs;
    let (s, k) = (scene.clone(), sha256_hex(&watch_key));
    db::blocking(&state.db, move |conn| {
        repo::create(conn, &s, &k, &return_path, now, expires_at)
    })
    .await?;
    metrics::counter!("wxkit_login_scenes_total", "event" => "created").increment(1);
    Ok(NewScene {
        scene,
        watch_key,
        expires_at,
    })
}

/// A same-site path (`/…`, not `//host`), or 400.
pub fn safe_return_path(path: &str) -> Result<String, SceneError> {
    // The one return-path rule of /auth/wechat (wechat-oauth's, also used by logout).
    let ok = path.len() <= 512 && wechat_oauth::state::is_safe_return_path(path);
    if ok {
        Ok(path.to_owned())
    } else {
        Err(SceneError::InvalidReturnPath)
    }
}

/// The scene, or 404.
pub async fn load(state: &State, scene: &str) -> Result<SceneRow, SceneError> {
    if scene.is_empty() || scene.len() > 32 {
        return Err(SceneError::NotFound("no such login scene"));
    }
    let s = scene.to_owned();
    db::blocking(&state.db, move |conn| repo::get(conn, &s))
        .await?
        .ok_or(SceneError::NotFound(
            "no such login scene: it may have been cleaned up; reload the login page",
        ))
}

/// Whether the scene has expired at `now_ms` (a confirmed scene has done its job and never expires).
pub fn expired(row: &SceneRow, now_ms: i64) -> bool {
    row.status != SceneStatus::Confirmed && row.expires_at <= now_ms / 1000
}

/// Why a transition was refused, from the scene as it is now.
fn refusal(row: &SceneRow, user_id: i64, now_ms: i64) -> SceneError {
    if expired(row, now_ms) {
        return SceneError::Expired("this login code has expired: scan the new code on the website");
    }
    match row.status {
        SceneStatus::Confirmed => SceneError::Conflict {
            code: "already_confirmed",
            message: "this login was already confirmed",
        },
        SceneStatus::Cancelled => SceneError::Conflict {
            code: "cancelled",
            message: "this login was cancelled: scan the new code on the website",
        },
        SceneStatus::Scanned if row.user_id != Some(user_id) => SceneError::Conflict {
            code: "scanned_by_another",
            message: "someone else scanned this code first",
        },
        SceneStatus::Pending => SceneError::Conflict {
            code: "not_scanned",
            message: "scan the code before confirming",
        },
        _ => SceneError::Conflict {
            code: "conflict",
            message: "the login changed meanwhile: try again",
        },
    }
}

/// The JSON text frame of an event.
pub fn event_json(event: &str, extra: serde_json::Value) -> Arc<str> {
    let mut v = serde_json::json!({"event": event});
    if let (Some(map), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
        map.extend(extra);
    }
    Arc::from(v.to_string())
}

fn scanned_event(user: Option<&users::User>) -> Arc<str> {
    event_json(
        "scanned",
        serde_json::json!({
            "nickname": user.and_then(|u| u.nickname.clone()),
            "avatar_url": user.and_then(|u| u.avatar_url.clone()),
        }),
    )
}

/// The confirmed event carries who confirmed: the page asks "log in as …?" before it spends the ticket, so a
/// photographed code confirmed by another account does not silently log the watching browser in as that account.
fn confirmed_event(ticket: &str, ticket_expires_at: i64, user: Option<&users::User>) -> Arc<str> {
    event_json(
        "confirmed",
        serde_json::json!({
            "ticket": ticket,
            "ticket_expires_at": ticket_expires_at,
            "nickname": user.and_then(|u| u.nickname.clone()),
            "avatar_url": user.and_then(|u| u.avatar_url.clone()),
        }),
    )
}

/// Delivers `event` locally and, on PostgreSQL and MySQL, to the other instances (after the commit that caused it).
async fn publish(state: &State, scene: &str, event: Arc<str>) {
    state.login_hub.deliver(scene, event.clone());
    if state.backend.is_postgres() || state.backend.is_mysql() {
        let payload = state.login_hub.notification(scene, &event);
        let now = state.clock.now_ms();
        let sent = db::blocking(&state.db, move |conn| {
            if conn.is_mysql() {
                super::relay::publish(conn, &payload, now)
            } else {
                repo::notify(conn, super::hub::CHANNEL, &payload)
            }
        });
        if let Err(e) = sent.await {
            // The state is committed: a socket on another instance sees it when it (re)connects.
            tracing::warn!(error = %e, "could not notify other instances of a login event");
        }
    }
}

/// The mini program's user scanned the scene's code.
pub async fn scan(state: &State, scene: &str, user_id: i64) -> Result<(), SceneError> {
    let now = state.clock.now_ms();
    let s = scene.to_owned();
    let outcome = db::blocking(&state.db, move |conn| -> Result<_, DbError> {
        if repo::scan(conn, &s, user_id, now)? {
            Ok(Ok(users::user_by_id(conn, user_id)?))
        } else {
            Ok(Err(repo::get(conn, &s)?))
        }
    })
    .await?;
    match outcome {
        Ok(user) => {
            metrics::counter!("wxkit_login_scenes_total", "event" => "scanned").increment(1);
            publish(state, scene, scanned_event(user.as_ref())).await;
            Ok(())
        }
        Err(None) => Err(SceneError::NotFound("no such login scene")),
        Err(Some(row)) => Err(refusal(&row, user_id, now)),
    }
}

/// The user confirmed on the phone: the browser gets a one-time ticket over its socket.
pub async fn confirm(state: &State, scene: &str, user_id: i64) -> Result<(), SceneError> {
    let now = state.clock.now_ms();
    let ticket = random_hex(32);
    let ticket_expires_at = now / 1000 + TICKET_SECS;
    let (s, h) = (scene.to_owned(), sha256_hex(&ticket));
    let outcome = db::blocking(&state.db, move |conn| -> Result<_, DbError> {
        if repo::confirm(conn, &s, user_id, &h, ticket_expires_at, now)? {
            Ok(Ok(users::user_by_id(conn, user_id)?))
        } else {
            Ok(Err(repo::get(conn, &s)?))
        }
    })
    .await?;
    match outcome {
        Ok(user) => {
            metrics::counter!("wxkit_login_scenes_total", "event" => "confirmed").increment(1);
            publish(state, scene, confirmed_event(&ticket, ticket_expires_at, user.as_ref())).await;
            Ok(())
        }
        Err(None) => Err(SceneError::NotFound("no such login scene")),
        Err(Some(row)) => Err(refusal(&row, user_id, now)),
    }
}

/// The user declined on the phone.
pub async fn cancel(state: &State, scene: &str, user_id: i64) -> Result<(), SceneError> {
    let now = state.clock.now_ms();
    let s = scene.to_owned();
    let outcome = db::blocking(&state.db, move |conn| -> Result<_, DbError> {
        if repo::cancel(conn, &s, user_id, now)? {
            Ok(Ok(()))
        } else {
            Ok(Err(repo::get(conn, &s)?))
        }
    })
    .await?;
    match outcome {
        Ok(()) => {
            metrics::counter!("wxkit_login_scenes_total", "event" => "cancelled").increment(1);
            publish(state, scene, event_json("cancelled", serde_json::json!({}))).await;
            Ok(())
        }
        Err(None) => Err(SceneError::NotFound("no such login scene")),
        Err(Some(row)) => Err(refusal(&row, user_id, now)),
    }
}

/// The event that tells a (re)connecting socket where the scene stands. A confirmed scene whose ticket is unused
/// gets a fresh ticket (the socket proved the watch key); one whose ticket was used reports `used`.
pub async fn current_event(state: &State, scene: &str) -> Result<Arc<str>, SceneError> {
    let now = state.clock.now_ms();
    let s = scene.to_owned();
    let ticket = random_hex(32);
    let ticket_expires_at = now / 1000 + TICKET_SECS;
    let h = sha256_hex(&ticket);
    let found = db::blocking(&state.db, move |conn: &mut DbConnection| -> Result<_, DbError> {
        let Some(row) = repo::get(conn, &s)? else {
            return Ok(None);
        };
        let user = match row.user_id {
            Some(id) if matches!(row.status, SceneStatus::Scanned | SceneStatus::Confirmed) => {
                users::user_by_id(conn, id)?
            }
            _ => None,
        };
        let reissued =
            row.status == SceneStatus::Confirmed && repo::reissue_ticket(conn, &s, &h, ticket_expires_at, now)?;
        Ok(Some((row, user, reissued)))
    })
    .await?;
    let Some((row, user, reissued)) = found else {
        return Ok(event_json("expired", serde_json::json!({})));
    };
    Ok(if expired(&row, now) {
        event_json("expired", serde_json::json!({}))
    } else {
        match row.status {
            SceneStatus::Scanned => scanned_event(user.as_ref()),
            SceneStatus::Confirmed if reissued => confirmed_event(&ticket, ticket_expires_at, user.as_ref()),
            SceneStatus::Confirmed => event_json("confirmed", serde_json::json!({"used": true})),
            SceneStatus::Cancelled => event_json("cancelled", serde_json::json!({})),
            _ => event_json("waiting", serde_json::json!({"expires_at": row.expires_at})),
        }
    })
}

/// Exchanges a ticket (once, within its minute) for the user and the return path.
pub async fn take_ticket(state: &State, ticket: &str) -> Result<(users::User, String), SceneError> {
    if ticket.is_empty() || ticket.len() > 128 {
        return Err(SceneError::InvalidTicket);
    }
    let now = state.clock.now_ms();
    let h = sha256_hex(ticket);
    let taken = db::blocking(&state.db, move |conn| -> Result<_, DbError> {
        match repo::consume_ticket(conn, &h, now)? {
            Some((user_id, path)) => Ok(users::user_by_id(conn, user_id)?.map(|u| (u, path))),
            None => Ok(None),
        }
    })
    .await?;
    taken.ok_or(SceneError::InvalidTicket)
}
