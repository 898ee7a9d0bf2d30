//! Platform certificates: downloaded from `/v3/certificates`, opened with the APIv3 key, checked against the
//! response's own signature, refreshed ahead of expiry and when an unknown serial appears (once, single flight, with a
//! floor between downloads), and shared between instances through a [`CertificateStore`].

#[cfg(feature = "client")]
use crate::error::{Error, Result};
#[cfg(feature = "client")]
use crate::v3::aead::{self, ApiV3Key, EncryptedResource};
#[cfg(feature = "client")]
use crate::v3::client::{Exchange, signed_exchange};
#[cfg(feature = "client")]
use crate::v3::keys::Certificate;
#[cfg(feature = "client")]
use crate::v3::sign::RequestSigner;
#[cfg(feature = "client")]
use crate::v3::verifier::{PUBLIC_KEY_ID_PREFIX, SignedMessage, Verifier, VerifyError};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
#[cfg(feature = "client")]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "client")]
use std::sync::{Arc, RwLock};
#[cfg(feature = "client")]
use url::Url;
use wechat_core::StoreError;
#[cfg(feature = "client")]
use wechat_core::{Clock, WechatClient};

/// Platform certificates as a store keeps them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCertificates {
    /// The certificates, PEM.
    pub pems: Vec<String>,
    /// When they were downloaded, Unix milliseconds.
    pub fetched_at_ms: i64,
}

/// Where downloaded platform certificates live, shared by every client (and every server instance) of a merchant,
/// so that one download serves all of them. The crate ships [`MemoryCertificateStore`]; the wxkit server keeps them
/// in its database.
#[async_trait]
pub trait CertificateStore: Send + Sync + fmt::Debug {
    /// The stored certificates of `mch_id`, if any.
    async fn load(&self, mch_id: &str) -> Result<Option<StoredCertificates>, StoreError>;
    /// Replaces them.
    async fn save(&self, mch_id: &str, certs: &StoredCertificates) -> Result<(), StoreError>;
}

/// An in-process [`CertificateStore`].
#[derive(Debug, Default)]
pub struct MemoryCertificateStore {
    entries: Mutex<HashMap<String, StoredCertificates>>,
}

impl MemoryCertificateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CertificateStore for MemoryCertificateStore {
    async fn load(&self, mch_id: &str) -> Result<Option<StoredCertificates>, StoreError> {
        Ok(self
            .entries
            .lock()
            .map_err(|_| StoreError::new("certificate store lock poisoned"))?
            .get(mch_id)
            .cloned())
    }

    async fn save(&self, mch_id: &str, certs: &StoredCertificates) -> Result<(), StoreError> {
        self.entries
            .lock()
            .map_err(|_| StoreError::new("certificate store lock poisoned"))?
            .insert(mch_id.to_owned(), certs.clone());
        Ok(())
    }
}

/// When certificates are downloaded again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshPolicy {
    /// Download again once the newest certificate expires within this many seconds (default 1 day).
    pub ahead_secs: i64,
    /// Download again once the last download is this old (default 12 h): WeChat publishes a new certificate before
    /// it signs with it.
    pub max_age_secs: i64,
    /// At most one download per this many seconds, whatever arrives (default 60 s): a stream of notifies naming
    /// serials nobody knows cannot turn into a download storm.
    pub min_interval_secs: i64,
    /// A serial still unknown after a download is not downloaded for again for this many seconds (default 300 s):
    /// a hundred notifies naming it cause one download, not a hundred.
    pub unknown_retry_secs: i64,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            ahead_secs: 86_400,
            max_age_secs: 12 * 3600,
            min_interval_secs: 60,
            unknown_retry_secs: 300,
        }
    }
}

impl RefreshPolicy {
    /// The default policy with another floor between downloads (0 for tests that rotate certificates quickly).
    pub fn with_min_interval(mut self, secs: i64) -> Self {
        self.min_interval_secs = secs.max(0);
        self
    }
}

/// How to download: the merchant's signer, the APIv3 key and where WeChat Pay is.
#[derive(Clone, Debug)]
#[cfg(feature = "client")]
pub(crate) struct Source {
    pub signer: Arc<RequestSigner>,
    pub api_v3_key: ApiV3Key,
    pub base_url: Url,
    pub http: WechatClient,
}

#[derive(Debug)]
#[cfg(feature = "client")]
struct Current {
    verifier: Verifier,
    fetched_at_ms: Option<i64>,
}

#[derive(Debug, Default)]
#[cfg(feature = "client")]
struct RefreshLog {
    last_attempt_ms: Option<i64>,
    /// Serials that stayed unknown after a download, and when.
    unknown: HashMap<String, i64>,
}

#[cfg(feature = "client")]
struct Inner {
    mch_id: String,
    current: RwLock<Current>,
    refresh: tokio::sync::Mutex<RefreshLog>,
    source: Option<Source>,
    store: Arc<dyn CertificateStore>,
    clock: Arc<dyn Clock>,
    policy: RefreshPolicy,
    downloads: AtomicU64,
}

