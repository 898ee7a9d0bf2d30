//! Scan-to-login events across instances on MySQL, which has no `LISTEN`/`NOTIFY`: an instance appends each event
//! to `login_events` after the commit that caused it ([`publish`]), and every instance reads the rows it has not
//! seen on a connection of its own — every [`POLL_WATCHED`] while any socket here watches a scene, every
//! [`POLL_IDLE`] otherwise — and hands other instances' events to the [`LoginHub`] as PostgreSQL's listener does.
//!
//! Auto-increment ids are handed out at insert and become visible at commit, so a row with a smaller id can appear
//! after a larger one was read. The reader therefore keeps its cursor at the end of the unbroken run of ids it has
//! seen and re-reads past a gap until the gap fills or is [`GAP_PATIENCE`] old (an insert that failed leaves a
//! gap for good); every row is delivered once, when first seen.

use super::hub::LoginHub;
use crate::db::schema::login_events;
use crate::db::{Backend, DbConnection, DbError};
use diesel::prelude::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How often the relay reads while sockets here watch scenes (the cross-instance latency it adds, at most).
pub const POLL_WATCHED: Duration = Duration::from_millis(5);
/// How often it reads while none do (it keeps its cursor current).
pub const POLL_IDLE: Duration = Duration::from_millis(250);
/// How long a gap in the ids is waited for before it is taken as an insert that never committed.
pub const GAP_PATIENCE: Duration = Duration::from_secs(2);
/// How long rows are kept.
pub const KEEP_MS: i64 = 60_000;
/// Rows read per poll at most.
const BATCH: i64 = 2_000;

/// Appends an event (a [`LoginHub::notification`] payload) for the other instances.
pub fn publish(conn: &mut DbConnection, payload: &str, now_ms: i64) -> Result<(), DbError> {
    diesel::insert_into(login_events::table)
        .values((login_events::payload.eq(payload), login_events::created_at.eq(now_ms)))
        .execute(conn)?;
    Ok(())
}

/// Deletes rows older than [`KEEP_MS`].
pub fn prune(conn: &mut DbConnection, now_ms: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(login_events::table.filter(login_events::created_at.lt(now_ms - KEEP_MS))).execute(conn)?)
}

/// Where a reader stands: every id up to `cursor` seen (or given up on), and the ids seen beyond it.
#[derive(Debug)]
pub struct Cursor {
    cursor: i64,
    step: i64,
    ahead: BTreeSet<i64>,
    gap_since: Option<Instant>,
}

impl Cursor {
    /// A reader that has seen everything up to `cursor`; ids go up by `step` (`auto_increment_increment`).
    pub fn new(cursor: i64, step: i64) -> Cursor {
        Cursor {
            cursor,
            step: step.max(1),
            ahead: BTreeSet::new(),
            gap_since: None,
        }
    }

    /// Ids above this are read on the next poll.
    pub fn low(&self) -> i64 {
        self.cursor
    }

    /// Records a row read at `now`; true the first time its id is seen (deliver it).
    pub fn see(&mut self, id: i64) -> bool {
        id > self.cursor && self.ahead.insert(id)
    }

    /// Moves the cursor over the unbroken run of seen ids, and over a gap that has waited [`GAP_PATIENCE`].
    pub fn advance(&mut self, now: Instant) {
        loop {
            if self.ahead.remove(&(self.cursor + self.step)) {
                self.cursor += self.step;
                self.gap_since = None;
                continue;
            }
            let Some(&next) = self.ahead.first() else {
                self.gap_since = None;
                return;
            };
            let since = *self.gap_since.get_or_insert(now);
            if now.saturating_duration_since(since) < GAP_PATIENCE {
                return;
            }
            // The missing ids never committed: skip to just before the next seen one.
            self.cursor = next - self.step;
            self.gap_since = None;
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Number {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn start(conn: &mut DbConnection) -> Result<Cursor, DbError> {
    let last: Option<i64> = login_events::table
        .select(diesel::dsl::max(login_events::id))
        .first(conn)?;
    let step = diesel::sql_query("SELECT CAST(@@auto_increment_increment AS SIGNED) AS n")
        .get_result::<Number>(conn)
        .map(|s| s.n)
        .unwrap_or(1);
    Ok(Cursor::new(last.unwrap_or(0), step))
}

fn read(conn: &mut DbConnection, low: i64) -> Result<Vec<(i64, String)>, DbError> {
    Ok(login_events::table
        .filter(login_events::id.gt(low))
        .order(login_events::id)
        .select((login_events::id, login_events::payload))
        .limit(BATCH)
        .load(conn)?)
}

impl LoginHub {
    /// Relays other instances' events from `login_events` until dropped (reconnecting with backoff): the MySQL
    /// counterpart of [`LoginHub::listener`], a background job.
    pub fn relay(&self, backend: Backend) -> impl std::future::Future<Output = ()> + Send + 'static {
        let hub = self.clone();
        async move {
            let mut delay = Duration::from_millis(200);
            let mut first = true;
            loop {
                if let Err(e) = hub.relay_once(&backend, &mut first).await {
                    tracing::warn!(error = %e, "login relay failed; reconnecting");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }

    async fn relay_once(&self, backend: &Backend, first: &mut bool) -> Result<(), DbError> {
        let b = backend.clone();
        let (conn, cursor) = tokio::task::spawn_blocking(move || -> Result<_, DbError> {
            let mut conn = b.establish()?;
            let cursor = start(&mut conn)?;
            Ok((conn, cursor))
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))??;
        if !std::mem::take(first) {
            // Reconnected: whatever was published while we were away is in the database.
            self.resync_all();
        }
        self.set_listening(true);
        let result = self.relay_loop(conn, cursor).await;
        self.set_listening(false);
        result
    }

    async fn relay_loop(&self, mut conn: DbConnection, mut cursor: Cursor) -> Result<(), DbError> {
        loop {
            let wait = if self.watched() > 0 { POLL_WATCHED } else { POLL_IDLE };
            tokio::time::sleep(wait).await;
            let low = cursor.low();
            let (back, rows) = tokio::task::spawn_blocking(move || {
                let rows = read(&mut conn, low);
                (conn, rows)
            })
            .await
            .map_err(|e| DbError::Task(e.to_string()))?;
            conn = back;
            for (id, payload) in rows? {
                if cursor.see(id) {
                    self.on_notification(&payload);
                }
            }
            cursor.advance(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_waits_for_a_gap_then_gives_up_on_it() {
        let t0 = Instant::now();
        let mut c = Cursor::new(10, 1);
        assert!(c.see(11) && c.see(13));
        assert!(!c.see(11), "each row is delivered once");
        c.advance(t0);
        assert_eq!(c.low(), 11, "12 is not visible yet: 13 is re-read until it is");
        assert!(!c.see(13));
        assert!(c.see(12), "the late commit is delivered");
        c.advance(t0);
        assert_eq!(c.low(), 13);
        // A gap that never fills (a failed insert) is skipped after the patience.
        assert!(c.see(15));
        c.advance(t0);
        assert_eq!(c.low(), 13);
        c.advance(t0 + GAP_PATIENCE);
        assert_eq!(c.low(), 15);
        assert!(!c.see(14), "a row below the cursor is never delivered twice or late");
    }

    #[test]
    fn the_cursor_steps_by_the_servers_increment() {
        let mut c = Cursor::new(1, 2);
        assert!(c.see(3) && c.see(5));
        c.advance(Instant::now());
        assert_eq!(c.low(), 5);
    }
}
