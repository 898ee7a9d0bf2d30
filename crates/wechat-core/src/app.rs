//! [`App`]: one WeChat app (official account, mini program, website app) wired once — its id and secret, the client
//! that talks to WeChat for it, and its single access-token manager — so that every API group built from it uses the
//! same app's tokens. The product handles (`OfficialAccount`, `MiniProgram` in the `wxkit-wechat` crate) and the
//! low-level clients' `from_app` constructors take it.

use crate::client::{Endpoints, WechatClient};
use crate::credentials::{AppId, AppSecret};
use crate::error::{Error, Result};
use crate::request::ApiRequest;
use crate::retry::RetryPolicy;
use crate::token::{AccessTokenManager, Clock, MemoryTokenStore, TokenManagerOptions, TokenStore};
use crate::transport::Transport;
use std::sync::Arc;

/// One app: id, secret, client and its one [`AccessTokenManager`]. Cheap to clone (clones share the tokens).
///
/// ```
/// use wechat_core::App;
///
/// # fn main() -> wechat_core::Result<()> {
/// let app = App::builder()
///     .app_id("wxd930ea5d5a258f4f")
///     .secret("not-a-real-secret")
///     .base_url("http://127.0.0.1:9000") // the simulator; WeChat's hosts when left out
///     .build()?;
/// assert_eq!(app.app_id().as_str(), "wxd930ea5d5a258f4f");
/// // The manager belongs to this app: there is no way to pair its client with another app's tokens.
/// assert_eq!(app.tokens().app_id(), app.app_id());
/// assert!(!format!("{app:?}").contains("not-a-real-secret"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct App {
    tokens: AccessTokenManager,
}

impl App {
    /// Starts building an app.
    pub fn builder() -> AppBuilder {
        AppBuilder::default()
    }

    /// The app of an existing token manager (its id, secret and client come with it).
    pub fn from_tokens(tokens: AccessTokenManager) -> Self {
        Self { tokens }
    }

    /// The app's id.
    pub fn app_id(&self) -> &AppId {
        self.tokens.app_id()
    }

    /// The app's secret (for the calls that take it: `jscode2session`, web OAuth). Prints `[redacted]`.
    pub fn secret(&self) -> &AppSecret {
        self.tokens.secret()
    }

    /// The client talking to WeChat (or the simulator) for this app.
    pub fn client(&self) -> &WechatClient {
        self.tokens.client()
    }

    /// The app's one token manager (access token, `jsapi` and `wx_card` tickets).
    pub fn tokens(&self) -> &AccessTokenManager {
        &self.tokens
    }

    /// Sends a [request value](crate::request) with this app's access token.
    pub async fn send<R: ApiRequest + Sync>(&self, request: &R) -> Result<R::Response> {
        self.tokens.send(request).await
    }
}

/// Builds an [`App`]. `app_id` and `secret` are required; everything else has a default: WeChat's hosts, the reqwest
/// transport (with the `reqwest` feature), an in-memory token store, the default retry policy and the system clock.
#[derive(Debug, Default)]
#[must_use]
pub struct AppBuilder {
    app_id: Option<AppId>,
    secret: Option<AppSecret>,
    endpoints: Option<Endpoints>,
    base_url_error: Option<Error>,
    transport: Option<Arc<dyn Transport>>,
    store: Option<Arc<dyn TokenStore>>,
    retry: Option<RetryPolicy>,
    clock: Option<Arc<dyn Clock>>,
    options: Option<TokenManagerOptions>,
}

impl AppBuilder {
    /// The app's id (`wx…`).
    pub fn app_id(mut self, app_id: impl Into<AppId>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// The app's secret (AppSecret). Never printed.
    pub fn secret(mut self, secret: impl Into<AppSecret>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// The hosts to talk to (default: WeChat's).
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.endpoints = Some(endpoints);
        self
    }

    /// Every host on one base URL, as the simulator serves them (`wxkit sim`, or `wechat_sim::SimServer`). An
    /// invalid URL is reported by [`build`](Self::build).
    pub fn base_url(mut self, base_url: &str) -> Self {
        match Endpoints::single(base_url) {
            Ok(endpoints) => self.endpoints = Some(endpoints),
            Err(e) => self.base_url_error = Some(e),
        }
        self
    }

    /// The HTTP transport (default: reqwest with rustls, when the `reqwest` feature is on — otherwise required).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Where tokens are shared (default: in memory, for one process). Give every process of a service the same
    /// store (a database table, Redis) so that they share one token and one refresher.
    pub fn token_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The retry policy for reads (mutations are never retried).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// The clock (token expiry, retry backoff): a test clock makes backoff cost nothing.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The token manager's options (classic or stable token, refresh-ahead, lease).
    pub fn token_options(mut self, options: TokenManagerOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// The app, or [`Error::InvalidRequest`] naming what is missing or wrong.
    pub fn build(self) -> Result<App> {
        if let Some(e) = self.base_url_error {
            return Err(e);
        }
        let missing = |what: &str| Error::InvalidRequest {
            message: format!("App::builder(): {what} is required"),
        };
        let app_id = self
            .app_id
            .filter(|a| !a.as_str().is_empty())
            .ok_or_else(|| missing("app_id"))?;
        let secret = self.secret.filter(|s| !s.is_empty()).ok_or_else(|| missing("secret"))?;
        let transport = match self.transport {
            Some(t) => t,
            None => default_transport()?,
        };
        let mut client = WechatClient::new(transport).with_endpoints(self.endpoints.unwrap_or_default());
        if let Some(retry) = self.retry {
            client = client.with_retry(retry);
        }
        if let Some(clock) = &self.clock {
            client = client.with_clock(clock.clone());
        }
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryTokenStore::new()));
        let mut tokens =
            AccessTokenManager::with_options(client, app_id, secret, store, self.options.unwrap_or_default());
        if let Some(clock) = self.clock {
            tokens = tokens.with_clock(clock);
        }
        Ok(App { tokens })
    }
}

#[cfg(feature = "reqwest")]
fn default_transport() -> Result<Arc<dyn Transport>> {
    Ok(Arc::new(crate::transport::ReqwestTransport::new()?))
}

#[cfg(not(feature = "reqwest"))]
fn default_transport() -> Result<Arc<dyn Transport>> {
    Err(Error::InvalidRequest {
        message: "App::builder(): a transport is required (the `reqwest` feature, which provides the default, is off)"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_names_what_is_missing_or_wrong() {
        let e = App::builder().secret("s").build().unwrap_err();
        assert!(e.to_string().contains("app_id"), "{e}");
        let e = App::builder().app_id("wx1").build().unwrap_err();
        assert!(e.to_string().contains("secret"), "{e}");
        let e = App::builder()
            .app_id("wx1")
            .secret("s")
            .base_url("ftp://x")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("ftp://x"), "{e}");
    }
}
