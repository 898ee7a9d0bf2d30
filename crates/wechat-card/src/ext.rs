//! The `cardExt` that `wx.addCard` takes, and its signature.

use serde::Serialize;

/// `sha1(concat(sort([api_ticket, timestamp, card_id, code, openid, nonce_str])))`, lowercase hex; absent
/// `code`/`openid` count as empty strings.
///
/// ```
/// let s = wechat_card::ext::card_signature(
///     "ojZ8YtyVyr30HheH3CM73y7h4jJE", "1404896688", "pjZ8Yt1XGILfi-FUsewpnnolGgZk", "1434008071", "", "123",
/// );
/// assert_eq!(s, "f137ab68b7f8112d20ee528ab6074564e2796250");
/// ```
pub fn card_signature(
    api_ticket: &str,
    timestamp: &str,
    card_id: &str,
    code: &str,
    openid: &str,
    nonce_str: &str,
) -> String {
    wechat_core::push::sorted_sha1(&[api_ticket, timestamp, card_id, code, openid, nonce_str])
}

/// Builds a signed `cardExt` for one card. The nonce is random for every build (a constant nonce, as some
/// tutorials use, lets anyone replay a signature).
///
/// ```
/// use wechat_card::ext::CardExt;
/// let ext = CardExt::new("pjZ8Yt1XGILfi-FUsewpnnolGgZk").code("1434008071").outer_str("campaign-7");
/// let json = ext.build("ojZ8YtyVyr30HheH3CM73y7h4jJE", 1404896688);
/// let v: serde_json::Value = serde_json::from_str(&json).unwrap();
/// assert_eq!(v["code"], "1434008071");
/// assert_eq!(v["signature"].as_str().unwrap().len(), 40);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CardExt {
    card_id: String,
    code: Option<String>,
    openid: Option<String>,
    outer_str: Option<String>,
    fixed_begintimestamp: Option<i64>,
}

#[derive(Serialize)]
struct ExtJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    openid: Option<&'a str>,
    timestamp: String,
    nonce_str: String,
    signature: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fixed_begintimestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outer_str: Option<&'a str>,
}

impl CardExt {
    /// For `card_id`.
    pub fn new(card_id: &str) -> Self {
        Self {
            card_id: card_id.to_owned(),
            ..Self::default()
        }
    }

    /// The code to give (cards with `use_custom_code`).
    pub fn code(mut self, code: &str) -> Self {
        self.code = Some(code.to_owned());
        self
    }

    /// Only this user may take it (cards with `bind_openid`).
    pub fn openid(mut self, openid: &str) -> Self {
        self.openid = Some(openid.to_owned());
        self
    }

    /// Our tag, echoed back in the `user_get_card` event.
    pub fn outer_str(mut self, outer_str: &str) -> Self {
        self.outer_str = Some(outer_str.to_owned());
        self
    }

    /// Start of validity for FIX_TERM cards, Unix seconds.
    pub fn fixed_begintimestamp(mut self, ts: i64) -> Self {
        self.fixed_begintimestamp = Some(ts);
        self
    }

    /// The card id.
    pub fn card_id(&self) -> &str {
        &self.card_id
    }

    /// The signed `cardExt` JSON string with a fresh random nonce.
    pub fn build(&self, api_ticket: &str, timestamp: i64) -> String {
        self.build_with_nonce(api_ticket, timestamp, &wechat_core_nonce())
    }

    /// The signed `cardExt` JSON string with a given nonce (tests and vectors).
    pub fn build_with_nonce(&self, api_ticket: &str, timestamp: i64, nonce: &str) -> String {
        let timestamp = timestamp.to_string();
        let signature = card_signature(
            api_ticket,
            &timestamp,
            &self.card_id,
            self.code.as_deref().unwrap_or(""),
            self.openid.as_deref().unwrap_or(""),
            nonce,
        );
        serde_json::to_string(&ExtJson {
            code: self.code.as_deref(),
            openid: self.openid.as_deref(),
            timestamp,
            nonce_str: nonce.to_owned(),
            signature,
            fixed_begintimestamp: self.fixed_begintimestamp,
            outer_str: self.outer_str.as_deref(),
        })
        .unwrap_or_default()
    }
}

fn wechat_core_nonce() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vector_and_random_nonces() {
        let json = CardExt::new("pjZ8Yt1XGILfi-FUsewpnnolGgZk")
            .code("1434008071")
            .build_with_nonce("ojZ8YtyVyr30HheH3CM73y7h4jJE", 1404896688, "123");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["signature"], "f137ab68b7f8112d20ee528ab6074564e2796250");
        assert_eq!(v["timestamp"], "1404896688");
        assert!(v.get("openid").is_none());
        let ext = CardExt::new("c");
        let a: serde_json::Value = serde_json::from_str(&ext.build("t", 1)).unwrap();
        let b: serde_json::Value = serde_json::from_str(&ext.build("t", 1)).unwrap();
        assert_ne!(a["nonce_str"], b["nonce_str"]);
    }
}
