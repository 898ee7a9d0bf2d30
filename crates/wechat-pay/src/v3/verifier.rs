//! Checks WeChat Pay's signatures on responses and notifies against the keys it may use — platform certificates
//! and WeChat Pay public keys, side by side, keyed by the `Wechatpay-Serial` they are named by.

use crate::v3::keys::{Certificate, PublicKey};
use crate::v3::sign::response_message;
use std::collections::HashMap;
use std::sync::Arc;

/// A signature that starts with this is WeChat probing that the merchant verifies: it must fail.
pub const PROBE_PREFIX: &str = "WECHATPAY/SIGNTEST/";
/// How far `Wechatpay-Timestamp` may be from now (WeChat Pay's documented 5 minutes).
pub const DEFAULT_MAX_SKEW_SECS: i64 = 300;
/// Public key ids start with this; certificate serials are hex.
pub const PUBLIC_KEY_ID_PREFIX: &str = "PUB_KEY_ID_";

/// The four signature headers and the body, exactly as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedMessage<'a> {
    /// `Wechatpay-Timestamp`.
    pub timestamp: &'a str,
    /// `Wechatpay-Nonce`.
    pub nonce: &'a str,
    /// `Wechatpay-Signature`, base64.
    pub signature: &'a str,
    /// `Wechatpay-Serial`: a certificate serial or a public key id.
    pub serial: &'a str,
    /// The body, byte for byte.
    pub body: &'a [u8],
}

impl<'a> SignedMessage<'a> {
    /// Takes the four `Wechatpay-*` headers from a request or response.
    pub fn from_headers(headers: &'a http::HeaderMap, body: &'a [u8]) -> Result<Self, VerifyError> {
        let get = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .ok_or(VerifyError::MissingHeader(name))
        };
        Ok(Self {
            timestamp: get("Wechatpay-Timestamp")?,
            nonce: get("Wechatpay-Nonce")?,
            signature: get("Wechatpay-Signature")?,
            serial: get("Wechatpay-Serial")?,
            body,
        })
    }
}

/// Why a signed message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A `Wechatpay-*` header is missing.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// `Wechatpay-Signature` starts with `WECHATPAY/SIGNTEST/`: WeChat's probe, refused by design.
    #[error("a WECHATPAY/SIGNTEST probe signature (refused by design)")]
    Probe,
    /// `Wechatpay-Timestamp` is not a number or is more than the allowed skew from now: stale or replayed.
    #[error("stale timestamp {timestamp} (now {now}, at most {max_skew} s apart)")]
    StaleTimestamp {
        /// The header.
        timestamp: String,
        /// Our clock, Unix seconds.
        now: i64,
        /// The allowed skew.
        max_skew: i64,
    },
    /// `Wechatpay-Serial` names no key we hold (after a refresh, when certificates are downloaded).
    #[error("unknown serial {0}")]
    UnknownSerial(String),
    /// The platform certificate named has expired.
    #[error("platform certificate {0} has expired")]
    Expired(String),
    /// The signature does not verify with the key named.
    #[error("bad signature (serial {0})")]
    BadSignature(String),
}

/// What a verifying key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A platform certificate (downloaded from `/v3/certificates`).
    PlatformCertificate,
    /// A WeChat Pay public key (`PUB_KEY_ID_…`, set on the merchant platform).
    PublicKey,
}

#[derive(Clone, Debug)]
struct Entry {
    key: PublicKey,
    kind: KeyKind,
    not_after: Option<i64>,
}

