//! The card API client.

use crate::card::CardDefinition;
use crate::error::{Result, invalid};
use crate::ext::CardExt;
use serde::Deserialize;
use wechat_core::{AccessTokenManager, WechatClient};

/// Largest logo `media/uploadimg` accepts.
pub const MAX_LOGO_BYTES: usize = 1024 * 1024;
/// Largest temporary image `media/upload` accepts.
pub const MAX_MEDIA_IMAGE_BYTES: usize = 10 * 1024 * 1024;

/// The image formats WeChat takes, told by their magic bytes (never by the file name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// GIF (temporary media only).
    Gif,
}

impl ImageFormat {
    /// Detects the format from the first bytes.
    pub fn detect(bytes: &[u8]) -> Option<ImageFormat> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageFormat::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(ImageFormat::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(ImageFormat::Gif)
        } else {
            None
        }
    }

    fn mime(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Gif => "image/gif",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Gif => "gif",
        }
    }
}

/// A colour from `card/getcolors`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct CardColor {
    /// `Color010`...
    pub name: String,
    /// `#55bd47`...
    pub value: String,
}

/// A temporary media upload.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Media {
    /// `image`.
    #[serde(rename = "type")]
    pub media_type: String,
    /// Use within 3 days.
    pub media_id: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A user's code, from `card/code/get`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    /// The card.
    pub card_id: String,
    /// Validity start, Unix seconds.
    pub begin_time: i64,
    /// Validity end, Unix seconds.
    pub end_time: i64,
    /// The holder.
    pub openid: String,
    /// Whether it can be consumed now.
    pub can_consume: bool,
    /// NORMAL, CONSUMED, EXPIRE, GIFTING, GIFT_SUCC, GIFT_TIMEOUT, DELETE, UNAVAILABLE.
    pub user_card_status: String,
}

#[derive(Deserialize)]
struct CodeGetResponse {
    card: CodeCard,
    #[serde(default)]
    openid: String,
    #[serde(default)]
    can_consume: bool,
    #[serde(default)]
    user_card_status: String,
}

#[derive(Deserialize)]
struct CodeCard {
    card_id: String,
    #[serde(default)]
    begin_time: i64,
    #[serde(default)]
    end_time: i64,
}

/// A consumed code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumed {
    /// The card.
    pub card_id: String,
    /// The holder.
    pub openid: String,
}

/// The card API for one official account.
///
/// ```no_run
/// use std::sync::Arc;
/// use wechat_card::{BaseInfo, CardClient, CardDefinition, CardExt, CardKind, DateInfo};
/// use wechat_core::{AccessTokenManager, AppId, AppSecret, Endpoints, MemoryTokenStore, WechatClient};
///
/// # async fn demo(logo_png: Vec<u8>) -> wechat_card::Result<()> {
/// let core = WechatClient::with_default_transport()?.with_endpoints(Endpoints::single("http://127.0.0.1:9000")?);
/// let tokens = AccessTokenManager::new(core.clone(), AppId::new("wx1234567890abcdef"), AppSecret::new("secret"),
///     Arc::new(MemoryTokenStore::new()));
/// let cards = CardClient::new(core, tokens);
///
/// let logo_url = cards.upload_logo(&logo_png).await?;
/// let base = BaseInfo::new(&logo_url, "wxkit咖啡", "免费咖啡一杯", "Color010", "请出示二维码核销",
///     "每人限领一张，不与其他优惠同享", DateInfo::FixTerm { fixed_term: 30, fixed_begin_term: 0 }, 1000)?
///     .get_limit(1);
/// let card = CardDefinition::new(CardKind::GeneralCoupon { default_detail: "美式咖啡一杯".into() }, base)?;
/// let card_id = cards.create(&card).await?;
///
/// // For wx.addCard: [{cardId, cardExt}]
/// let card_ext = cards.card_ext(&CardExt::new(&card_id).outer_str("campaign-7"), 1_700_000_000).await?;
/// # let _ = card_ext;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct CardClient {
    client: WechatClient,
    tokens: AccessTokenManager,
}

