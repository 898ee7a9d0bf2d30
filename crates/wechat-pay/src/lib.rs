//! # wechat-pay
//!
//! WeChat Pay v2 and v3, done right. v3 (JSON, RSA, AES-GCM, platform certificates and public keys) is in [`v3`]; v2:
//!
//! * [`sign`]: MD5 and HMAC-SHA256 signatures over every non-empty field but `sign` (unknown ones included),
//!   verified in constant time; amounts are integer fen ([`Fen`]);
//! * [`xml`]: a quick-xml codec that refuses DOCTYPE/entities (XXE, billion laughs), caps body size, handles CDATA
//!   and unknown fields, and never panics on hostile input;
//! * [`PayClient`]: [`UnifiedOrder`] (JSAPI, NATIVE, APP, MWEB with their required fields), order query, close,
//!   [`Refund`] (merchant certificate transport), refund query — each response checked in order: transport FAIL,
//!   signature, merchant, business FAIL;
//! * [`jsapi_pay_params`] for `wx.requestPayment`;
//! * [`notify`]: payment notify parse + verify + the exact SUCCESS reply; refund notify `req_info` decryption.
//!
//! ```
//! use wechat_pay::{Merchant, PayKey, SignType, notify};
//!
//! let merchant = Merchant::new("wxd930ea5d5a258f4f", "10000100", PayKey::new("192006250b4c09247ec02edce69f6a2d"), SignType::Md5);
//! // In the notify handler: verify, then apply exactly once, then reply.
//! let body = b"<xml><return_code>SUCCESS</return_code><sign>forged</sign></xml>";
//! match notify::parse_payment_notify(&merchant, body) {
//!     Ok(paid) => { let _ = paid; /* check total_fee against the order, apply once */ }
//!     Err(e) => assert!(matches!(e, wechat_pay::Error::NotifySignature(_))),
//! }
//! assert!(notify::SUCCESS_REPLY.contains("SUCCESS"));
//! ```

#![deny(missing_docs)]
// Without `client`, helpers only the client uses are unused; the pure parts are what is left.
#![cfg_attr(not(feature = "client"), allow(unused_imports, dead_code))]
pub mod bill;
pub mod client;
pub mod error;
pub mod notify;
pub mod request;
pub mod sign;
pub mod types;
pub mod v3;
/// The `http` crate whose `HeaderMap` [`v3::Client::verify_notify`] takes: a caller builds the map from whatever its
/// web framework gives without adding (and matching the version of) `http` itself.
pub use http;
/// The hardened XML codec (shared with server pushes; lives in wechat-core).
pub use wechat_core::xml;

#[cfg(feature = "client")]
pub use client::PayClient;
pub use error::{Error, Result};
pub use sign::{PayKey, SignType};
pub use types::{
    Fen, JsapiPayParams, Merchant, OrderRef, OrderStatus, PrepayOrder, Refund, RefundAccepted, RefundStatus,
    TradeState, TradeType, UnifiedOrder, UnifiedOrderBuilder, check_response, jsapi_pay_params,
};
