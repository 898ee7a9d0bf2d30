//! WeChat Pay orders (v2 or v3, `pay.api_version`): JSAPI (inside WeChat, for a logged-in buyer) and NATIVE (a QR to scan), their status and
//! closing, and the payment notify applied exactly once however many times, in whatever order and however
//! concurrently WeChat delivers it.

pub mod buy;
pub mod gateway;
pub mod reconciler;
pub mod repo;
pub mod routes;

pub use gateway::Gateway;

/// The merchant's clients: one per appid it takes payments for — the official account's (web pages, NATIVE codes)
/// and, when a mini program is configured, the mini program's (WeChat ties a JSAPI payment's openid to the appid of
/// its order, and `orderquery`, `closeorder` and refunds must name that same appid).
#[derive(Clone, Debug)]
pub struct Payers {
    /// The official account's.
    pub web: Gateway,
    /// The mini program's.
    pub miniprogram: Option<Gateway>,
}

impl Payers {
    /// The client for an order's appid (`None`: the official account's).
    pub fn for_appid(&self, appid: Option<&str>) -> Option<&Gateway> {
        match appid {
            None => Some(&self.web),
            Some(a) if self.web.app_id().as_str() == a => Some(&self.web),
            Some(a) => self.miniprogram.as_ref().filter(|m| m.app_id().as_str() == a),
        }
    }

    /// Every appid's client.
    pub fn all(&self) -> impl Iterator<Item = &Gateway> {
        std::iter::once(&self.web).chain(self.miniprogram.as_ref())
    }
}
