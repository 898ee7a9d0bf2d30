//! Messages the account sends: template messages, subscribe messages (mini program and official account) and
//! customer-service messages — typed requests, typed refusals, and never resent when WeChat may have delivered.

use crate::reply::Article;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
#[cfg(feature = "client")]
use wechat_core::AccessTokenManager;

/// Why WeChat refused to deliver, for the errcodes a sender acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// 43101: the user has not allowed this template (or used up the allowance).
    UserRefused,
    /// 43004: the user does not follow the account.
    NotFollowing,
    /// 47003: a data value (or another argument) is invalid.
    ArgumentInvalid,
    /// 40037: the template id is invalid.
    TemplateInvalid,
    /// 40003: the openid is invalid.
    OpenIdInvalid,
    /// 45015: the 48-hour customer-service window since the user's last message is over.
    ReplyWindowOver,
    /// 45047: the customer-service quota is used up.
    OutOfQuota,
}

impl Refusal {
    /// The refusal an error stands for, if it is one of these.
    pub fn of(error: &wechat_core::Error) -> Option<Self> {
        Some(match error.errcode()? {
            43101 => Refusal::UserRefused,
            43004 => Refusal::NotFollowing,
            47003 => Refusal::ArgumentInvalid,
            40037 => Refusal::TemplateInvalid,
            40003 => Refusal::OpenIdInvalid,
            45015 => Refusal::ReplyWindowOver,
            45047 => Refusal::OutOfQuota,
            _ => return None,
        })
    }
}

/// The error of this module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Refused before sending.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// WeChat's answer (see [`Refusal::of`]) or the transport.
    #[error(transparent)]
    Wechat(#[from] wechat_core::Error),
}

impl Error {
    /// The refusal, when WeChat refused for a reason a sender acts on.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Error::Wechat(e) => Refusal::of(e),
            Error::Invalid(_) => None,
        }
    }
}

/// Template / subscribe message data: `{key: {value}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Data(BTreeMap<String, String>);

impl Data {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key` = `value`.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    fn json(&self) -> Value {
        Value::Object(self.0.iter().map(|(k, v)| (k.clone(), json!({"value": v}))).collect())
    }
}

fn check(touser: &str, template_id: &str, data: &Data) -> Result<(), Error> {
    if touser.is_empty() || touser.len() > 64 {
        return Err(Error::Invalid("touser must be an openid".into()));
    }
    if template_id.is_empty() || template_id.len() > 64 {
        return Err(Error::Invalid("template_id must be 1 to 64 characters".into()));
    }
    if data.0.is_empty() {
        return Err(Error::Invalid("a template message needs data".into()));
    }
    Ok(())
}

/// An official-account template message (`message/template/send`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateMessage {
    touser: String,
    template_id: String,
    data: Data,
    url: Option<String>,
    miniprogram: Option<(String, String)>,
    client_msg_id: Option<String>,
}

impl TemplateMessage {
    /// A message to `touser` with `template_id` and its data.
    ///
    /// ```
    /// use wechat_message::send::{Data, TemplateMessage};
    /// let m = TemplateMessage::new("o-user", "TPL-REDEEMED", Data::new().with("thing1", "拿铁 · 核销成功"))?
    ///     .url("https://shop.example/c/ABCD")?;
    /// assert_eq!(m.body()["data"]["thing1"]["value"], "拿铁 · 核销成功");
    /// # Ok::<(), wechat_message::send::Error>(())
    /// ```
    pub fn new(touser: &str, template_id: &str, data: Data) -> Result<Self, Error> {
        check(touser, template_id, &data)?;
        Ok(Self {
            touser: touser.into(),
            template_id: template_id.into(),
            data,
            url: None,
            miniprogram: None,
            client_msg_id: None,
        })
    }

    /// Where a tap goes (http(s)).
    pub fn url(mut self, url: &str) -> Result<Self, Error> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(Error::Invalid("url must be http(s)".into()));
        }
        self.url = Some(url.into());
        Ok(self)
    }

    /// Opens a mini-program page instead (it wins over `url` when the mini program can open).
    pub fn miniprogram(mut self, appid: &str, pagepath: &str) -> Self {
        self.miniprogram = Some((appid.into(), pagepath.into()));
        self
    }

    /// WeChat's own de-duplication key: the same id within 24 h is sent once.
    pub fn client_msg_id(mut self, id: &str) -> Self {
        self.client_msg_id = Some(id.into());
        self
    }

    /// The request body.
    pub fn body(&self) -> Value {
        let mut b = json!({"touser": self.touser, "template_id": self.template_id, "data": self.data.json()});
        if let Some(u) = &self.url {
            b["url"] = json!(u);
        }
        if let Some((appid, pagepath)) = &self.miniprogram {
            b["miniprogram"] = json!({"appid": appid, "pagepath": pagepath});
        }
        if let Some(id) = &self.client_msg_id {
            b["client_msg_id"] = json!(id);
        }
        b
    }
}

