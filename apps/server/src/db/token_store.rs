//! [`TokenStore`] on the database: every server instance on one database shares one token per app, and the
//! refresh lease is a conditional UPDATE, so only one instance talks to WeChat at a time.

use super::schema::wechat_tokens::dsl as t;
use super::{Db, DbConnection, DbError, blocking};
use async_trait::async_trait;
use diesel::prelude::*;
use std::fmt;
use wechat_core::{AppId, StoreError, StoredToken, TokenKind, TokenStore};

/// The database-backed token store.
#[derive(Clone)]
pub struct DbTokenStore {
    pool: Db,
}

impl fmt::Debug for DbTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbTokenStore").finish_non_exhaustive()
    }
}

impl DbTokenStore {
    /// A store on `pool`.
    pub fn new(pool: Db) -> Self {
        Self { pool }
    }

    async fn run<T, F>(&self, what: &'static str, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        blocking(&self.pool, work)
            .await
            .map_err(|e| StoreError::with_source(what, e))
    }
}

use crate::platform::clock::now_ms;

/// Makes sure the row exists so that the lease can be taken with a conditional UPDATE.
fn ensure_row(conn: &mut DbConnection, app_id: &str, kind: &str) -> Result<(), DbError> {
    let row = (t::app_id.eq(app_id), t::kind.eq(kind), t::updated_at.eq(now_ms()));
    // Upserts differ per backend, so match on the variant.
    match conn {
        DbConnection::Postgresql(pg) => {
            diesel::insert_into(t::wechat_tokens)
                .values(row)
                .on_conflict_do_nothing()
                .execute(pg)?;
        }
        DbConnection::Sqlite(lite) => {
            diesel::insert_or_ignore_into(t::wechat_tokens)
                .values(row)
                .execute(lite)?;
        }
    }
    Ok(())
}

#[async_trait]
impl TokenStore for DbTokenStore {
    async fn load(&self, app_id: &AppId, kind: TokenKind) -> Result<Option<StoredToken>, StoreError> {
        let app = app_id.as_str().to_owned();
        self.run("loading a token", move |conn| {
            let row = t::wechat_tokens
                .filter(t::app_id.eq(&app).and(t::kind.eq(kind.as_str())))
                .select((t::value, t::expires_at))
                .first::<(Option<String>, i64)>(conn)
                .optional()?;
            Ok(row.and_then(|(value, expires_at)| value.map(|value| StoredToken { value, expires_at })))
        })
        .await
    }

    async fn save(&self, app_id: &AppId, kind: TokenKind, token: &StoredToken) -> Result<(), StoreError> {
        let app = app_id.as_str().to_owned();
        let token = token.clone();
        self.run("saving a token", move |conn| {
            ensure_row(conn, &app, kind.as_str())?;
            diesel::update(t::wechat_tokens.filter(t::app_id.eq(&app).and(t::kind.eq(kind.as_str()))))
                .set((
                    t::value.eq(Some(token.value)),
                    t::expires_at.eq(token.expires_at),
                    t::updated_at.eq(now_ms()),
                ))
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn invalidate_if(&self, app_id: &AppId, kind: TokenKind, failed_value: &str) -> Result<bool, StoreError> {
        let app = app_id.as_str().to_owned();
        let failed = failed_value.to_owned();
        self.run("invalidating a token", move |conn| {
            let n = diesel::update(
                t::wechat_tokens.filter(
                    t::app_id
                        .eq(&app)
                        .and(t::kind.eq(kind.as_str()))
                        .and(t::value.eq(&failed)),
                ),
            )
            .set((
                t::value.eq(None::<String>),
                t::expires_at.eq(0),
                t::updated_at.eq(now_ms()),
            ))
            .execute(conn)?;
            Ok(n == 1)
        })
        .await
    }

    async fn try_lock(
        &self,
        app_id: &AppId,
        kind: TokenKind,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let app = app_id.as_str().to_owned();
        let holder = holder.to_owned();
        self.run("taking the refresh lease", move |conn| {
            ensure_row(conn, &app, kind.as_str())?;
            // One atomic conditional UPDATE: free, expired, or already ours.
            let n = diesel::update(
                t::wechat_tokens.filter(
                    t::app_id
                        .eq(&app)
                        .and(t::kind.eq(kind.as_str()))
                        .and(t::lock_until.lt(now_ms).or(t::lock_holder.eq(&holder))),
                ),
            )
            .set((t::lock_holder.eq(Some(&holder)), t::lock_until.eq(until_ms)))
            .execute(conn)?;
            Ok(n == 1)
        })
        .await
    }

    async fn unlock(&self, app_id: &AppId, kind: TokenKind, holder: &str) -> Result<(), StoreError> {
        let app = app_id.as_str().to_owned();
        let holder = holder.to_owned();
        self.run("releasing the refresh lease", move |conn| {
            diesel::update(
                t::wechat_tokens.filter(
                    t::app_id
                        .eq(&app)
                        .and(t::kind.eq(kind.as_str()))
                        .and(t::lock_holder.eq(&holder)),
                ),
            )
            .set((t::lock_holder.eq(None::<String>), t::lock_until.eq(0)))
            .execute(conn)?;
            Ok(())
        })
        .await
    }
}
