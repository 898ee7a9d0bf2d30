//! A safe OAuth `state`: HMAC-signed, expiring, single-use, carrying the return path.
//!
//! WeChat's webview may drop cookies between the authorize redirect and the callback, so the state itself carries
//! what the callback needs (where to send the user back) — signed, so it cannot be forged; with an expiry, so an old
//! link dies; single-use through a [`StateStore`], so a captured callback URL cannot be replayed. The return path is
//! always a same-origin relative path: an open redirect is impossible by construction.
//!
//! WeChat only passes `state` back if it is at most 128 characters of `[A-Za-z0-9]`, so the encoding is base32
//! (`A-Z2-7`) of `version ‖ expiry ‖ nonce ‖ path ‖ tag`, which leaves room for return paths of up to 55 bytes.
//!
//! ```
//! use wechat_oauth::state::{StateSigner, StateError};
//! let signer = StateSigner::new(b"a-32-byte-or-longer-secret-key!!").unwrap();
//! let state = signer.issue("/c/ABCD2345", 1_700_000_000, 600).unwrap();
//! assert!(state.value.bytes().all(|b| b.is_ascii_alphanumeric()) && state.value.len() <= 128);
//! let verified = signer.verify(&state.value, 1_700_000_100).unwrap();
//! assert_eq!(verified.return_path, "/c/ABCD2345");
//! assert!(matches!(signer.verify(&state.value, 1_700_000_601), Err(StateError::Expired)));
//! assert!(signer.issue("https://evil.example/", 1_700_000_000, 600).is_err());
//! ```

use async_trait::async_trait;
use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 8;
const TAG_LEN: usize = 12;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Longest return path that fits in WeChat's 128-character state.
pub const MAX_RETURN_PATH: usize = 128 * 5 / 8 - HEADER_LEN - TAG_LEN;

/// Why a state was refused. Deliberately coarse: it tells an attacker nothing about which check failed beyond
/// what is needed to show a helpful page.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Not a state we issued (bad encoding, wrong version, wrong length).
    #[error("malformed OAuth state")]
    Malformed,
    /// The signature does not match (tampered, or signed with another key).
    #[error("OAuth state signature mismatch")]
    BadSignature,
    /// Past its expiry.
    #[error("OAuth state expired")]
    Expired,
    /// Already used once.
    #[error("OAuth state already used")]
    Replayed,
    /// The return path is not a same-origin relative path.
    #[error("return path must be a same-origin relative path such as /c/CODE")]
    InvalidReturnPath,
    /// The return path is too long to fit in WeChat's 128-character state.
    #[error("return path longer than {MAX_RETURN_PATH} bytes")]
    ReturnPathTooLong,
    /// The signing key is shorter than 32 bytes.
    #[error("state signing key must be at least 32 bytes")]
    WeakKey,
    /// The single-use store failed.
    #[error("state store failed: {0}")]
    Store(String),
}

/// A freshly issued state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedState {
    /// The value to put in the authorize URL.
    pub value: String,
    /// Its nonce (hex), the single-use key.
    pub nonce: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

/// A verified state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedState {
    /// Where to send the user back: a same-origin relative path.
    pub return_path: String,
    /// The nonce (hex).
    pub nonce: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

/// Remembers used nonces until they expire, making states single-use.
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug {
    /// Records `nonce` as used. Returns `false` if it was already used. Must be atomic (a unique key, or a lock).
    async fn consume(&self, nonce: &str, expires_at: i64) -> Result<bool, StateError>;
}

/// An in-process [`StateStore`] (one process; tests). Forgets expired nonces as it goes.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    used: Mutex<HashMap<String, i64>>,
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn consume(&self, nonce: &str, expires_at: i64) -> Result<bool, StateError> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_secs();
        used.retain(|_, exp| *exp >= now);
        Ok(used.insert(nonce.to_owned(), expires_at).is_none())
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Checks that `path` is a same-origin relative path: starts with one `/`, no backslash, no control characters or
/// whitespace, and resolves to the same origin when joined onto one.
pub fn is_safe_return_path(path: &str) -> bool {
    if !path.starts_with('/') || path.starts_with("//") {
        return false;
    }
    if path.bytes().any(|b| b == b'\\' || b.is_ascii_control() || b == b' ') {
        return false;
    }
    // Belt and braces: whatever a URL parser makes of it must stay on our origin.
    let Ok(base) = url::Url::parse("https://origin.invalid/") else {
        return false;
    };
    matches!(base.join(path), Ok(u) if u.host_str() == Some("origin.invalid") && u.scheme() == "https")
}

/// Issues and verifies states with one HMAC-SHA256 key.
#[derive(Clone)]
pub struct StateSigner {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for StateSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateSigner([redacted])")
    }
}

