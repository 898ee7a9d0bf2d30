//! The statements of the stores ([`StoreConnection`]) and how they reach a connection ([`Blocking`]).

use async_trait::async_trait;
use diesel::QueryResult;
use std::fmt;

/// The stores' statements on one connection. Implemented here for `PgConnection`, `SqliteConnection` and
/// `MysqlConnection` (features `postgres`, `sqlite`, `mysql`); for any other Diesel connection type (a
/// `MultiConnection` enum of your own) implement it with [`impl_store_connection!`](crate::impl_store_connection).
///
/// Times: `now_ms` Unix milliseconds, token expiry and OAuth state expiry Unix seconds.
pub trait StoreConnection: Send + 'static {
    /// Creates the store's tables when missing (see [`sql`](crate::sql)).
    fn create_store_tables(&mut self) -> QueryResult<()>;
    /// The stored token of `(app_id, kind)`: its value (`None` once invalidated) and expiry.
    fn load_token(&mut self, app_id: &str, kind: &str) -> QueryResult<Option<(Option<String>, i64)>>;
    /// Stores a token.
    fn save_token(&mut self, app_id: &str, kind: &str, value: &str, expires_at: i64, now_ms: i64) -> QueryResult<()>;
    /// Clears the token if it is still `failed`; true if it was.
    fn invalidate_token_if(&mut self, app_id: &str, kind: &str, failed: &str, now_ms: i64) -> QueryResult<bool>;
    /// Takes the refresh lease for `holder` until `until_ms` if it is free, expired at `now_ms`, or already
    /// `holder`'s; true if taken.
    fn try_lock_token(
        &mut self,
        app_id: &str,
        kind: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> QueryResult<bool>;
    /// Releases the lease if `holder` holds it.
    fn unlock_token(&mut self, app_id: &str, kind: &str, holder: &str) -> QueryResult<()>;
    /// A value of `server_secrets`.
    fn load_value(&mut self, name: &str) -> QueryResult<Option<String>>;
    /// Writes a value of `server_secrets` (insert or replace).
    fn save_value(&mut self, name: &str, value: &str) -> QueryResult<()>;
    /// Records a push key; true the first time.
    fn first_seen(&mut self, key: &str, now_ms: i64) -> QueryResult<bool>;
    /// Forgets push keys first seen before `before_ms`; how many.
    fn forget_seen(&mut self, before_ms: i64) -> QueryResult<usize>;
    /// Records an OAuth state nonce as used (forgetting those expired a minute before `now_secs`); false if it was
    /// used before.
    fn consume_state(&mut self, nonce: &str, expires_at: i64, now_secs: i64) -> QueryResult<bool>;
}

