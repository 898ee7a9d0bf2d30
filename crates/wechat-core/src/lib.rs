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
//! Features: `reqwest` (default) is the HTTP transport and implies `client` — the async client, [`App`], the token
//! manager (tokio's locks and timer; the tokio runtime is required to run them, none is started). With
//! `default-features = false` the crate is its pure parts: credentials, XML, push signatures and message crypto,
//! and the [request values](request) — no tokio, no reqwest.
//!
//! ```
//! # fn main() -> wechat_core::Result<()> {
//! // One app, wired once: its client and its one token manager belong together.
//! let app = wechat_core::App::builder()
//!     .app_id("wxd930ea5d5a258f4f")
//!     .secret("not-a-real-secret")
//!     .base_url("http://127.0.0.1:9000") // e.g. `wxkit sim --addr 127.0.0.1:9000`; WeChat's hosts when left out
//!     .build()?;
//! assert_eq!(app.tokens().app_id().as_str(), "wxd930ea5d5a258f4f");
//! assert!(!format!("{app:?}").contains("not-a-real-secret"));
//! // In async code: `app.send(&wechat_core::request::GetTicket::jsapi()).await?` — any request value, with the
//! // app's access token, refreshed once if WeChat rejects it.
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#[cfg(feature = "client")]
pub mod app;
pub mod client;
#[cfg(feature = "client")]
pub mod clock;
pub mod credentials;
pub mod encoding;
pub mod error;
pub mod push;
pub mod request;
pub mod retry;
#[cfg(feature = "client")]
pub mod token;
pub mod transport;
pub mod xml;

#[cfg(feature = "client")]
pub use app::{App, AppBuilder};
#[cfg(feature = "client")]
pub use client::WechatClient;
pub use client::{Endpoints, build_url, parse_base_url, parse_json_response};
#[cfg(feature = "client")]
pub use clock::{Clock, SystemClock};
pub use credentials::{AccessToken, AppId, AppSecret, OpenId, SecretString, Ticket, UnionId, constant_time_eq};
pub use error::{BoxError, Error, Result, StoreError, TransportError};
pub use request::ApiRequest;
pub use retry::RetryPolicy;
#[cfg(feature = "client")]
pub use token::{
    AccessTokenManager, MemoryTokenStore, StoredToken, TokenKind, TokenManagerOptions, TokenMode, TokenStore,
};
#[cfg(feature = "reqwest")]
pub use transport::ReqwestTransport;
pub use transport::{HttpRequest, HttpResponse, Transport};

/// The attribute to implement this crate's async traits ([`Transport`], `TokenStore`) with.
pub use async_trait::async_trait;

/// Re-exports for the crate's macros (not public API).
#[doc(hidden)]
pub mod __private {
    pub use serde;
}
