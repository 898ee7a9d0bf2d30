//! The access-token manager: one shared token (and jsapi / wx_card tickets) per app, refreshed by one caller at a
//! time, ahead of expiry, and invalidated only when the store still holds the token that failed.

use crate::client::WechatClient;
use crate::credentials::{AccessToken, AppId, AppSecret, Ticket};
use crate::error::{Error, Result, StoreError};
use crate::request::{ApiRequest, GetAccessToken, GetStableAccessToken, GetTicket};
use async_trait::async_trait;
use rand::Rng;
use rand::distr::Alphanumeric;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What is cached: the basic access token or one of the tickets derived from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TokenKind {
    /// The basic `access_token` (`/cgi-bin/token` or `/cgi-bin/stable_token`).
    AccessToken,
    /// The JS-SDK `jsapi_ticket` (`getticket?type=jsapi`).
    JsapiTicket,
    /// The card `api_ticket` (`getticket?type=wx_card`).
    WxCardTicket,
}

impl TokenKind {
    /// All kinds.
    pub const ALL: [TokenKind; 3] = [TokenKind::AccessToken, TokenKind::JsapiTicket, TokenKind::WxCardTicket];

    /// The stable name used as a storage key.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::AccessToken => "access_token",
            TokenKind::JsapiTicket => "jsapi_ticket",
            TokenKind::WxCardTicket => "wx_card_ticket",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    fn index(self) -> usize {
        match self {
            TokenKind::AccessToken => 0,
            TokenKind::JsapiTicket => 1,
            TokenKind::WxCardTicket => 2,
        }
    }

    fn ticket_type(self) -> Option<&'static str> {
        match self {
            TokenKind::AccessToken => None,
            TokenKind::JsapiTicket => Some("jsapi"),
            TokenKind::WxCardTicket => Some("wx_card"),
        }
    }
}

/// A cached token or ticket with its absolute expiry.
#[derive(Clone)]
pub struct StoredToken {
    /// The token value. Secret: never logged.
    pub value: String,
    /// Expiry as Unix time in seconds.
    pub expires_at: i64,
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("value", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where tokens live, shared by every manager (and every server instance) of one app.
///
/// The crate ships [`MemoryTokenStore`]; the wxkit server implements this trait on its database so that several
/// instances share one token and only one of them refreshes at a time.
#[async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The stored token, if any (expired or not; the manager decides).
    async fn load(&self, app_id: &AppId, kind: TokenKind) -> Result<Option<StoredToken>, StoreError>;

    /// Stores a freshly fetched token, replacing any previous one.
    async fn save(&self, app_id: &AppId, kind: TokenKind, token: &StoredToken) -> Result<(), StoreError>;

    /// Removes the stored token **only if** it is still `failed_value`; returns whether it did. A caller holding a
    /// token that another caller has already replaced must not throw away the new one.
    async fn invalidate_if(&self, app_id: &AppId, kind: TokenKind, failed_value: &str) -> Result<bool, StoreError>;

    /// Takes the refresh lease for `(app_id, kind)` until `until_ms` (Unix milliseconds) if nobody else holds an
    /// unexpired one (`now_ms` is the caller's clock). Returns whether `holder` now holds it. Re-entrant for the
    /// same holder.
    async fn try_lock(
        &self,
        app_id: &AppId,
        kind: TokenKind,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Releases the lease if `holder` holds it.
    async fn unlock(&self, app_id: &AppId, kind: TokenKind, holder: &str) -> Result<(), StoreError>;
}

#[derive(Default)]
struct MemoryEntry {
    token: Option<StoredToken>,
    lock: Option<(String, i64)>,
}

/// An in-process [`TokenStore`]: right for one process, or for tests.
#[derive(Default)]
pub struct MemoryTokenStore {
    entries: Mutex<HashMap<(AppId, TokenKind), MemoryEntry>>,
}

impl fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTokenStore").finish_non_exhaustive()
    }
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_entry<R>(&self, app_id: &AppId, kind: TokenKind, f: impl FnOnce(&mut MemoryEntry) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-update of a cache entry; the data is still a
        // valid cache, so keep serving it.
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        f(entries.entry((app_id.clone(), kind)).or_default())
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self, app_id: &AppId, kind: TokenKind) -> Result<Option<StoredToken>, StoreError> {
        Ok(self.with_entry(app_id, kind, |e| e.token.clone()))
    }

