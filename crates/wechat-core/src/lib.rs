//! # wechat-core
//!
//! The plumbing every wxkit WeChat crate shares:
//!
//! * [identifier and secret newtypes](credentials) — secrets print as `[redacted]`;
//! * a [`Transport`] seam over plain `http` types, with a reqwest implementation ([`ReqwestTransport`]);
//! * [`WechatClient`]: configurable [`Endpoints`] (WeChat or the simulator), errcode → typed [`Error`]s that keep
//!   WeChat's code and message, and a [`RetryPolicy`] for transient failures (errcode -1, HTTP 5xx, timeouts) that
//!   never retries configuration errors (40013, 40125, 40164);
//! * [`AccessTokenManager`]: one shared access token (and `jsapi` / `wx_card` ticket) per app, single-flight across
//!   tasks and — through a [`TokenStore`] lease — across processes, refreshed ahead of expiry, invalidated by
//!   compare-and-swap when WeChat rejects it.
//!
//! It depends on no web framework and no database: any tokio service can use it.
//!
//! ```
//! use std::sync::Arc;
//! use wechat_core::{AccessTokenManager, AppId, AppSecret, Endpoints, MemoryTokenStore, WechatClient};
//!
//! # fn main() -> wechat_core::Result<()> {
//! let client = WechatClient::with_default_transport()?
//!     .with_endpoints(Endpoints::single("http://127.0.0.1:9000")?); // e.g. `wxkit sim --addr 127.0.0.1:9000`
//! let tokens = AccessTokenManager::new(
//!     client,
//!     AppId::new("wxd930ea5d5a258f4f"),
//!     AppSecret::new("not-a-real-secret"),
//!     Arc::new(MemoryTokenStore::new()),
//! );
//! assert_eq!(tokens.app_id().as_str(), "wxd930ea5d5a258f4f");
//! assert!(!format!("{tokens:?}").contains("not-a-real-secret"));
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
pub mod client;
pub mod credentials;
pub mod error;
pub mod push;
pub mod retry;
pub mod token;
pub mod transport;
pub mod xml;

pub use client::{Endpoints, WechatClient, build_url, parse_base_url, parse_json_response};
pub use credentials::{AccessToken, AppId, AppSecret, OpenId, SecretString, Ticket, UnionId, constant_time_eq};
pub use error::{BoxError, Error, Result, StoreError, TransportError};
pub use retry::RetryPolicy;
pub use token::{
    AccessTokenManager, Clock, MemoryTokenStore, StoredToken, SystemClock, TokenKind, TokenManagerOptions, TokenMode,
    TokenStore,
};
#[cfg(feature = "reqwest")]
pub use transport::ReqwestTransport;
pub use transport::{HttpRequest, HttpResponse, Transport};

/// Re-exports for the crate's macros (not public API).
#[doc(hidden)]
pub mod __private {
    pub use serde;
}