impl StateSigner {
    /// A signer with `key` (at least 32 bytes; derive it from a server secret).
    pub fn new(key: &[u8]) -> Result<Self, StateError> {
        if key.len() < 32 {
            return Err(StateError::WeakKey);
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| StateError::WeakKey)?;
        Ok(Self { mac })
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }

    /// Issues a state for `return_path`, valid `ttl_secs` from `now` (Unix seconds).
    pub fn issue(&self, return_path: &str, now: i64, ttl_secs: i64) -> Result<IssuedState, StateError> {
        if !is_safe_return_path(return_path) {
            return Err(StateError::InvalidReturnPath);
        }
        if return_path.len() > MAX_RETURN_PATH {
            return Err(StateError::ReturnPathTooLong);
        }
        let expires_at = now.saturating_add(ttl_secs.max(1));
        let exp = u32::try_from(expires_at).map_err(|_| StateError::Malformed)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut payload = Vec::with_capacity(HEADER_LEN + return_path.len() + TAG_LEN);
        payload.push(VERSION);
        payload.extend_from_slice(&exp.to_be_bytes());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(return_path.as_bytes());
        let mut mac = self.mac();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        payload.extend_from_slice(&tag[..TAG_LEN]);
        Ok(IssuedState {
            value: BASE32_NOPAD.encode(&payload),
            nonce: wechat_core::push::hex_lower(&nonce),
            expires_at,
        })
    }

    /// Verifies signature (constant time), expiry and return path. Does **not** mark it used: call
    /// [`verify_once`](Self::verify_once) for that.
    pub fn verify(&self, state: &str, now: i64) -> Result<VerifiedState, StateError> {
        if state.len() > 128 {
            return Err(StateError::Malformed);
        }
        let bytes = BASE32_NOPAD
            .decode(state.as_bytes())
            .map_err(|_| StateError::Malformed)?;
        if bytes.len() < HEADER_LEN + 1 + TAG_LEN || bytes[0] != VERSION {
            return Err(StateError::Malformed);
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        let mut mac = self.mac();
        mac.update(payload);
        mac.verify_truncated_left(tag).map_err(|_| StateError::BadSignature)?;
        let exp = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
        let expires_at = i64::from(exp);
        if now > expires_at {
            return Err(StateError::Expired);
        }
        let return_path = String::from_utf8(payload[HEADER_LEN..].to_vec()).map_err(|_| StateError::Malformed)?;
        if !is_safe_return_path(&return_path) {
            return Err(StateError::InvalidReturnPath);
        }
        Ok(VerifiedState {
            return_path,
            nonce: wechat_core::push::hex_lower(&payload[5..HEADER_LEN]),
            expires_at,
        })
    }

    /// Verifies and consumes: a second use of the same state fails with [`StateError::Replayed`].
    pub async fn verify_once(
        &self,
        state: &str,
        now: i64,
        store: &dyn StateStore,
    ) -> Result<VerifiedState, StateError> {
        let verified = self.verify(state, now)?;
        if !store.consume(&verified.nonce, verified.expires_at).await? {
            return Err(StateError::Replayed);
        }
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> StateSigner {
        StateSigner::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn round_trip_and_wechat_constraints() {
        let s = signer()
            .issue(&format!("/{}", "a".repeat(MAX_RETURN_PATH - 1)), 1000, 60)
            .unwrap();
        assert!(s.value.len() <= 128, "{}", s.value.len());
        assert!(s.value.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(
            signer().issue(&format!("/{}", "a".repeat(MAX_RETURN_PATH)), 1000, 60),
            Err(StateError::ReturnPathTooLong)
        );
    }

    #[test]
    fn tampering_anywhere_is_detected() {
        let s = signer().issue("/c/CODE", 1000, 60).unwrap().value;
        for i in 0..s.len() {
            let mut chars: Vec<char> = s.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let tampered: String = chars.into_iter().collect();
            assert!(signer().verify(&tampered, 1000).is_err(), "position {i}");
        }
        let other = StateSigner::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&s, 1000), Err(StateError::BadSignature));
    }

    #[test]
    fn open_redirects_are_impossible() {
        for path in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "\\\\evil",
            "evil",
            "",
            "/a b",
            "/x\n",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                signer().issue(path, 0, 60),
                Err(StateError::InvalidReturnPath),
                "{path:?}"
            );
        }
        assert!(is_safe_return_path("/c/ABC?x=1#y"));
    }

    #[tokio::test]
    async fn states_are_single_use() {
        let store = MemoryStateStore::default();
        let now = now_secs();
        let s = signer().issue("/coupons/mine", now, 60).unwrap().value;
        assert!(signer().verify_once(&s, now, &store).await.is_ok());
        assert_eq!(signer().verify_once(&s, now, &store).await, Err(StateError::Replayed));
    }

    #[test]
    fn weak_keys_are_refused() {
        assert_eq!(StateSigner::new(b"short").unwrap_err(), StateError::WeakKey);
    }
}