    async fn save(&self, app_id: &AppId, kind: TokenKind, token: &StoredToken) -> Result<(), StoreError> {
        self.with_entry(app_id, kind, |e| e.token = Some(token.clone()));
        Ok(())
    }

    async fn invalidate_if(&self, app_id: &AppId, kind: TokenKind, failed_value: &str) -> Result<bool, StoreError> {
        Ok(self.with_entry(app_id, kind, |e| match &e.token {
            Some(t) if t.value == failed_value => {
                e.token = None;
                true
            }
            _ => false,
        }))
    }

    async fn try_lock(
        &self,
        app_id: &AppId,
        kind: TokenKind,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.with_entry(app_id, kind, |e| match &e.lock {
            Some((h, until)) if h != holder && *until > now_ms => false,
            _ => {
                e.lock = Some((holder.to_owned(), until_ms));
                true
            }
        }))
    }

    async fn unlock(&self, app_id: &AppId, kind: TokenKind, holder: &str) -> Result<(), StoreError> {
        self.with_entry(app_id, kind, |e| {
            if matches!(&e.lock, Some((h, _)) if h == holder) {
                e.lock = None;
            }
        });
        Ok(())
    }
}

pub use crate::clock::{Clock, SystemClock};

/// How the basic access token is fetched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenMode {
    /// `GET /cgi-bin/token`: each fetch replaces the previous token (which stays valid 5 more minutes).
    #[default]
    Classic,
    /// `POST /cgi-bin/stable_token` with `force_refresh=false`: repeat fetches return the same token, so independent
    /// fetchers do not knock each other out. Isolated from the classic token.
    Stable,
}

/// Tuning knobs of the [`AccessTokenManager`]: the defaults, adjusted with the setters.
///
/// ```
/// use wechat_core::{TokenManagerOptions, TokenMode};
/// let options = TokenManagerOptions::default().mode(TokenMode::Stable);
/// assert_eq!(options.mode, TokenMode::Stable);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TokenManagerOptions {
    /// How the access token is fetched.
    pub mode: TokenMode,
    /// Refresh this long before expiry (default 5 minutes, which is also WeChat's overlap window).
    pub refresh_ahead: Duration,
    /// How long a refresh lease is held at most (a crashed refresher blocks others no longer than this).
    pub lock_lease: Duration,
    /// How often a caller waiting on another refresher looks at the store again.
    pub poll_interval: Duration,
}

impl Default for TokenManagerOptions {
    fn default() -> Self {
        Self {
            mode: TokenMode::Classic,
            refresh_ahead: Duration::from_secs(300),
            lock_lease: Duration::from_secs(15),
            poll_interval: Duration::from_millis(20),
        }
    }
}

impl TokenManagerOptions {
    /// How the access token is fetched.
    pub fn mode(mut self, mode: TokenMode) -> Self {
        self.mode = mode;
        self
    }

    /// Refresh this long before expiry.
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.refresh_ahead = ahead;
        self
    }

    /// Hold a refresh lease at most this long.
    pub fn lock_lease(mut self, lease: Duration) -> Self {
        self.lock_lease = lease;
        self
    }

    /// Look at the store this often while another process refreshes.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }
}

struct Inner {
    client: WechatClient,
    app_id: AppId,
    secret: AppSecret,
    store: Arc<dyn TokenStore>,
    options: TokenManagerOptions,
    clock: Arc<dyn Clock>,
    holder: String,
    // In-process single flight: callers of one manager queue here, so only one of them talks to the store's lease
    // and to WeChat. The store's lease then does the same across processes.
    flights: [tokio::sync::Mutex<()>; 3],
    // Copy of the store's tokens, so the hot path is a memory read rather than a store round trip.
    local: Mutex<[Option<StoredToken>; 3]>,
}