/// WeChat Pay's verifying keys for one merchant — configured public keys and downloaded platform certificates —
/// kept current. Cheap to clone (shared).
#[derive(Clone)]
#[cfg(feature = "client")]
pub struct PlatformKeys {
    inner: Arc<Inner>,
}

#[cfg(feature = "client")]
impl fmt::Debug for PlatformKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformKeys")
            .field("mch_id", &self.inner.mch_id)
            .field("serials", &self.verifier().serials())
            .field("downloads", &self.downloads())
            .finish_non_exhaustive()
    }
}

/// The parts of `GET /v3/certificates` we read.
#[derive(Debug, Deserialize)]
#[cfg(feature = "client")]
struct CertificatesBody {
    data: Vec<CertificateItem>,
}

#[derive(Debug, Deserialize)]
#[cfg(feature = "client")]
struct CertificateItem {
    serial_no: String,
    encrypt_certificate: EncryptedResource,
}

#[cfg(feature = "client")]
impl PlatformKeys {
    pub(crate) fn new(
        mch_id: String,
        verifier: Verifier,
        source: Option<Source>,
        store: Arc<dyn CertificateStore>,
        clock: Arc<dyn Clock>,
        policy: RefreshPolicy,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                mch_id,
                current: RwLock::new(Current {
                    verifier,
                    fetched_at_ms: None,
                }),
                refresh: tokio::sync::Mutex::new(RefreshLog::default()),
                source,
                store,
                clock,
                policy,
                downloads: AtomicU64::new(0),
            }),
        }
    }

    /// A snapshot of the keys held now.
    pub fn verifier(&self) -> Verifier {
        match self.inner.current.read() {
            Ok(c) => c.verifier.clone(),
            Err(p) => p.into_inner().verifier.clone(),
        }
    }

    fn fetched_at_ms(&self) -> Option<i64> {
        match self.inner.current.read() {
            Ok(c) => c.fetched_at_ms,
            Err(p) => p.into_inner().fetched_at_ms,
        }
    }

    fn install(&self, verifier: Verifier, fetched_at_ms: i64) {
        let mut c = match self.inner.current.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        c.verifier = verifier;
        c.fetched_at_ms = Some(fetched_at_ms);
    }

    /// How many times certificates were downloaded from WeChat Pay (not counting ones adopted from the store).
    pub fn downloads(&self) -> u64 {
        self.inner.downloads.load(Ordering::Relaxed)
    }

    /// Whether certificates are downloaded at all (certificate or switch-over mode).
    pub fn downloads_certificates(&self) -> bool {
        self.inner.source.is_some()
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Checks a signed response or notify: probe and timestamp first (a stale message never causes a download),
    /// then the key its serial names — refreshing the certificates when they are due, or once when the serial is
    /// unknown and is not a public key id.
    pub async fn verify(&self, message: &SignedMessage<'_>) -> Result<()> {
        let now = self.now_ms() / 1000;
        self.verifier().check_fresh(message, now)?;
        if self.due(self.now_ms()) {
            // A failed routine refresh is not fatal while the keys held still verify.
            if let Err(e) = self.refresh_if(|keys| keys.due(keys.now_ms())).await {
                tracing::warn!(error = %e, mch_id = %self.inner.mch_id, "platform certificate refresh failed");
            }
        }
        match self.verifier().verify(message, now) {
            Err(VerifyError::UnknownSerial(serial))
                if self.inner.source.is_some() && !serial.starts_with(PUBLIC_KEY_ID_PREFIX) =>
            {
                if let Err(e) = self.refresh_for_unknown(&serial).await {
                    tracing::warn!(error = %e, serial, "platform certificate download for an unknown serial failed");
                }
                Ok(self.verifier().verify(message, now)?)
            }
            other => Ok(other?),
        }
    }

    /// Whether a routine refresh is due: never downloaded, too old, or the newest certificate about to expire.
    fn due(&self, now_ms: i64) -> bool {
        if self.inner.source.is_none() {
            return false;
        }
        let policy = &self.inner.policy;
        match self.fetched_at_ms() {
            None => true,
            Some(at) => {
                now_ms - at > policy.max_age_secs * 1000
                    || self
                        .verifier()
                        .certificates_valid_until()
                        .is_none_or(|until| until - now_ms / 1000 < policy.ahead_secs)
            }
        }
    }

    /// Single flight: one caller at a time; after waiting, `still_needed` is asked again (another caller may have
    /// done it), then the store is consulted (another instance may have), then — at most once per
    /// `min_interval_secs` — WeChat Pay.
    async fn refresh_if(&self, still_needed: impl Fn(&Self) -> bool) -> Result<()> {
        let mut log = self.inner.refresh.lock().await;
        if !still_needed(self) {
            return Ok(());
        }
        self.adopt_stored().await;
        if !still_needed(self) {
            return Ok(());
        }
        let now = self.now_ms();
        if log
            .last_attempt_ms
            .is_some_and(|at| now - at < self.inner.policy.min_interval_secs * 1000)
        {
            return Ok(());
        }
        log.last_attempt_ms = Some(now);
        self.download().await.map(|_| ())
    }

    /// Single flight for a serial nobody knows: after waiting, known now? Known to the store? Found unknown by a
    /// recent download? Only then (and past the floor) WeChat Pay — and if the serial is still unknown after that,
    /// it is remembered as such for `unknown_retry_secs`.
    async fn refresh_for_unknown(&self, serial: &str) -> Result<()> {
        let mut log = self.inner.refresh.lock().await;
        if self.verifier().knows(serial) {
            return Ok(());
        }
        let now = self.now_ms();
        let policy = self.inner.policy;
        if log
            .unknown
            .get(serial)
            .is_some_and(|at| now - at < policy.unknown_retry_secs * 1000)
        {
            return Ok(());
        }
        self.adopt_stored().await;
        if self.verifier().knows(serial) {
            return Ok(());
        }
        if log
            .last_attempt_ms
            .is_some_and(|at| now - at < policy.min_interval_secs * 1000)
        {
            return Ok(());
        }
        log.last_attempt_ms = Some(now);
        let result = self.download().await.map(|_| ());
        if !self.verifier().knows(serial) {
            if log.unknown.len() >= 1024 {
                log.unknown.clear();
            }
            log.unknown.insert(serial.to_owned(), now);
        }
        result
    }

    /// Takes the store's certificates when they are newer than ours.
    async fn adopt_stored(&self) {
        let stored = match self.inner.store.load(&self.inner.mch_id).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "platform certificate store unavailable");
                return;
            }
        };
        if self.fetched_at_ms().is_some_and(|ours| ours >= stored.fetched_at_ms) {
            return;
        }
        let certs: Vec<Certificate> = stored
            .pems
            .iter()
            .filter_map(|p| Certificate::from_pem(p).ok())
            .collect();
        if !certs.is_empty() {
            let verifier = self.verifier().with_certificates_replaced(&certs);
            self.install(verifier, stored.fetched_at_ms);
        }
    }

    /// Downloads the certificates now (the CLI's `wxkit pay v3 certificates`), whatever the policy says: each opened
    /// with the APIv3 key, its serial checked against the certificate's own, the response's signature checked with
    /// a key we already trust or with one of the certificates just opened (authentic, since only WeChat Pay and the
    /// merchant know the APIv3 key). The expired ones are dropped.
    pub async fn download(&self) -> Result<Vec<Certificate>> {
        let source = self
            .inner
            .source
            .as_ref()
            .ok_or_else(|| Error::invalid("this client is in public-key mode: it downloads no certificates"))?;
        self.inner.downloads.fetch_add(1, Ordering::Relaxed);
        let Exchange { headers, body, .. } = signed_exchange(
            &source.http,
            &source.base_url,
            &source.signer,
            http::Method::GET,
            "/v3/certificates",
            None,
        )
        .await?;
        let parsed: CertificatesBody =
            serde_json::from_slice(&body).map_err(|_| Error::MissingField("data (certificates)"))?;
        let mut certs = Vec::with_capacity(parsed.data.len());
        for item in parsed.data {
            let pem = aead::decrypt(&source.api_v3_key, &item.encrypt_certificate)?;
            let pem = String::from_utf8(pem).map_err(|_| Error::MissingField("certificate (UTF-8 PEM)"))?;
            let cert = Certificate::from_pem(&pem)?;
            if !cert.serial().eq_ignore_ascii_case(item.serial_no.trim()) {
                return Err(Error::invalid(format!(
                    "certificate serial_no {} does not match the certificate's serial {}",
                    item.serial_no,
                    cert.serial()
                )));
            }
            certs.push(cert);
        }
        let now_ms = self.now_ms();
        let message = SignedMessage::from_headers(&headers, &body)?;
        let mut candidate = self.verifier();
        for cert in &certs {
            candidate = candidate.with_certificate(cert);
        }
        candidate.verify(&message, now_ms / 1000)?;
        let valid: Vec<Certificate> = certs
            .iter()
            .filter(|c| c.not_after() > now_ms / 1000)
            .cloned()
            .collect();
        self.install(self.verifier().with_certificates_replaced(&valid), now_ms);
        let stored = StoredCertificates {
            pems: valid.iter().map(|c| c.pem().to_owned()).collect(),
            fetched_at_ms: now_ms,
        };
        if let Err(e) = self.inner.store.save(&self.inner.mch_id, &stored).await {
            tracing::warn!(error = %e, "could not share downloaded platform certificates");
        }
        tracing::info!(
            mch_id = %self.inner.mch_id,
            serials = ?valid.iter().map(Certificate::serial).collect::<Vec<_>>(),
            "platform certificates downloaded"
        );
        Ok(certs)
    }
}