/// A subscribe message: the mini program's (`message/subscribe/send`) or the official account's
/// (`message/subscribe/bizsend`). One allowance the user gave = one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeMessage {
    touser: String,
    template_id: String,
    data: Data,
    page: Option<String>,
    miniprogram_state: Option<String>,
}

impl SubscribeMessage {
    /// A message to `touser` with `template_id` and its data.
    pub fn new(touser: &str, template_id: &str, data: Data) -> Result<Self, Error> {
        check(touser, template_id, &data)?;
        Ok(Self {
            touser: touser.into(),
            template_id: template_id.into(),
            data,
            page: None,
            miniprogram_state: None,
        })
    }

    /// The page a tap opens.
    pub fn page(mut self, page: &str) -> Self {
        self.page = Some(page.into());
        self
    }

    /// `developer`, `trial` or `formal` (mini program).
    pub fn miniprogram_state(mut self, state: &str) -> Result<Self, Error> {
        if !matches!(state, "developer" | "trial" | "formal") {
            return Err(Error::Invalid("miniprogram_state is developer, trial or formal".into()));
        }
        self.miniprogram_state = Some(state.into());
        Ok(self)
    }

    /// The request body.
    pub fn body(&self) -> Value {
        let mut b = json!({"touser": self.touser, "template_id": self.template_id, "data": self.data.json()});
        if let Some(p) = &self.page {
            b["page"] = json!(p);
        }
        if let Some(s) = &self.miniprogram_state {
            b["miniprogram_state"] = json!(s);
        }
        b
    }
}

/// A customer-service message (`message/custom/send`): only within 48 h of the user's last interaction.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CustomMessage {
    /// Text.
    Text(String),
    /// An image by media id.
    Image {
        /// `media_id`.
        media_id: String,
    },
    /// One news article (a link).
    News(Article),
    /// A mini-program card.
    MiniProgramPage {
        /// The card's title.
        title: String,
        /// The mini program.
        appid: String,
        /// The page.
        pagepath: String,
        /// The card's image.
        thumb_media_id: String,
    },
}

impl CustomMessage {
    /// The request body to `touser`.
    pub fn body(&self, touser: &str) -> Value {
        match self {
            CustomMessage::Text(content) => json!({"touser": touser, "msgtype": "text", "text": {"content": content}}),
            CustomMessage::Image { media_id } => {
                json!({"touser": touser, "msgtype": "image", "image": {"media_id": media_id}})
            }
            CustomMessage::News(a) => json!({"touser": touser, "msgtype": "link", "link": {
                "title": a.title, "description": a.description, "url": a.url, "thumb_url": a.pic_url}}),
            CustomMessage::MiniProgramPage {
                title,
                appid,
                pagepath,
                thumb_media_id,
            } => json!({"touser": touser, "msgtype": "miniprogrampage", "miniprogrampage": {
                "title": title, "appid": appid, "pagepath": pagepath, "thumb_media_id": thumb_media_id}}),
        }
    }
}

/// Sends messages with an app's access token. Sends are never retried on transient failures — WeChat may have
/// delivered, and a user would get the message twice; a rejected token is renewed and the send made once more
/// (WeChat refused it before doing anything).
#[cfg(feature = "client")]
#[derive(Clone, Debug)]
pub struct MessageClient {
    tokens: AccessTokenManager,
}

#[derive(Deserialize)]
struct Sent {
    #[serde(default)]
    msgid: Option<i64>,
}

#[cfg(feature = "client")]
impl MessageClient {
    /// A client on the token manager's transport and endpoints (the official account's or the mini program's).
    pub fn new(tokens: AccessTokenManager) -> Self {
        Self { tokens }
    }

    /// The message API of an [`App`](wechat_core::App).
    pub fn from_app(app: &wechat_core::App) -> Self {
        Self::new(app.tokens().clone())
    }

    /// `message/template/send` → WeChat's msgid (its outcome arrives as `TEMPLATESENDJOBFINISH`).
    pub async fn send_template(&self, message: &TemplateMessage) -> Result<i64, Error> {
        self.tokens.send(message).await?.ok_or_else(|| {
            Error::Wechat(wechat_core::Error::Decode {
                message: "template/send answered without msgid".into(),
            })
        })
    }

