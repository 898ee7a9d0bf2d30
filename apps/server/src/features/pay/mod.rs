//! WeChat Pay v2 orders: JSAPI (inside WeChat, for a logged-in buyer) and NATIVE (a QR to scan), their status and
//! closing, and the payment notify applied exactly once however many times, in whatever order and however
//! concurrently WeChat delivers it.

pub mod buy;
pub mod reconciler;
pub mod repo;
pub mod routes;

use wechat_pay::PayClient;

/// The merchant's clients: one per appid it takes payments for — the official account's (web pages, NATIVE codes)
/// and, when a mini program is configured, the mini program's (WeChat ties a JSAPI payment's openid to the appid of
/// its order, and `orderquery`, `closeorder` and refunds must name that same appid).
#[derive(Clone, Debug)]
pub struct Payers {
    /// The official account's.
    pub web: PayClient,
    /// The mini program's.
    pub miniprogram: Option<PayClient>,
}

impl Payers {
    /// The client for an order's appid (`None`: the official account's).
    pub fn for_appid(&self, appid: Option<&str>) -> Option<&PayClient> {
        match appid {
            None => Some(&self.web),
            Some(a) if self.web.merchant().app_id.as_str() == a => Some(&self.web),
            Some(a) => self.miniprogram.as_ref().filter(|m| m.merchant().app_id.as_str() == a),
        }
    }
}
