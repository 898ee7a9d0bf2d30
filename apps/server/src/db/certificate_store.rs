//! WeChat Pay v3 platform certificates in the database: one download serves every instance on it (they read the
//! store before downloading). Certificates are public; they share the key-value table of server-wide settings.

use crate::db::schema::server_secrets;
use crate::db::{Db, DbConnection, DbError, blocking};
use async_trait::async_trait;
use diesel::prelude::*;
use std::fmt;
use wechat_core::StoreError;
use wechat_pay::v3::{CertificateStore, StoredCertificates};

/// The database-backed [`CertificateStore`].
#[derive(Clone)]
pub struct DbCertificateStore {
    pool: Db,
}

impl fmt::Debug for DbCertificateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbCertificateStore").finish_non_exhaustive()
    }
}

impl DbCertificateStore {
    /// A store on `pool`.
    pub fn new(pool: Db) -> Self {
        Self { pool }
    }
}

fn name(mch_id: &str) -> String {
    format!("pay_v3_certificates:{mch_id}")
}

fn upsert(conn: &mut DbConnection, name: &str, value: &str) -> Result<(), DbError> {
    let update = |conn: &mut DbConnection| {
        diesel::update(server_secrets::table.find(name))
            .set(server_secrets::value.eq(value))
            .execute(conn)
    };
    if update(conn)? > 0 {
        return Ok(());
    }
    match diesel::insert_into(server_secrets::table)
        .values((server_secrets::name.eq(name), server_secrets::value.eq(value)))
        .execute(conn)
    {
        Ok(_) => Ok(()),
        // Another instance inserted first: ours is as fresh, write it over.
        Err(e) if crate::db::is_unique_violation(&e) => update(conn).map(|_| ()).map_err(Into::into),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl CertificateStore for DbCertificateStore {
    async fn load(&self, mch_id: &str) -> Result<Option<StoredCertificates>, StoreError> {
        let name = name(mch_id);
        let value = blocking(&self.pool, move |conn| {
            Ok(server_secrets::table
                .find(&name)
                .select(server_secrets::value)
                .first::<String>(conn)
                .optional()?)
        })
        .await
        .map_err(|e| StoreError::with_source("loading platform certificates", e))?;
        // An unreadable entry is as good as none: the next download replaces it.
        Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
    }

    async fn save(&self, mch_id: &str, certs: &StoredCertificates) -> Result<(), StoreError> {
        let (name, value) = (
            name(mch_id),
            serde_json::to_string(certs).map_err(|e| StoreError::with_source("encoding certificates", e))?,
        );
        blocking(&self.pool, move |conn| upsert(conn, &name, &value))
            .await
            .map_err(|e| StoreError::with_source("saving platform certificates", e))
    }
}