/// Fetches, caches and refreshes an app's access token and tickets.
///
/// * **Single flight**: N concurrent callers on a cold or expiring cache cause one upstream call — within a process
///   through an async mutex, across processes through the [`TokenStore`]'s lease, with a re-check after acquiring.
/// * **Refresh ahead** of expiry; while a refresh fails, a still-valid token keeps being served.
/// * **Compare-and-invalidate**: on 40001/40014/42001, [`call`](Self::call) drops the token only if the store still
///   holds the one that failed, refreshes once and retries the call once.
/// * The same machinery caches the `jsapi` and `wx_card` tickets.
///
/// ```no_run
/// use std::sync::Arc;
/// use wechat_core::{AccessTokenManager, AppId, AppSecret, Endpoints, MemoryTokenStore, WechatClient};
///
/// # async fn demo() -> wechat_core::Result<()> {
/// let client = WechatClient::with_default_transport()?
///     .with_endpoints(Endpoints::single("http://127.0.0.1:9000")?); // the simulator
/// let tokens = AccessTokenManager::new(
///     client.clone(),
///     AppId::new("wx1234567890abcdef"),
///     AppSecret::new("app-secret"),
///     Arc::new(MemoryTokenStore::new()),
/// );
/// // Any API call that takes the token: on an invalid-token errcode it is refreshed and the call retried once.
/// let menu: serde_json::Value = tokens
///     .call(|token| {
///         let client = client.clone();
///         async move { client.get_json("/cgi-bin/get_current_selfmenu_info", &[("access_token", token.secret())]).await }
///     })
///     .await?;
/// let jsapi_ticket = tokens.jsapi_ticket().await?;
/// # let _ = (menu, jsapi_ticket);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AccessTokenManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for AccessTokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenManager")
            .field("app_id", &self.inner.app_id)
            .field("secret", &self.inner.secret)
            .field("store", &self.inner.store)
            .field("options", &self.inner.options)
            .finish()
    }
}

impl AccessTokenManager {
    /// A manager with default options and the system clock.
    pub fn new(client: WechatClient, app_id: AppId, secret: AppSecret, store: Arc<dyn TokenStore>) -> Self {
        Self::with_options(client, app_id, secret, store, TokenManagerOptions::default())
    }

    /// A manager with the given options.
    pub fn with_options(
        client: WechatClient,
        app_id: AppId,
        secret: AppSecret,
        store: Arc<dyn TokenStore>,
        options: TokenManagerOptions,
    ) -> Self {
        let holder: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(16)
            .map(char::from)
            .collect();
        Self {
            inner: Arc::new(Inner {
                client,
                app_id,
                secret,
                store,
                options,
                clock: Arc::new(SystemClock),
                holder,
                flights: Default::default(),
                local: Mutex::new(Default::default()),
            }),
        }
    }

