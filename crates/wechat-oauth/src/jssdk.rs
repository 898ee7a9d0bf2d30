//! JS-SDK `wx.config` signatures.

use crate::error::{Result, invalid};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use sha1::{Digest, Sha1};
#[cfg(feature = "client")]
use wechat_core::AccessTokenManager;

/// `sha1("jsapi_ticket=T&noncestr=N&timestamp=TS&url=URL")`, lowercase hex. `url` is the page URL without its
/// `#fragment`, not encoded.
///
/// ```
/// assert_eq!(
///     wechat_oauth::jssdk::signature(
///         "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
///         "Wm3WZYTPz0wzccnW",
///         "1414587457",
///         "http://mp.weixin.qq.com?params=value",
///     ),
///     "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
/// );
/// ```
pub fn signature(jsapi_ticket: &str, noncestr: &str, timestamp: &str, url: &str) -> String {
    let mut h = Sha1::new();
    h.update(format!("jsapi_ticket={jsapi_ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}").as_bytes());
    wechat_core::push::hex_lower(&h.finalize())
}

/// What the page passes to `wx.config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct JsSdkConfig {
    /// The official account's app id.
    pub app_id: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// A fresh random nonce.
    pub nonce_str: String,
    /// The signature.
    pub signature: String,
}

/// A random 16-character alphanumeric nonce.
pub fn random_nonce() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

/// Strips the `#fragment` and checks that `page_url` is an absolute http(s) URL.
pub fn normalize_page_url(page_url: &str) -> Result<&str> {
    Ok(PageUrl::parse(page_url)?.as_str())
}

/// A page URL checked once: absolute http(s), `#fragment` dropped (WeChat signs without it), host known — for a
/// service that must also check the host (its JS-SDK domains) before signing, without parsing twice.
///
/// ```
/// let page = wechat_oauth::jssdk::PageUrl::parse("https://Shop.Example.com/p?id=7#top")?;
/// assert_eq!(page.as_str(), "https://Shop.Example.com/p?id=7");
/// assert_eq!(page.host(), "shop.example.com");
/// assert!(wechat_oauth::jssdk::PageUrl::parse("ftp://shop.example.com/").is_err());
/// # Ok::<(), wechat_oauth::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageUrl<'a> {
    url: &'a str,
    host: String,
}

impl<'a> PageUrl<'a> {
    /// Checks `page_url` (see the type).
    pub fn parse(page_url: &'a str) -> Result<PageUrl<'a>> {
        let without_fragment = page_url.split('#').next().unwrap_or(page_url);
        let parsed = url::Url::parse(without_fragment).map_err(|e| invalid(format!("page URL is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("page URL must be http(s)"));
        }
        Ok(PageUrl {
            url: without_fragment,
            // The URL parser lowercases domain names already; IP addresses have no case.
            host: parsed.host_str().unwrap_or_default().to_owned(),
        })
    }

    /// The URL as WeChat signs it (no fragment, not re-encoded).
    pub fn as_str(&self) -> &'a str {
        self.url
    }

    /// The host, lowercase.
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// Signs `page_url` with the cached `jsapi_ticket`, a fresh nonce and the current time.
#[cfg(feature = "client")]
pub async fn config(tokens: &AccessTokenManager, page_url: &str, now: i64) -> Result<JsSdkConfig> {
    config_for_page(tokens, &PageUrl::parse(page_url)?, now).await
}

/// [`config`] for a URL checked already.
#[cfg(feature = "client")]
pub async fn config_for_page(tokens: &AccessTokenManager, page: &PageUrl<'_>, now: i64) -> Result<JsSdkConfig> {
    let ticket = tokens.jsapi_ticket().await?;
    let nonce_str = random_nonce();
    let timestamp = now.to_string();
    Ok(JsSdkConfig {
        app_id: tokens.app_id().as_str().to_owned(),
        timestamp: now,
        signature: signature(ticket.secret(), &nonce_str, &timestamp, page.as_str()),
        nonce_str,
    })
}
