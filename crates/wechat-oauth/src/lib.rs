//! # wechat-oauth
//!
//! Who is this user? Web OAuth2 for official-account H5 pages, mini-program login, and the signatures that go with
//! them — over [`wechat_core`]'s transport, retries and token manager.
//!
//! * [`web`]: authorize URL (exact WeChat format), code → access token/openid (`unionid`, `is_snapshotuser`
//!   surfaced), refresh, userinfo, auth check;
//! * [`state`]: an HMAC-signed, expiring, single-use `state` carrying a same-origin return path (no open redirect,
//!   no cookie needed);
//! * [`miniprogram`]: `jscode2session`, encryptedData decryption with watermark check, rawData signatures,
//!   `getwxacodeunlimit` with scene validation;
//! * [`jssdk`]: `wx.config` signatures from the cached `jsapi_ticket`.
//!
//! The full H5 round trip:
//!
//! ```no_run
//! use wechat_core::App;
//! use wechat_oauth::state::{MemoryStateStore, StateSigner};
//! use wechat_oauth::web::{OAuthClient, Scope};
//!
//! # async fn demo(now: i64) -> Result<(), Box<dyn std::error::Error>> {
//! let app = App::builder().app_id("wx1234567890abcdef").secret("app-secret").base_url("http://127.0.0.1:9000").build()?;
//! let oauth = OAuthClient::from_app(&app);
//! let signer = StateSigner::new(b"server-side secret of at least 32 bytes")?;
//! let used_states = MemoryStateStore::default();
//!
//! // 1. The user opens /c/ABC without a session: send them to WeChat with a signed state.
//! let state = signer.issue("/c/ABC", now, 600)?;
//! let authorize = oauth.authorize_url("https://shop.example.com/auth/callback", Scope::Base, Some(&state.value))?;
//! // -> 302 Location: authorize
//!
//! // 2. WeChat redirects to /auth/callback?code=CODE&state=STATE.
//! # let (code, returned_state) = ("CODE", state.value.clone());
//! let verified = signer.verify_once(&returned_state, now, &used_states).await?; // tampered/expired/replayed → Err
//! let token = oauth.exchange_code(code).await?; // 40029 / 40163 → typed errors
//! if token.is_snapshotuser {
//!     // A "snapshot" visitor: not a real user; do not log them in.
//! }
//! // 3. Log in token.openid, then 302 to verified.return_path (always a same-origin path).
//! # let _ = (authorize, verified);
//! # Ok(())
//! # }
//! ```
//!
//! Mini-program login:
//!
//! ```no_run
//! use wechat_core::App;
//! use wechat_oauth::miniprogram::{MiniProgramClient, verify_raw_data};
//!
//! # async fn demo(js_code: &str, raw_data: &str, signature: &str, encrypted: &str, iv: &str) -> wechat_oauth::Result<()> {
//! let app = App::builder().app_id("wx1234567890abcdef").secret("app-secret").base_url("http://127.0.0.1:9000").build()?;
//! let mp = MiniProgramClient::from_app(&app);
//!
//! let session = mp.code_to_session(js_code).await?; // the code from wx.login()
//! verify_raw_data(raw_data, &session.session_key, signature)?; // wx.getUserInfo's rawData + signature
//! let profile = mp.decrypt(&session.session_key, encrypted, iv)?; // watermark.appid checked
//! # let _ = profile;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
pub mod error;
pub mod jssdk;
pub mod miniprogram;
pub mod state;
pub mod web;

pub use error::{Error, Result};