    /// Replaces the clock (tests). Must be called before the manager is cloned.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.clock = clock;
        }
        self
    }

    /// The app this manager serves.
    pub fn app_id(&self) -> &AppId {
        &self.inner.app_id
    }

    /// The client the manager fetches with.
    pub fn client(&self) -> &WechatClient {
        &self.inner.client
    }

    /// A valid access token, from the cache or freshly fetched.
    pub async fn access_token(&self) -> Result<AccessToken> {
        Ok(AccessToken::new(self.get(TokenKind::AccessToken).await?.value))
    }

    /// A valid JS-SDK `jsapi_ticket`.
    pub async fn jsapi_ticket(&self) -> Result<Ticket> {
        Ok(Ticket::new(self.get(TokenKind::JsapiTicket).await?.value))
    }

    /// A valid card `api_ticket` (`wx_card`).
    pub async fn wx_card_ticket(&self) -> Result<Ticket> {
        Ok(Ticket::new(self.get(TokenKind::WxCardTicket).await?.value))
    }

    /// Runs `call` with a valid access token. If WeChat rejects the token (40001, 40014, 41001, 42001), the token is
    /// invalidated (only if the store still holds it), refreshed once, and `call` retried once with the new one.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let token = self.access_token().await?;
        let failed = token.secret().to_owned();
        match call(token).await {
            Err(e) if e.is_token_invalid() => {
                tracing::info!(app_id = %self.inner.app_id, error = %e, "access token rejected, refreshing once");
                self.invalidate(TokenKind::AccessToken, &failed).await?;
                let fresh = self.access_token().await?;
                call(fresh).await
            }
            other => other,
        }
    }

    /// Sends a [request value](crate::request) with this app's access token, through [`call`](Self::call): an
    /// invalid-token answer refreshes the token and sends it once more; transient failures are retried only when
    /// the request is [idempotent](ApiRequest::idempotent).
    pub async fn send<R: ApiRequest + Sync>(&self, request: &R) -> Result<R::Response> {
        if !request.needs_access_token() {
            return self.inner.client.send(request, None).await;
        }
        self.call(|token| async move { self.inner.client.send(request, Some(&token)).await })
            .await
    }

    /// The app's secret, for calls that take it instead of the access token (`jscode2session`, web OAuth).
    pub fn secret(&self) -> &AppSecret {
        &self.inner.secret
    }

    /// Drops `failed_value` from the cache and the store, unless it has already been replaced there. Returns whether
    /// the store entry was removed.
    pub async fn invalidate(&self, kind: TokenKind, failed_value: &str) -> Result<bool> {
        {
            let mut local = self.local();
            if local[kind.index()].as_ref().is_some_and(|t| t.value == failed_value) {
                local[kind.index()] = None;
            }
        }
        Ok(self
            .inner
            .store
            .invalidate_if(&self.inner.app_id, kind, failed_value)
            .await?)
    }

    fn local(&self) -> std::sync::MutexGuard<'_, [Option<StoredToken>; 3]> {
        self.inner.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    fn is_fresh(&self, token: &StoredToken) -> bool {
        let ahead = i64::try_from(self.inner.options.refresh_ahead.as_millis()).unwrap_or(i64::MAX);
        token.expires_at.saturating_mul(1000).saturating_sub(ahead) > self.now_ms()
    }

    fn is_usable(&self, token: &StoredToken) -> bool {
        token.expires_at.saturating_mul(1000) > self.now_ms()
    }

    fn remember(&self, kind: TokenKind, token: &StoredToken) {
        self.local()[kind.index()] = Some(token.clone());
    }

    // Boxed with an explicit `Send`: a ticket fetch needs the access token, so `get` is (indirectly) recursive.
    fn get(&self, kind: TokenKind) -> Pin<Box<dyn Future<Output = Result<StoredToken>> + Send + '_>> {
        Box::pin(self.get_inner(kind))
    }

    async fn get_inner(&self, kind: TokenKind) -> Result<StoredToken> {
        if let Some(t) = self.local()[kind.index()].clone()
            && self.is_fresh(&t)
        {
            return Ok(t);
        }
        let _flight = self.inner.flights[kind.index()].lock().await;
        // Whoever held the flight before us may have refreshed already.
        if let Some(t) = self.local()[kind.index()].clone()
            && self.is_fresh(&t)
        {
            return Ok(t);
        }
        let stored = self.inner.store.load(&self.inner.app_id, kind).await?;
        if let Some(t) = &stored
            && self.is_fresh(t)
        {
            self.remember(kind, t);
            return Ok(t.clone());
        }
        self.refresh_shared(kind, stored).await
    }

    /// Refreshes through the store's lease so that only one process talks to WeChat.
    async fn refresh_shared(&self, kind: TokenKind, stale: Option<StoredToken>) -> Result<StoredToken> {
        let inner = &self.inner;
        let lease_ms = i64::try_from(inner.options.lock_lease.as_millis()).unwrap_or(i64::MAX);
        let wait_until = self.now_ms().saturating_add(lease_ms.saturating_mul(2));
        loop {
            let now = self.now_ms();
            if inner
                .store
                .try_lock(&inner.app_id, kind, &inner.holder, now, now.saturating_add(lease_ms))
                .await?
            {
                let result = self.refresh_holding_lease(kind).await;
                if let Err(e) = inner.store.unlock(&inner.app_id, kind, &inner.holder).await {
                    tracing::warn!(app_id = %inner.app_id, kind = kind.as_str(), error = %e, "could not release refresh lease");
                }
                return match result {
                    Ok(t) => Ok(t),
                    Err(e) => match stale {
                        // Refresh-ahead failed but the old token is still valid: keep serving it.
                        Some(old) if self.is_usable(&old) => {
                            tracing::warn!(app_id = %inner.app_id, kind = kind.as_str(), error = %e, "refresh failed; serving the still-valid token");
                            Ok(old)
                        }
                        _ => Err(e),
                    },
                };
            }
            // Another process is refreshing. A still-valid token is good enough meanwhile.
            if let Some(old) = &stale
                && self.is_usable(old)
            {
                return Ok(old.clone());
            }
            inner.clock.sleep(inner.options.poll_interval).await;
            if let Some(t) = inner.store.load(&inner.app_id, kind).await?
                && self.is_fresh(&t)
            {
                self.remember(kind, &t);
                return Ok(t);
            }
            if self.now_ms() > wait_until {
                return Err(Error::Store(StoreError::new(format!(
                    "timed out waiting for another process to refresh the {}",
                    kind.as_str()
                ))));
            }
        }
    }

    async fn refresh_holding_lease(&self, kind: TokenKind) -> Result<StoredToken> {
        let inner = &self.inner;
        // Re-check after acquiring: the previous lease holder may have stored a fresh token just now.
        if let Some(t) = inner.store.load(&inner.app_id, kind).await?
            && self.is_fresh(&t)
        {
            self.remember(kind, &t);
            return Ok(t);
        }
        let fetched_at = self.now_ms() / 1000;
        let fetched = match kind.ticket_type() {
            None => self.fetch_access_token().await,
            Some(ticket_type) => self.fetch_ticket(ticket_type).await,
        };
        // Through the `metrics` facade: a no-op unless the embedding service installs a recorder.
        let result = if fetched.is_ok() { "ok" } else { "error" };
        metrics::counter!("wechat_token_refreshes_total", "kind" => kind.as_str(), "result" => result).increment(1);
        let (value, expires_in) = fetched?;
        let token = StoredToken {
            value,
            expires_at: fetched_at.saturating_add(expires_in),
        };
        inner.store.save(&inner.app_id, kind, &token).await?;
        self.remember(kind, &token);
        tracing::info!(app_id = %inner.app_id, kind = kind.as_str(), expires_in, "refreshed");
        Ok(token)
    }

    async fn fetch_access_token(&self) -> Result<(String, i64)> {
        let inner = &self.inner;
        let (app_id, secret) = (inner.app_id.clone(), inner.secret.clone());
        let response = match inner.options.mode {
            TokenMode::Classic => inner.client.send(&GetAccessToken { app_id, secret }, None).await?,
            TokenMode::Stable => {
                let request = GetStableAccessToken {
                    app_id,
                    secret,
                    force_refresh: false,
                };
                inner.client.send(&request, None).await?
            }
        };
        Ok((response.access_token.secret().to_owned(), response.expires_in))
    }

    async fn fetch_ticket(&self, ticket_type: &'static str) -> Result<(String, i64)> {
        let request = if ticket_type == "jsapi" {
            GetTicket::jsapi()
        } else {
            GetTicket::wx_card()
        };
        let response = self.send(&request).await?;
        Ok((response.ticket.secret().to_owned(), response.expires_in))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_invalidates_only_the_failed_token() {
        let store = MemoryTokenStore::new();
        let app = AppId::new("wx1");
        let kind = TokenKind::AccessToken;
        store
            .save(
                &app,
                kind,
                &StoredToken {
                    value: "new".into(),
                    expires_at: 10,
                },
            )
            .await
            .unwrap();
        assert!(!store.invalidate_if(&app, kind, "old").await.unwrap());
        assert!(store.load(&app, kind).await.unwrap().is_some());
        assert!(store.invalidate_if(&app, kind, "new").await.unwrap());
        assert!(store.load(&app, kind).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn memory_store_lease_excludes_other_holders_until_it_expires() {
        let store = MemoryTokenStore::new();
        let app = AppId::new("wx1");
        let kind = TokenKind::JsapiTicket;
        assert!(store.try_lock(&app, kind, "a", 0, 100).await.unwrap());
        assert!(!store.try_lock(&app, kind, "b", 50, 150).await.unwrap());
        assert!(store.try_lock(&app, kind, "a", 60, 160).await.unwrap(), "re-entrant");
        assert!(
            store.try_lock(&app, kind, "b", 161, 200).await.unwrap(),
            "expired lease"
        );
        store.unlock(&app, kind, "a").await.unwrap();
        assert!(
            !store.try_lock(&app, kind, "a", 170, 300).await.unwrap(),
            "unlock by non-holder is a no-op"
        );
        store.unlock(&app, kind, "b").await.unwrap();
        assert!(store.try_lock(&app, kind, "a", 170, 300).await.unwrap());
    }

    #[test]
    fn stored_token_debug_is_redacted() {
        let t = StoredToken {
            value: "SECRET".into(),
            expires_at: 1,
        };
        assert!(!format!("{t:?}").contains("SECRET"));
    }

    #[test]
    fn kinds_round_trip() {
        for k in TokenKind::ALL {
            assert_eq!(TokenKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(TokenKind::parse("nope"), None);
    }
}