fn multipart(field: &str, format: ImageFormat, bytes: &[u8]) -> (String, Vec<u8>) {
    use rand::Rng;
    let boundary: String = format!(
        "----wxkit{}",
        rand::rng()
            .sample_iter(&rand::distr::Alphanumeric)
            .take(24)
            .map(char::from)
            .collect::<String>()
    );
    let mut body = Vec::with_capacity(bytes.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"image.{}\"\r\nContent-Type: {}\r\n\r\n",
            format.extension(),
            format.mime()
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl CardClient {
    /// A client; `tokens` must be the official account's token manager.
    pub fn new(client: WechatClient, tokens: AccessTokenManager) -> Self {
        Self { client, tokens }
    }

    async fn post<T: serde::de::DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> Result<T> {
        Ok(self
            .tokens
            .call(|token| async move {
                self.client
                    .post_json(path, &[("access_token", token.secret())], body)
                    .await
            })
            .await?)
    }

    /// [`post`](Self::post) without retries of transient failures: for calls that change state at WeChat
    /// (`card/create` would create a second card, a consume whose answer was lost must be looked at, not resent
    /// blindly). Token errors are still retried once: WeChat rejected the call before doing anything.
    async fn post_once<T: serde::de::DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> Result<T> {
        let client = self.client.without_retry();
        let client = &client;
        Ok(self
            .tokens
            .call(|token| async move { client.post_json(path, &[("access_token", token.secret())], body).await })
            .await?)
    }

    async fn upload<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        extra_query: &[(&str, &str)],
        field: &str,
        format: ImageFormat,
        bytes: &[u8],
    ) -> Result<T> {
        let (content_type, body) = multipart(field, format, bytes);
        Ok(self
            .tokens
            .call(|token| {
                let (content_type, body) = (content_type.clone(), body.clone());
                async move {
                    let mut query = vec![("access_token", token.secret())];
                    query.extend_from_slice(extra_query);
                    let url = self.client.api_url(path, &query);
                    let request = http::Request::post(url.as_str())
                        .header(http::header::CONTENT_TYPE, content_type)
                        .body(body)
                        .map_err(|e| wechat_core::Error::InvalidRequest { message: e.to_string() })?;
                    let response = self.client.execute(request).await?;
                    wechat_core::parse_json_response(response.status().as_u16(), response.body())
                }
            })
            .await?)
    }

    /// Uploads a card logo (`media/uploadimg`, field `buffer`): JPG or PNG, at most 1 MB, checked before sending.
    /// Returns the image URL to use as `logo_url`.
    pub async fn upload_logo(&self, image: &[u8]) -> Result<String> {
        let format = match ImageFormat::detect(image) {
            Some(f @ (ImageFormat::Png | ImageFormat::Jpeg)) => f,
            _ => return Err(invalid("the logo must be a JPG or PNG image")),
        };
        if image.len() > MAX_LOGO_BYTES {
            return Err(invalid("the logo must be at most 1 MB"));
        }
        #[derive(Deserialize)]
        struct Url {
            url: String,
        }
        let r: Url = self
            .upload("/cgi-bin/media/uploadimg", &[], "buffer", format, image)
            .await?;
        Ok(r.url)
    }

    /// Uploads a temporary image (`media/upload?type=image`, field `media`): PNG, JPEG or GIF, at most 10 MB.
    pub async fn upload_temp_image(&self, image: &[u8]) -> Result<Media> {
        let format = ImageFormat::detect(image).ok_or_else(|| invalid("the image must be PNG, JPEG or GIF"))?;
        if image.len() > MAX_MEDIA_IMAGE_BYTES {
            return Err(invalid("the image must be at most 10 MB"));
        }
        self.upload("/cgi-bin/media/upload", &[("type", "image")], "media", format, image)
            .await
    }

    /// Creates a card (`card/create`); returns its `card_id`.
    pub async fn create(&self, card: &CardDefinition) -> Result<String> {
        #[derive(Deserialize)]
        struct Created {
            card_id: String,
        }
        let r: Created = self.post_once("/card/create", &card.to_json()).await?;
        Ok(r.card_id)
    }

    /// The card colours (`card/getcolors`).
    pub async fn colors(&self) -> Result<Vec<CardColor>> {
        #[derive(Deserialize)]
        struct Colors {
            colors: Vec<CardColor>,
        }
        let r: Colors = self
            .tokens
            .call(|token| async move {
                self.client
                    .get_json("/card/getcolors", &[("access_token", token.secret())])
                    .await
            })
            .await?;
        Ok(r.colors)
    }

    /// Turns the `encrypt_code` a page or mini program received into the real code (`card/code/decrypt`).
    pub async fn decrypt_code(&self, encrypt_code: &str) -> Result<String> {
        if encrypt_code.is_empty() {
            return Err(invalid("encrypt_code must not be empty"));
        }
        #[derive(Deserialize)]
        struct Code {
            code: String,
        }
        let r: Code = self
            .post("/card/code/decrypt", &serde_json::json!({"encrypt_code": encrypt_code}))
            .await?;
        Ok(r.code)
    }

    /// Looks a code up (`card/code/get`). With `check_consume`, an unusable code is an error: 40099 consumed,
    /// 40127 otherwise unavailable; unknown codes are 40056.
    pub async fn get_code(&self, code: &str, card_id: Option<&str>, check_consume: bool) -> Result<CodeInfo> {
        if code.is_empty() {
            return Err(invalid("code must not be empty"));
        }
        let mut body = serde_json::json!({"code": code, "check_consume": check_consume});
        if let Some(c) = card_id {
            body["card_id"] = c.into();
        }
        let r: CodeGetResponse = self.post("/card/code/get", &body).await?;
        Ok(CodeInfo {
            card_id: r.card.card_id,
            begin_time: r.card.begin_time,
            end_time: r.card.end_time,
            openid: r.openid,
            can_consume: r.can_consume,
            user_card_status: r.user_card_status,
        })
    }

    /// Consumes (redeems) a code (`card/code/consume`). A second consume is
    /// [`AlreadyConsumed`](crate::Error::AlreadyConsumed) (40099).
    pub async fn consume_code(&self, code: &str, card_id: Option<&str>) -> Result<Consumed> {
        if code.is_empty() {
            return Err(invalid("code must not be empty"));
        }
        let mut body = serde_json::json!({"code": code});
        if let Some(c) = card_id {
            body["card_id"] = c.into();
        }
        #[derive(Deserialize)]
        struct Response {
            card: CodeCard,
            #[serde(default)]
            openid: String,
        }
        let r: Response = self.post_once("/card/code/consume", &body).await?;
        Ok(Consumed {
            card_id: r.card.card_id,
            openid: r.openid,
        })
    }

    /// A signed `cardExt` for `wx.addCard`, with the cached `wx_card` api_ticket and a fresh nonce.
    pub async fn card_ext(&self, ext: &CardExt, timestamp: i64) -> Result<String> {
        let ticket = self.tokens.wx_card_ticket().await?;
        Ok(ext.build(ticket.secret(), timestamp))
    }
}