    /// The mini program's `message/subscribe/send`.
    pub async fn send_subscribe(&self, message: &SubscribeMessage) -> Result<(), Error> {
        Ok(self.tokens.send(&MiniProgramSubscribe(message.clone())).await?)
    }

    /// The official account's subscribe notice, `message/subscribe/bizsend`.
    pub async fn send_biz_subscribe(&self, message: &SubscribeMessage) -> Result<(), Error> {
        Ok(self.tokens.send(&BizSubscribe(message.clone())).await?)
    }

    /// `message/custom/send` to `touser`.
    pub async fn send_custom(&self, touser: &str, message: &CustomMessage) -> Result<(), Error> {
        Ok(self.tokens.send(&CustomSend::new(touser, message.clone())?).await?)
    }
}

// The sends as values (sans-IO). None is idempotent: a resend after a lost answer may deliver twice.
wechat_core::json_post_request!(
    TemplateMessage,
    "/cgi-bin/message/template/send",
    idempotent = false,
    Option<i64>,
    |out: Sent| out.msgid
);

/// The mini program's `message/subscribe/send` of a [`SubscribeMessage`], as a value.
#[derive(Clone, Debug)]
pub struct MiniProgramSubscribe(pub SubscribeMessage);

/// The official account's `message/subscribe/bizsend` of a [`SubscribeMessage`], as a value.
#[derive(Clone, Debug)]
pub struct BizSubscribe(pub SubscribeMessage);

impl MiniProgramSubscribe {
    fn body(&self) -> Value {
        self.0.body()
    }
}

impl BizSubscribe {
    fn body(&self) -> Value {
        self.0.body()
    }
}

wechat_core::json_post_request!(
    MiniProgramSubscribe,
    "/cgi-bin/message/subscribe/send",
    idempotent = false,
    (),
    |_out: Value| ()
);
wechat_core::json_post_request!(
    BizSubscribe,
    "/cgi-bin/message/subscribe/bizsend",
    idempotent = false,
    (),
    |_out: Value| ()
);

/// `message/custom/send` of a [`CustomMessage`] to one user, as a value.
#[derive(Clone, Debug)]
pub struct CustomSend {
    touser: String,
    message: CustomMessage,
}

impl CustomSend {
    /// `message` to `touser` (an openid).
    pub fn new(touser: &str, message: CustomMessage) -> Result<Self, Error> {
        if touser.is_empty() {
            return Err(Error::Invalid("touser must be an openid".into()));
        }
        Ok(Self {
            touser: touser.to_owned(),
            message,
        })
    }

    fn body(&self) -> Value {
        self.message.body(&self.touser)
    }
}

wechat_core::json_post_request!(
    CustomSend,
    "/cgi-bin/message/custom/send",
    idempotent = false,
    (),
    |_out: Value| ()
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_refusals() {
        let t = TemplateMessage::new("o1", "T", Data::new().with("k", "v"))
            .unwrap()
            .miniprogram("wxmp", "pages/c/c?code=1")
            .client_msg_id("redeem-42");
        let b = t.body();
        assert_eq!(
            (b["miniprogram"]["appid"].as_str(), b["client_msg_id"].as_str()),
            (Some("wxmp"), Some("redeem-42"))
        );
        assert!(TemplateMessage::new("o1", "T", Data::new()).is_err());
        assert!(TemplateMessage::new("", "T", Data::new().with("k", "v")).is_err());
        assert!(
            TemplateMessage::new("o1", "T", Data::new().with("k", "v"))
                .unwrap()
                .url("javascript:x")
                .is_err()
        );
        let s = SubscribeMessage::new("o1", "T", Data::new().with("thing1", "x"))
            .unwrap()
            .page("pages/i")
            .miniprogram_state("formal")
            .unwrap();
        assert_eq!(s.body()["page"], "pages/i");
        assert!(
            SubscribeMessage::new("o1", "T", Data::new().with("a", "b"))
                .unwrap()
                .miniprogram_state("prod")
                .is_err()
        );
        assert_eq!(CustomMessage::Text("hi".into()).body("o1")["text"]["content"], "hi");
        for (code, want) in [
            (43101, Refusal::UserRefused),
            (43004, Refusal::NotFollowing),
            (47003, Refusal::ArgumentInvalid),
            (40037, Refusal::TemplateInvalid),
            (40003, Refusal::OpenIdInvalid),
            (45015, Refusal::ReplyWindowOver),
            (45047, Refusal::OutOfQuota),
        ] {
            assert_eq!(Refusal::of(&wechat_core::Error::from_errcode(code, "x")), Some(want));
        }
        assert_eq!(Refusal::of(&wechat_core::Error::from_errcode(40001, "x")), None);
    }
}
