//! The `wx.config` of a page: its URL checked (http(s), fragment dropped — WeChat signs without it — on one of the
//! account's JS-SDK domains), the API list cleaned, and the signature made with the shared `jsapi_ticket` (N
//! instances fetch it once).

use super::State;

/// The APIs a config asks for unless the page names its own (`apis=a,b`).
pub const DEFAULT_JS_API_LIST: &[&str] = &["updateAppMessageShareData", "updateTimelineShareData"];

/// Why there is no config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No page URL.
    #[error("give the page's URL: ?url=<location.href>")]
    MissingUrl,
    /// Not an http(s) URL.
    #[error("{0}")]
    InvalidUrl(String),
    /// The page's host is not a JS-SDK domain of the account.
    #[error("{host} is not a JS-SDK domain of this account (wechat.js_domains: {allowed})")]
    NotAllowed {
        /// The page's host.
        host: String,
        /// The domains, comma-separated.
        allowed: String,
    },
    /// WeChat gave no `jsapi_ticket` just now.
    #[error("no jsapi_ticket: {0}")]
    NoTicket(wechat_oauth::Error),
}

/// The signed config of `url` at `now` (Unix seconds), and the API list to ask for.
pub async fn config(
    state: &State,
    url: Option<&str>,
    apis: Option<&str>,
    now: i64,
) -> Result<(wechat_oauth::jssdk::JsSdkConfig, Vec<String>), ConfigError> {
    let page = url.filter(|u| !u.is_empty()).ok_or(ConfigError::MissingUrl)?;
    // Parsed once: the host checked here, the same URL signed below.
    let page = wechat_oauth::jssdk::PageUrl::parse(page).map_err(|e| ConfigError::InvalidUrl(e.to_string()))?;
    if !state.js_domains.iter().any(|d| d == page.host()) {
        return Err(ConfigError::NotAllowed {
            host: page.host().to_owned(),
            allowed: state.js_domains.join(", "),
        });
    }
    let apis: Vec<String> = match apis {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty() && a.len() <= 64 && a.chars().all(|c| c.is_ascii_alphanumeric()))
            .map(str::to_owned)
            .collect(),
        None => DEFAULT_JS_API_LIST.iter().map(|s| (*s).to_owned()).collect(),
    };
    let signed = state
        .official
        .jssdk_config_for_page(&page, now)
        .await
        .map_err(ConfigError::NoTicket)?;
    Ok((signed, apis))
}
