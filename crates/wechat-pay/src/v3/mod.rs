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
//!   detail}` body ([`ErrorCode`]);
//! * [`marketing::busifavor`]: 商家券 (merchant coupons in the WeChat card bag): stocks, use, deactivate, return,
//!   callbacks, and the H5 / mini-program sends signed with the API v2 key.
//!
//! An order and its notify, against the simulator started in this process (every line the example uses is here):
//!
//! ```
//! use std::sync::Arc;
//! use wechat_core::AppId;
//! use wechat_pay::v3::{ApiV3Key, Channel, Client, Event, MerchantPrivateKey, Order, Prepay, PublicKey, RequestSigner};
//! use wechat_pay::Fen;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! // WeChat Pay (simulated): it knows the merchant's API certificate and signs with its WeChat Pay public key.
//! let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[("wxdocv3app000001", "doc-secret-0123456789abcdef012")]).await?;
//! let merchant = sim.handle().add_v3_merchant(
//!     "1900000111",
//!     "docapiv3key0123456789abcdefghijk",
//!     wechat_sim::SANDBOX_MERCHANT_SERIAL,
//!     wechat_sim::SANDBOX_MERCHANT_CERT,
//!     wechat_sim::SigningMode::PublicKey,
//! )?;
//! let signer = RequestSigner::new(
//!     "1900000111",
//!     wechat_sim::SANDBOX_MERCHANT_SERIAL,
//!     MerchantPrivateKey::from_pem(wechat_sim::SANDBOX_MERCHANT_KEY)?,
//! );
//! let pay = Client::builder(signer, ApiV3Key::new("docapiv3key0123456789abcdefghijk"))
//!     .base_url(&sim.base_url()) // leave out for WeChat Pay itself
//!     .transport(Arc::new(wechat_core::ReqwestTransport::new()?))
//!     .public_key(merchant.public_key_id, PublicKey::from_pem(&merchant.public_key_pem)?)
//!     .build()?;
//!
//! // A JSAPI order, and what the page passes to wx.requestPayment.
//! let app = AppId::new("wxdocv3app000001");
//! let order = Order::new(&app, "拿铁", "DOCV3MOD000001", Fen(1800), "https://shop.example.com/notify",
//!     Channel::Jsapi { openid: "o-alice".into() })?;
//! let Prepay::PrepayId(prepay_id) = pay.prepay(&order).await? else { unreachable!("JSAPI answers a prepay_id") };
//! let params = pay.jsapi_params(&app, &prepay_id, 1_700_000_000);
//! assert_eq!(params.package, format!("prepay_id={prepay_id}"));
//!
//! // Paid: the notify, verified and decrypted from its headers and body as received.
//! sim.handle().pay_order("DOCV3MOD000001", None, None).map_err(|e| format!("{e:?}"))?;
//! let sent = sim.handle().notifications().into_iter().find(|n| n.out_trade_no == "DOCV3MOD000001").ok_or("no notify")?;
//! let body = sent.body().as_bytes().to_vec();
//! let mut headers = wechat_pay::http::HeaderMap::new();
//! for (name, value) in sim.handle().sign_v3_notify("1900000111", &body) {
//!     headers.insert(name, value.parse()?);
//! }
//! let notify = pay.verify_notify(&headers, &body).await?;
//! assert!(matches!(notify.event, Event::TransactionSuccess(ref t) if t.out_trade_no == "DOCV3MOD000001"));
//! sim.stop().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A `WECHATPAY/SIGNTEST/` probe (WeChat Pay's own check that a merchant verifies signatures) is refused:
//!
//! ```
//! use wechat_pay::v3::{Certificate, SignedMessage, Verifier, VerifyError};
//! let cert_pem = include_str!("../../testdata/platform.pem");
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
pub mod marketing;
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
