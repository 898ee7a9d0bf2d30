//! The four stores over any [`Blocking`].

use crate::connection::{Blocking, StoreConnection};
use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;
use wechat_core::{AppId, Clock, StoreError, StoredToken, TokenKind, TokenStore};
use wechat_message::dedupe::DedupeStore;
use wechat_oauth::state::{StateError, StateStore};
use wechat_pay::v3::{CertificateStore, StoredCertificates};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// [`TokenStore`] in the `wechat_tokens` table: every process on the database shares one token per app and kind,
/// and the refresh lease is a conditional `UPDATE`, so of any number of instances one fetches from WeChat at a time.
/// Give it to `wechat_core::AccessTokenManager` (or `wechat::OfficialAccount::builder().token_store(..)`).
pub struct DieselTokenStore<B> {
    db: B,
}

impl<B> DieselTokenStore<B> {
    /// A store on `db` (an r2d2 pool, or your own [`Blocking`]).
    pub fn new(db: B) -> Self {
        Self { db }
    }
}

impl<B> fmt::Debug for DieselTokenStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselTokenStore").finish_non_exhaustive()
    }
}

impl<B: Blocking> DieselTokenStore<B> {
    async fn run<T, F>(&self, what: &'static str, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut B::Conn) -> diesel::QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.db.run(work).await.map_err(|e| StoreError::with_source(what, e))
    }
}

#[async_trait]
impl<B: Blocking> TokenStore for DieselTokenStore<B> {
    async fn load(&self, app_id: &AppId, kind: TokenKind) -> Result<Option<StoredToken>, StoreError> {
        let app = app_id.as_str().to_owned();
        let row = self
            .run("loading a token", move |c| c.load_token(&app, kind.as_str()))
            .await?;
        Ok(row.and_then(|(value, expires_at)| value.map(|value| StoredToken { value, expires_at })))
    }

    async fn save(&self, app_id: &AppId, kind: TokenKind, token: &StoredToken) -> Result<(), StoreError> {
        let (app, token) = (app_id.as_str().to_owned(), token.clone());
        self.run("saving a token", move |c| {
            c.save_token(&app, kind.as_str(), &token.value, token.expires_at, now_ms())
        })
        .await
    }

    async fn invalidate_if(&self, app_id: &AppId, kind: TokenKind, failed_value: &str) -> Result<bool, StoreError> {
        let (app, failed) = (app_id.as_str().to_owned(), failed_value.to_owned());
        self.run("invalidating a token", move |c| {
            c.invalidate_token_if(&app, kind.as_str(), &failed, now_ms())
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
        let (app, holder) = (app_id.as_str().to_owned(), holder.to_owned());
        self.run("taking the refresh lease", move |c| {
            c.try_lock_token(&app, kind.as_str(), &holder, now_ms, until_ms)
        })
        .await
    }

    async fn unlock(&self, app_id: &AppId, kind: TokenKind, holder: &str) -> Result<(), StoreError> {
        let (app, holder) = (app_id.as_str().to_owned(), holder.to_owned());
        self.run("releasing the refresh lease", move |c| {
            c.unlock_token(&app, kind.as_str(), &holder)
        })
        .await
    }
}

/// WeChat Pay v3 platform certificates ([`CertificateStore`]) in `server_secrets` under
/// `pay_v3_certificates:<mchid>`: one download serves every instance (they read the store before downloading).
/// Certificates are public; an unreadable entry counts as none (the next download replaces it).
pub struct DieselCertificateStore<B> {
    db: B,
}

impl<B> DieselCertificateStore<B> {
    /// A store on `db`.
    pub fn new(db: B) -> Self {
        Self { db }
    }
}

impl<B> fmt::Debug for DieselCertificateStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselCertificateStore").finish_non_exhaustive()
    }
}

fn certificates_key(mch_id: &str) -> String {
    format!("pay_v3_certificates:{mch_id}")
}

#[async_trait]
impl<B: Blocking> CertificateStore for DieselCertificateStore<B> {
    async fn load(&self, mch_id: &str) -> Result<Option<StoredCertificates>, StoreError> {
        let key = certificates_key(mch_id);
        let value = self
            .db
            .run(move |c| c.load_value(&key))
            .await
            .map_err(|e| StoreError::with_source("loading platform certificates", e))?;
        Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
    }

    async fn save(&self, mch_id: &str, certs: &StoredCertificates) -> Result<(), StoreError> {
        let key = certificates_key(mch_id);
        let value = serde_json::to_string(certs).map_err(|e| StoreError::with_source("encoding certificates", e))?;
        self.db
            .run(move |c| c.save_value(&key, &value))
            .await
            .map_err(|e| StoreError::with_source("saving platform certificates", e))
    }
}

/// Push de-duplication ([`DedupeStore`]) in `push_events`: a unique key, so of any number of instances receiving
/// one push (WeChat retries, several instances behind a balancer) one handles it. Call
/// [`forget_before`](DieselDedupeStore::forget_before) now and then (WeChat's retries end within 15 s).
pub struct DieselDedupeStore<B> {
    db: B,
}

impl<B> DieselDedupeStore<B> {
    /// A store on `db`.
    pub fn new(db: B) -> Self {
        Self { db }
    }
}

impl<B> fmt::Debug for DieselDedupeStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselDedupeStore").finish_non_exhaustive()
    }
}

impl<B: Blocking> DieselDedupeStore<B> {
    /// Forgets keys first seen before `before_ms`; returns how many.
    pub async fn forget_before(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.db
            .run(move |c| c.forget_seen(before_ms))
            .await
            .map_err(|e| StoreError::with_source("forgetting push keys", e))
    }
}

#[async_trait]
impl<B: Blocking> DedupeStore for DieselDedupeStore<B> {
    async fn first_seen(&self, key: &str, now_ms: i64) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.db
            .run(move |c| c.first_seen(&key, now_ms))
            .await
            .map_err(|e| StoreError::with_source("recording a push", e))
    }
}

/// Single-use OAuth states ([`StateStore`]) in `oauth_states`: a unique key, shared by every instance, so a state
/// replayed to any of them is refused. Expired nonces are forgotten as new ones arrive.
pub struct DieselStateStore<B> {
    db: B,
    clock: Option<Arc<dyn Clock>>,
}

impl<B> DieselStateStore<B> {
    /// A store on `db`, on the system clock.
    pub fn new(db: B) -> Self {
        Self { db, clock: None }
    }

    /// A store on `db` that tells expiry by `clock`.
    pub fn with_clock(db: B, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock: Some(clock) }
    }
}

impl<B> fmt::Debug for DieselStateStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselStateStore").finish_non_exhaustive()
    }
}

#[async_trait]
impl<B: Blocking> StateStore for DieselStateStore<B> {
    async fn consume(&self, nonce: &str, expires_at: i64) -> Result<bool, StateError> {
        let nonce = nonce.to_owned();
        let now_secs = self.clock.as_ref().map_or_else(now_ms, |c| c.now_ms()) / 1000;
        self.db
            .run(move |c| c.consume_state(&nonce, expires_at, now_secs))
            .await
            .map_err(|e| StateError::Store(e.to_string()))
    }
}