/// Implements [`StoreConnection`] for a Diesel connection type with the store's portable statements (no upsert
/// dialects: conditional `UPDATE`s, and `INSERT`s whose duplicate-key error means "already there").
/// `$schema_sql` is a `fn(&Self) -> &'static str` giving the [`sql`](crate::sql) text for the connection.
///
/// ```
/// # #[cfg(all(feature = "postgres", feature = "sqlite"))]
/// # mod demo {
/// #[derive(diesel::MultiConnection)]
/// pub enum AnyConnection {
///     Postgresql(diesel::PgConnection),
///     Sqlite(diesel::SqliteConnection),
/// }
///
/// wxkit_store_diesel::impl_store_connection!(AnyConnection, |c: &AnyConnection| match c {
///     AnyConnection::Postgresql(_) => wxkit_store_diesel::sql::POSTGRES,
///     AnyConnection::Sqlite(_) => wxkit_store_diesel::sql::SQLITE,
/// });
///
/// // Now `DieselTokenStore` & co. run on it, through a `Blocking` over your pool of `AnyConnection`s.
/// fn is_store_connection<C: wxkit_store_diesel::StoreConnection>() {}
/// pub fn check() {
///     is_store_connection::<AnyConnection>();
/// }
/// # }
/// ```
#[macro_export]
macro_rules! impl_store_connection {
    ($conn:ty, $schema_sql:expr) => {
        impl $crate::StoreConnection for $conn {
            fn create_store_tables(&mut self) -> $crate::__private::diesel::QueryResult<()> {
                use $crate::__private::diesel::connection::SimpleConnection;
                let pick: fn(&$conn) -> &'static str = $schema_sql;
                let sql = pick(self);
                self.batch_execute(sql)
            }

            fn load_token(
                &mut self,
                app_id: &str,
                kind: &str,
            ) -> $crate::__private::diesel::QueryResult<Option<(Option<String>, i64)>> {
                use $crate::__private::diesel::prelude::*;
                use $crate::schema::wechat_tokens::dsl as t;
                t::wechat_tokens
                    .filter(t::app_id.eq(app_id).and(t::kind.eq(kind)))
                    .select((t::value, t::expires_at))
                    .first::<(Option<String>, i64)>(self)
                    .optional()
            }

            fn save_token(
                &mut self,
                app_id: &str,
                kind: &str,
                value: &str,
                expires_at: i64,
                now_ms: i64,
            ) -> $crate::__private::diesel::QueryResult<()> {
                use $crate::__private::diesel::prelude::*;
                use $crate::schema::wechat_tokens::dsl as t;
                let write = |c: &mut Self| {
                    $crate::__private::diesel::update(
                        t::wechat_tokens.filter(t::app_id.eq(app_id).and(t::kind.eq(kind))),
                    )
                    .set((
                        t::value.eq(Some(value)),
                        t::expires_at.eq(expires_at),
                        t::updated_at.eq(now_ms),
                    ))
                    .execute(c)
                };
                if write(self)? == 0 {
                    $crate::__insert_token_row!(self, app_id, kind, now_ms)?;
                    write(self)?;
                }
                Ok(())
            }

            fn invalidate_token_if(
                &mut self,
                app_id: &str,
                kind: &str,
                failed: &str,
                now_ms: i64,
            ) -> $crate::__private::diesel::QueryResult<bool> {
                use $crate::__private::diesel::prelude::*;
                use $crate::schema::wechat_tokens::dsl as t;
                let n = $crate::__private::diesel::update(
                    t::wechat_tokens.filter(
                        t::app_id
                            .eq(app_id)
                            .and(t::kind.eq(kind))
                            .and(t::value.eq(failed)),
                    ),
                )
                .set((
                    t::value.eq(None::<String>),
                    t::expires_at.eq(0i64),
                    t::updated_at.eq(now_ms),
                ))
                .execute(self)?;
                Ok(n == 1)
            }

            fn try_lock_token(
                &mut self,
                app_id: &str,
                kind: &str,
                holder: &str,
                now_ms: i64,
                until_ms: i64,
            ) -> $crate::__private::diesel::QueryResult<bool> {
                use $crate::__private::diesel::prelude::*;
                use $crate::schema::wechat_tokens::dsl as t;
                // One atomic conditional UPDATE: free, expired, or already ours. (MySQL counts a matched row with
                // unchanged values too: Diesel connects with CLIENT_FOUND_ROWS.)
                let take = |c: &mut Self| {
                    $crate::__private::diesel::update(
                        t::wechat_tokens.filter(
                            t::app_id
                                .eq(app_id)
                                .and(t::kind.eq(kind))
                                .and(t::lock_until.lt(now_ms).or(t::lock_holder.eq(holder))),
                        ),
                    )
                    .set((t::lock_holder.eq(Some(holder)), t::lock_until.eq(until_ms)))
                    .execute(c)
                };
                if take(self)? == 1 {
                    return Ok(true);
                }
                // No row yet (the app's first token): make it, then race for the lease like everyone else.
                if $crate::__insert_token_row!(self, app_id, kind, now_ms)? {
                    return Ok(take(self)? == 1);
                }
                Ok(false)
            }

            fn unlock_token(
                &mut self,
                app_id: &str,
                kind: &str,
                holder: &str,
            ) -> $crate::__private::diesel::QueryResult<()> {
                use $crate::__private::diesel::prelude::*;
                use $crate::schema::wechat_tokens::dsl as t;
                $crate::__private::diesel::update(
                    t::wechat_tokens.filter(
                        t::app_id
                            .eq(app_id)
                            .and(t::kind.eq(kind))
                            .and(t::lock_holder.eq(holder)),
                    ),
                )
                .set((t::lock_holder.eq(None::<String>), t::lock_until.eq(0i64)))
                .execute(self)?;
                Ok(())
            }

            fn load_value(&mut self, name: &str) -> $crate::__private::diesel::QueryResult<Option<String>> {
                use $crate::__private::diesel::prelude::*;
                use $crate::schema::server_secrets;
                server_secrets::table
                    .find(name)
                    .select(server_secrets::value)
                    .first::<String>(self)
                    .optional()
            }

            fn save_value(&mut self, name: &str, value: &str) -> $crate::__private::diesel::QueryResult<()> {
                use $crate::__private::diesel::prelude::*;
                use $crate::schema::server_secrets;
                let update = |c: &mut Self| {
                    $crate::__private::diesel::update(server_secrets::table.find(name))
                        .set(server_secrets::value.eq(value))
                        .execute(c)
                };
                if update(self)? > 0 {
                    return Ok(());
                }
                match $crate::__private::diesel::insert_into(server_secrets::table)
                    .values((server_secrets::name.eq(name), server_secrets::value.eq(value)))
                    .execute(self)
                {
                    Ok(_) => Ok(()),
                    // Another instance inserted first: ours is as fresh, write it over.
                    Err(e) if $crate::__is_unique_violation(&e) => update(self).map(|_| ()),
                    Err(e) => Err(e),
                }
            }

            fn first_seen(&mut self, key: &str, now_ms: i64) -> $crate::__private::diesel::QueryResult<bool> {
                use $crate::__private::diesel::prelude::*;
                use $crate::schema::push_events;
                match $crate::__private::diesel::insert_into(push_events::table)
                    .values((
                        push_events::dedupe_key.eq(key),
                        push_events::created_at.eq(now_ms),
                    ))
                    .execute(self)
                {
                    Ok(_) => Ok(true),
                    Err(e) if $crate::__is_unique_violation(&e) => Ok(false),
                    Err(e) => Err(e),
                }
            }

            fn forget_seen(&mut self, before_ms: i64) -> $crate::__private::diesel::QueryResult<usize> {
                use $crate::__private::diesel::prelude::*;
                use $crate::schema::push_events;
                $crate::__private::diesel::delete(push_events::table.filter(push_events::created_at.lt(before_ms)))
                    .execute(self)
            }

            fn consume_state(
                &mut self,
                nonce: &str,
                expires_at: i64,
                now_secs: i64,
            ) -> $crate::__private::diesel::QueryResult<bool> {
                use $crate::__private::diesel::prelude::*;
                use $crate::schema::oauth_states;
                $crate::__private::diesel::delete(
                    oauth_states::table.filter(oauth_states::expires_at.lt(now_secs - 60)),
                )
                .execute(self)?;
                match $crate::__private::diesel::insert_into(oauth_states::table)
                    .values((
                        oauth_states::nonce.eq(nonce),
                        oauth_states::expires_at.eq(expires_at),
                    ))
                    .execute(self)
                {
                    Ok(_) => Ok(true),
                    Err(e) if $crate::__is_unique_violation(&e) => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    };
}

/// Inserts the empty row of `(app_id, kind)`; `Ok(false)` when it was there already (another caller made it).
#[doc(hidden)]
#[macro_export]
macro_rules! __insert_token_row {
    ($conn:expr, $app_id:expr, $kind:expr, $now_ms:expr) => {{
        use $crate::__private::diesel::prelude::*;
        use $crate::schema::wechat_tokens::dsl as t;
        match $crate::__private::diesel::insert_into(t::wechat_tokens)
            .values((t::app_id.eq($app_id), t::kind.eq($kind), t::updated_at.eq($now_ms)))
            .execute($conn)
        {
            Ok(_) => Ok::<bool, $crate::__private::diesel::result::Error>(true),
            Err(e) if $crate::__is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }};
}

/// Whether an insert failed on a unique key.
#[doc(hidden)]
pub fn __is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(feature = "postgres")]
impl_store_connection!(diesel::PgConnection, |_| crate::sql::POSTGRES);
#[cfg(feature = "sqlite")]
impl_store_connection!(diesel::SqliteConnection, |_| crate::sql::SQLITE);
#[cfg(feature = "mysql")]
impl_store_connection!(diesel::MysqlConnection, |_| crate::sql::MYSQL);

/// Runs a store's statements on a connection, off the async executor. Implemented for an r2d2 pool of Diesel
/// connections (feature `r2d2`); a service with its own pool implements it over that pool (the wxkit server runs
/// them on its database threads).
#[async_trait]
pub trait Blocking: Send + Sync + fmt::Debug + 'static {
    /// The connection the statements run on.
    type Conn: StoreConnection;
    /// The error of a failed run (a pool that could hand out nothing, a failed statement).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Runs `work` on a connection.
    async fn run<T, F>(&self, work: F) -> Result<T, Self::Error>
    where
        F: FnOnce(&mut Self::Conn) -> QueryResult<T> + Send + 'static,
        T: Send + 'static;
}

#[cfg(feature = "r2d2")]
#[async_trait]
impl<C> Blocking for diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<C>>
where
    C: StoreConnection + diesel::r2d2::R2D2Connection,
{
    type Conn = C;
    type Error = crate::PoolError;

    async fn run<T, F>(&self, work: F) -> Result<T, crate::PoolError>
    where
        F: FnOnce(&mut C) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| crate::PoolError::Pool(e.to_string()))?;
            work(&mut conn).map_err(crate::PoolError::Query)
        })
        .await
        .map_err(|e| crate::PoolError::Task(e.to_string()))?
    }
}