/// The keys WeChat Pay may sign with, by serial, and the rules: the timestamp within the skew, probes refused, the
/// body exactly as received. Cheap to clone (the keys are shared).
///
/// ```
/// # let pem = include_str!("../../testdata/pubkey.pem");
/// use wechat_pay::v3::{PublicKey, SignedMessage, Verifier, VerifyError};
/// let verifier = Verifier::new().with_public_key("PUB_KEY_ID_01", PublicKey::from_pem(pem)?);
/// let forged = SignedMessage { timestamp: "1700000000", nonce: "n", signature: "AAAA",
///     serial: "PUB_KEY_ID_01", body: b"{}" };
/// assert_eq!(verifier.verify(&forged, 1_700_000_010), Err(VerifyError::BadSignature("PUB_KEY_ID_01".into())));
/// assert!(matches!(verifier.verify(&forged, 1_700_009_999), Err(VerifyError::StaleTimestamp { .. })));
/// # Ok::<(), wechat_pay::v3::KeyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Verifier {
    keys: Arc<HashMap<String, Entry>>,
    max_skew_secs: i64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    /// No keys yet; the default 5-minute skew.
    pub fn new() -> Self {
        Self {
            keys: Arc::new(HashMap::new()),
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
        }
    }

    /// The allowed skew of `Wechatpay-Timestamp`; 0 turns the check off (for replaying recorded vectors only).
    pub fn with_max_skew(mut self, secs: i64) -> Self {
        self.max_skew_secs = secs.max(0);
        self
    }

    /// Adds a WeChat Pay public key under its id (`PUB_KEY_ID_…`).
    pub fn with_public_key(mut self, id: impl Into<String>, key: PublicKey) -> Self {
        Arc::make_mut(&mut self.keys).insert(
            id.into(),
            Entry {
                key,
                kind: KeyKind::PublicKey,
                not_after: None,
            },
        );
        self
    }

    /// Adds a platform certificate under its serial.
    pub fn with_certificate(mut self, cert: &Certificate) -> Self {
        Arc::make_mut(&mut self.keys).insert(
            cert.serial().to_owned(),
            Entry {
                key: cert.public_key().clone(),
                kind: KeyKind::PlatformCertificate,
                not_after: Some(cert.not_after()),
            },
        );
        self
    }

    /// The same public keys, with `certs` as the platform certificates (the old ones dropped).
    pub fn with_certificates_replaced(&self, certs: &[Certificate]) -> Self {
        let mut keys: HashMap<String, Entry> = self
            .keys
            .iter()
            .filter(|(_, e)| e.kind == KeyKind::PublicKey)
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        for cert in certs {
            keys.insert(
                cert.serial().to_owned(),
                Entry {
                    key: cert.public_key().clone(),
                    kind: KeyKind::PlatformCertificate,
                    not_after: Some(cert.not_after()),
                },
            );
        }
        Self {
            keys: Arc::new(keys),
            max_skew_secs: self.max_skew_secs,
        }
    }

    /// The key held under `serial` (a certificate serial or a public key id).
    pub fn key(&self, serial: &str) -> Option<&PublicKey> {
        self.keys.get(serial).map(|e| &e.key)
    }

    /// Whether `serial` names a key held.
    pub fn knows(&self, serial: &str) -> bool {
        self.keys.contains_key(serial)
    }

    /// The serials and ids held, with what they are, sorted.
    pub fn serials(&self) -> Vec<(String, KeyKind)> {
        let mut v: Vec<_> = self.keys.iter().map(|(k, e)| (k.clone(), e.kind)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The key a request should name in `Wechatpay-Serial` at `now`: the WeChat Pay public key id when one is held
    /// (the greatest, if several), else the serial of the valid platform certificate that expires last.
    pub fn preferred_serial(&self, now: i64) -> Option<String> {
        let public = self
            .keys
            .iter()
            .filter(|(_, e)| e.kind == KeyKind::PublicKey)
            .map(|(id, _)| id)
            .max();
        if let Some(id) = public {
            return Some(id.clone());
        }
        self.keys
            .iter()
            .filter(|(_, e)| e.kind == KeyKind::PlatformCertificate && e.not_after.is_none_or(|t| t >= now))
            .max_by(|a, b| a.1.not_after.cmp(&b.1.not_after).then_with(|| a.0.cmp(b.0)))
            .map(|(serial, _)| serial.clone())
    }

    /// The latest `not_after` of the platform certificates held (`None`: none held).
    pub fn certificates_valid_until(&self) -> Option<i64> {
        self.keys.values().filter_map(|e| e.not_after).max()
    }

    /// Checks a signed message at `now` (Unix seconds): probe, timestamp, serial, expiry, signature — in that order,
    /// so the cheapest refusals come first and a probe is never mistaken for an unknown serial.
    pub fn verify(&self, message: &SignedMessage<'_>, now: i64) -> Result<(), VerifyError> {
        self.check_fresh(message, now)?;
        let entry = self
            .keys
            .get(message.serial)
            .ok_or_else(|| VerifyError::UnknownSerial(message.serial.to_owned()))?;
        if entry.not_after.is_some_and(|t| t < now) {
            return Err(VerifyError::Expired(message.serial.to_owned()));
        }
        let signed = response_message(message.timestamp, message.nonce, message.body);
        if entry.key.verify(&signed, message.signature) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature(message.serial.to_owned()))
        }
    }

    /// The checks that need no key: the probe prefix and the timestamp.
    pub fn check_fresh(&self, message: &SignedMessage<'_>, now: i64) -> Result<(), VerifyError> {
        if message.signature.starts_with(PROBE_PREFIX) {
            return Err(VerifyError::Probe);
        }
        if self.max_skew_secs > 0 {
            let fresh = message
                .timestamp
                .parse::<i64>()
                .is_ok_and(|t| (now - t).abs() <= self.max_skew_secs);
            if !fresh {
                return Err(VerifyError::StaleTimestamp {
                    timestamp: message.timestamp.to_owned(),
                    now,
                    max_skew: self.max_skew_secs,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::vectors as v;
    use proptest::prelude::*;

    fn verifier() -> Verifier {
        Verifier::new()
            .with_certificate(&Certificate::from_pem(v::PLATFORM_CERT).expect("cert"))
            .with_public_key(v::PUBLIC_KEY_ID, PublicKey::from_pem(v::PUBLIC_KEY).expect("key"))
    }

    fn notify(serial: &'static str, signature: &'static str) -> SignedMessage<'static> {
        SignedMessage {
            timestamp: "1554209980",
            nonce: "c5ac7061fccab6bf3e254dcf98995b8c",
            signature,
            serial,
            body: v::NOTIFY_BODY.as_bytes(),
        }
    }

    const NOW: i64 = 1554209990;

    #[test]
    fn certificate_and_public_key_signatures_verify_side_by_side() {
        let ver = verifier();
        assert_eq!(
            ver.verify(&notify(v::PLATFORM_SERIAL, v::NOTIFY_SIGNATURE_CERT), NOW),
            Ok(())
        );
        assert_eq!(
            ver.verify(&notify(v::PUBLIC_KEY_ID, v::NOTIFY_SIGNATURE_PUBKEY), NOW),
            Ok(())
        );
        // Each signature only under the key that made it.
        assert!(matches!(
            ver.verify(&notify(v::PUBLIC_KEY_ID, v::NOTIFY_SIGNATURE_CERT), NOW),
            Err(VerifyError::BadSignature(_))
        ));
        assert_eq!(
            ver.verify(&notify("0123", v::NOTIFY_SIGNATURE_CERT), NOW),
            Err(VerifyError::UnknownSerial("0123".into()))
        );
    }

    #[test]
    fn probes_stale_and_replayed_messages_are_refused() {
        let ver = verifier();
        assert_eq!(
            ver.verify(&notify(v::PLATFORM_SERIAL, "WECHATPAY/SIGNTEST/abc"), NOW),
            Err(VerifyError::Probe)
        );
        assert!(matches!(
            ver.verify(&notify(v::PLATFORM_SERIAL, v::NOTIFY_SIGNATURE_CERT), NOW + 301),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        assert!(matches!(
            ver.verify(&notify(v::PLATFORM_SERIAL, v::NOTIFY_SIGNATURE_CERT), 1554209980 - 301),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        // With the check off, a recorded vector replays (the CLI's --max-skew 0).
        let lax = verifier().with_max_skew(0);
        assert_eq!(
            lax.verify(&notify(v::PLATFORM_SERIAL, v::NOTIFY_SIGNATURE_CERT), NOW + 10_000_000),
            Ok(())
        );
        let expired = lax.clone();
        let cert_end = Certificate::from_pem(v::PLATFORM_CERT).expect("cert").not_after();
        assert_eq!(
            expired.verify(&notify(v::PLATFORM_SERIAL, v::NOTIFY_SIGNATURE_CERT), cert_end + 1),
            Err(VerifyError::Expired(v::PLATFORM_SERIAL.into()))
        );
    }

    #[test]
    fn headers_are_read_and_missing_ones_named() {
        let mut h = http::HeaderMap::new();
        h.insert("Wechatpay-Timestamp", http::HeaderValue::from_static("1554209980"));
        h.insert("Wechatpay-Nonce", http::HeaderValue::from_static("n"));
        h.insert("Wechatpay-Signature", http::HeaderValue::from_static("s"));
        assert_eq!(
            SignedMessage::from_headers(&h, b""),
            Err(VerifyError::MissingHeader("Wechatpay-Serial"))
        );
        h.insert("Wechatpay-Serial", http::HeaderValue::from_static("X"));
        assert_eq!(SignedMessage::from_headers(&h, b"b").map(|m| m.serial), Ok("X"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Any change to the body, timestamp, nonce or serial fails verification.
        #[test]
        fn any_change_fails(pos in 0usize..400, byte in any::<u8>(), which in 0u8..4, delta in 1i64..200) {
            let ver = verifier();
            let mut body = v::NOTIFY_BODY.as_bytes().to_vec();
            let ts = (1554209980 + delta).to_string();
            let nonce = format!("c5ac7061fccab6bf3e254dcf98995b8{}", (byte % 9) + 1);
            let mut m = notify(v::PLATFORM_SERIAL, v::NOTIFY_SIGNATURE_CERT);
            match which {
                0 => {
                    let i = pos % body.len();
                    body[i] = if body[i] == byte { byte.wrapping_add(1) } else { byte };
                    m.body = &body;
                }
                1 => m.timestamp = &ts,
                2 => m.nonce = &nonce,
                _ => m.serial = v::PUBLIC_KEY_ID,
            }
            prop_assert!(ver.verify(&m, NOW).is_err());
        }
    }
}
