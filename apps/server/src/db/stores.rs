//! The shared stores (`wxkit-store-diesel`: tokens, certificates, push keys, OAuth states) on the server's database:
//! its connection type runs their statements, and its database threads run them off the async executor — with the
//! server's handling of dead connections (a connection that failed is discarded, see [`super::blocking`]).

use super::{Db, DbConnection, DbError, blocking};
use async_trait::async_trait;

store_diesel::impl_store_connection!(DbConnection, |c: &DbConnection| match c {
    DbConnection::Postgresql(_) => store_diesel::sql::POSTGRES,
    DbConnection::Sqlite(_) => store_diesel::sql::SQLITE,
    #[cfg(feature = "mysql")]
    DbConnection::Mysql(_) => store_diesel::sql::MYSQL,
});

#[async_trait]
impl store_diesel::Blocking for Db {
    type Conn = DbConnection;
    type Error = DbError;

    async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        blocking(self, move |conn| work(conn).map_err(DbError::Query)).await
    }
}
