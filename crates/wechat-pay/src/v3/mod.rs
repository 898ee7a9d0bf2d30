//! # WeChat Pay API v3
//!
//! JSON over HTTPS, RSA signatures both ways, AES-256-GCM for what WeChat Pay seals.
//!
//! * [`RequestSigner`]: the `WECHATPAY2-SHA256-RSA2048` Authorization of every request;
//! * [`Verifier`]: WeChat Pay's signatures on responses and notifies, checked against platform certificates and
//!   WeChat Pay public keys **side by side**, keyed by `Wechatpay-Serial` — so the week-long switch-over from
//!   certificate mode to public-key mode, when notifies come signed either way, just works; the timestamp within
//!   5 minutes; `WECHATPAY/SIGNTEST/` probes refused;
//! * [`PlatformKeys`]: certificates downloaded, opened, checked, refreshed ahead of expiry and once (single flight,
//!   with a floor between downloads) when an unknown serial appears; shared across instances by a
//!   [`CertificateStore`];
//! * [`Client`]: prepay for JSAPI / mini program / APP / H5 / NATIVE, query, close, refunds, refund query, payment
//!   parameters (`paySign` RSA), notifies decrypted into typed [`Event`]s; errors typed from the `{code, message,
//!   detail}` body ([`ErrorCode`]).
//!
//! ```
//! # let cert_pem = include_str!("../../testdata/platform.pem");
//! use wechat_pay::v3::{Certificate, SignedMessage, Verifier, VerifyError};
//! let verifier = Verifier::new().with_certificate(&Certificate::from_pem(cert_pem)?);
//! let probe = SignedMessage { timestamp: "1700000000", nonce: "n", signature: "WECHATPAY/SIGNTEST/x",
//!     serial: "5157F09EFDC096DE15EBE81A47057A7232F1B8E1", body: b"{}" };
//! assert_eq!(verifier.verify(&probe, 1_700_000_000), Err(VerifyError::Probe));
//! # Ok::<(), wechat_pay::v3::KeyError>(())
//! ```

pub mod aead;
pub mod certs;
pub mod client;
pub mod error;
pub mod keys;
pub mod notify;
pub mod request;
pub mod sensitive;
pub mod sign;
pub mod types;
pub mod verifier;

#[cfg(test)]
pub(crate) mod vectors;

pub use aead::{ApiV3Key, EncryptedResource};
#[cfg(feature = "client")]
pub use certs::PlatformKeys;
pub use certs::{CertificateStore, MemoryCertificateStore, RefreshPolicy, StoredCertificates};
#[cfg(feature = "client")]
pub use client::{Client, ClientBuilder};
pub use error::ErrorCode;
pub use keys::{Certificate, KeyError, MerchantPrivateKey, PublicKey};
pub use notify::{Event, Notify};
pub use sign::{Authorization, RequestSigner, pay_sign};
pub use types::{
    Amount, AppPayParams, Channel, Order, Payer, Prepay, RefundAmount, RefundInfo, RefundRequest, RefundState,
    Transaction, jsapi_pay_params, rfc3339_beijing,
};
pub use verifier::{KeyKind, PROBE_PREFIX, SignedMessage, Verifier, VerifyError};
