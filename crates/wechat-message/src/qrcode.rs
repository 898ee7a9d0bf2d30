//! Parametric QR codes of an official account (`qrcode/create`, `showqrcode`): scanning one sends the account a
//! `subscribe` event with `qrscene_{scene}` (a new follower) or a `SCAN` event (a follower) — see
//! [`Router::on_scene`](crate::Router::on_scene).

use serde::Deserialize;
#[cfg(feature = "client")]
use wechat_core::AccessTokenManager;

/// Where `showqrcode` lives (not on the API host).
pub const SHOW_BASE_URL: &str = "https://mp.weixin.qq.com";

/// The error of this module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Refused before sending.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// WeChat's answer (errcode, transport…).
    #[error(transparent)]
    Wechat(#[from] wechat_core::Error),
}

/// A code's scene: a number or a string (1–64 characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scene {
    /// `scene_id`: 1–4,294,967,295 for temporary codes, 1–100,000 for permanent ones.
    Id(u32),
    /// `scene_str`: 1–64 characters.
    Str(String),
}

/// What to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrCodeRequest {
    scene: Scene,
    /// `None`: permanent (WeChat caps an account at 100,000 of them).
    expire_seconds: Option<u32>,
}

impl QrCodeRequest {
    /// A temporary code valid for `expire_seconds` (1 s to 30 days).
    ///
    /// ```
    /// use wechat_message::qrcode::{QrCodeRequest, Scene};
    /// assert!(QrCodeRequest::temporary(Scene::Str("c42".into()), 86_400).is_ok());
    /// assert!(QrCodeRequest::temporary(Scene::Str("c42".into()), 2_592_001).is_err());
    /// assert!(QrCodeRequest::permanent(Scene::Id(100_001)).is_err());
    /// ```
    pub fn temporary(scene: Scene, expire_seconds: u32) -> Result<Self, Error> {
        if !(1..=2_592_000).contains(&expire_seconds) {
            return Err(Error::Invalid("expire_seconds must be 1 to 2592000 (30 days)".into()));
        }
        Self::check(&scene, false)?;
        Ok(Self {
            scene,
            expire_seconds: Some(expire_seconds),
        })
    }

    /// A permanent code.
    pub fn permanent(scene: Scene) -> Result<Self, Error> {
        Self::check(&scene, true)?;
        Ok(Self {
            scene,
            expire_seconds: None,
        })
    }

    fn check(scene: &Scene, permanent: bool) -> Result<(), Error> {
        match scene {
            Scene::Id(0) => Err(Error::Invalid("scene_id must be at least 1".into())),
            Scene::Id(id) if permanent && *id > 100_000 => {
                Err(Error::Invalid("a permanent code's scene_id is 1 to 100000".into()))
            }
            Scene::Str(s) if s.is_empty() || s.chars().count() > 64 => {
                Err(Error::Invalid("scene_str must be 1 to 64 characters".into()))
            }
            _ => Ok(()),
        }
    }

    /// The request body.
    pub fn body(&self) -> serde_json::Value {
        let (action, scene) = match (&self.scene, self.expire_seconds.is_some()) {
            (Scene::Id(id), true) => ("QR_SCENE", serde_json::json!({"scene_id": id})),
            (Scene::Id(id), false) => ("QR_LIMIT_SCENE", serde_json::json!({"scene_id": id})),
            (Scene::Str(s), true) => ("QR_STR_SCENE", serde_json::json!({"scene_str": s})),
            (Scene::Str(s), false) => ("QR_LIMIT_STR_SCENE", serde_json::json!({"scene_str": s})),
        };
        let mut b = serde_json::json!({"action_name": action, "action_info": {"scene": scene}});
        if let Some(s) = self.expire_seconds {
            b["expire_seconds"] = s.into();
        }
        b
    }
}

/// A created code.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct QrTicket {
    /// Exchanges for the image at `showqrcode`.
    pub ticket: String,
    /// Seconds it stays valid (temporary codes).
    #[serde(default)]
    pub expire_seconds: Option<u64>,
    /// What the code encodes (render it yourself instead of fetching the image, if you like).
    pub url: String,
}

impl QrTicket {
    /// The image's address at `show_base_url` ([`SHOW_BASE_URL`], or a simulator).
    pub fn image_url(&self, show_base_url: &str) -> String {
        let ticket: String = url::form_urlencoded::byte_serialize(self.ticket.as_bytes()).collect();
        format!(
            "{}/cgi-bin/showqrcode?ticket={ticket}",
            show_base_url.trim_end_matches('/')
        )
    }
}

/// Creates parametric QR codes with the account's access token.
#[cfg(feature = "client")]
#[derive(Clone, Debug)]
pub struct QrCodeClient {
    tokens: AccessTokenManager,
}

#[cfg(feature = "client")]
impl QrCodeClient {
    /// A client on the token manager's transport and endpoints.
    pub fn new(tokens: AccessTokenManager) -> Self {
        Self { tokens }
    }

    /// The QR-code API of an [`App`](wechat_core::App).
    pub fn from_app(app: &wechat_core::App) -> Self {
        Self::new(app.tokens().clone())
    }

    /// `POST /cgi-bin/qrcode/create`. Not retried on transient failures (a second code would be made); a rejected
    /// token is renewed and the call made once more.
    pub async fn create(&self, request: &QrCodeRequest) -> Result<QrTicket, Error> {
        Ok(self.tokens.send(request).await?)
    }
}

// The request is its own value (sans-IO); not idempotent — a resend makes a second code.
wechat_core::json_post_request!(
    QrCodeRequest,
    "/cgi-bin/qrcode/create",
    idempotent = false,
    QrTicket,
    |out: QrTicket| out
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_the_right_action() {
        let t = QrCodeRequest::temporary(Scene::Id(7), 60).unwrap().body();
        assert_eq!(
            (t["action_name"].as_str(), t["expire_seconds"].as_u64()),
            (Some("QR_SCENE"), Some(60))
        );
        let p = QrCodeRequest::permanent(Scene::Str("c42".into())).unwrap().body();
        assert_eq!(p["action_name"], "QR_LIMIT_STR_SCENE");
        assert_eq!(p["action_info"]["scene"]["scene_str"], "c42");
        assert!(p.get("expire_seconds").is_none());
        assert!(QrCodeRequest::temporary(Scene::Str(String::new()), 60).is_err());
        assert!(QrCodeRequest::temporary(Scene::Str("x".repeat(65)), 60).is_err());
        assert!(QrCodeRequest::temporary(Scene::Id(0), 60).is_err());
        let ticket = QrTicket {
            ticket: "gQ a/b+".into(),
            expire_seconds: None,
            url: "u".into(),
        };
        assert_eq!(
            ticket.image_url("http://127.0.0.1:9000"),
            "http://127.0.0.1:9000/cgi-bin/showqrcode?ticket=gQ+a%2Fb%2B"
        );
    }
}
