//! The card API client.

use crate::card::CardDefinition;
use crate::error::{Result, invalid};
#[cfg(feature = "client")]
use crate::ext::CardExt;
use serde::Deserialize;
#[cfg(feature = "client")]
use wechat_core::AccessTokenManager;
use wechat_core::request::{self, ApiRequest};
use wechat_core::transport::{HttpRequest, HttpResponse};
use wechat_core::{AccessToken, Endpoints};

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
#[non_exhaustive]
pub struct CardColor {
    /// `Color010`...
    pub name: String,
    /// `#55bd47`...
    pub value: String,
}

/// A temporary media upload.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct Consumed {
    /// The card.
    pub card_id: String,
    /// The holder.
    pub openid: String,
}

/// The card API for one official account.
///
/// ```no_run
/// use wechat_card::{BaseInfo, CardClient, CardDefinition, CardExt, CardKind, DateInfo};
/// use wechat_core::App;
///
/// # async fn demo(logo_png: Vec<u8>) -> wechat_card::Result<()> {
/// let app = App::builder().app_id("wx1234567890abcdef").secret("secret").base_url("http://127.0.0.1:9000").build()?;
/// let cards = CardClient::from_app(&app);
///
/// let logo_url = cards.upload_logo(&logo_png).await?;
/// let base = BaseInfo::builder()
///     .logo_url(logo_url)
///     .brand_name("wxkit咖啡")
///     .title("免费咖啡一杯")
///     .color("Color010")
///     .notice("请出示二维码核销")
///     .description("每人限领一张，不与其他优惠同享")
///     .date_info(DateInfo::FixTerm { fixed_term: 30, fixed_begin_term: 0 })
///     .quantity(1000)
///     .build()?
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
#[cfg(feature = "client")]
#[derive(Clone, Debug)]
pub struct CardClient {
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

#[cfg(feature = "client")]
impl CardClient {
    /// The card API of the official account whose token manager this is (its client comes with it).
    pub fn new(tokens: AccessTokenManager) -> Self {
        Self { tokens }
    }

    /// The card API of an [`App`](wechat_core::App).
    pub fn from_app(app: &wechat_core::App) -> Self {
        Self::new(app.tokens().clone())
    }

    /// Uploads a card logo (`media/uploadimg`, field `buffer`): JPG or PNG, at most 1 MB, checked before sending.
    /// Returns the image URL to use as `logo_url`.
    pub async fn upload_logo(&self, image: &[u8]) -> Result<String> {
        Ok(self.tokens.send(&UploadLogo::new(image)?).await?)
    }

    /// Uploads a temporary image (`media/upload?type=image`, field `media`): PNG, JPEG or GIF, at most 10 MB.
    pub async fn upload_temp_image(&self, image: &[u8]) -> Result<Media> {
        Ok(self.tokens.send(&UploadTempImage::new(image)?).await?)
    }

    /// Creates a card (`card/create`); returns its `card_id`. Not retried on a lost answer: a resend would create a
    /// second card.
    pub async fn create(&self, card: &CardDefinition) -> Result<String> {
        Ok(self.tokens.send(&CreateCard(card.clone())).await?)
    }

    /// The card colours (`card/getcolors`).
    pub async fn colors(&self) -> Result<Vec<CardColor>> {
        Ok(self.tokens.send(&GetColors).await?)
    }

    /// Turns the `encrypt_code` a page or mini program received into the real code (`card/code/decrypt`).
    pub async fn decrypt_code(&self, encrypt_code: &str) -> Result<String> {
        Ok(self.tokens.send(&DecryptCode::new(encrypt_code)?).await?)
    }

    /// Looks a code up (`card/code/get`). With `check_consume`, an unusable code is an error: 40099 consumed,
    /// 40127 otherwise unavailable; unknown codes are 40056.
    pub async fn get_code(&self, code: &str, card_id: Option<&str>, check_consume: bool) -> Result<CodeInfo> {
        Ok(self.tokens.send(&GetCode::new(code, card_id, check_consume)?).await?)
    }

    /// Consumes (redeems) a code (`card/code/consume`). A second consume is
    /// [`AlreadyConsumed`](crate::Error::AlreadyConsumed) (40099). Not retried on a lost answer: look the code up
    /// instead of resending.
    pub async fn consume_code(&self, code: &str, card_id: Option<&str>) -> Result<Consumed> {
        Ok(self.tokens.send(&ConsumeCode::new(code, card_id)?).await?)
    }

    /// A signed `cardExt` for `wx.addCard`, with the cached `wx_card` api_ticket and a fresh nonce.
    pub async fn card_ext(&self, ext: &CardExt, timestamp: i64) -> Result<String> {
        let ticket = self.tokens.wx_card_ticket().await?;
        Ok(ext.build(ticket.secret(), timestamp))
    }
}

/// `POST /card/create` as a value (sans-IO). Not idempotent: a resend creates a second card.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateCard(pub CardDefinition);

impl CreateCard {
    fn body(&self) -> serde_json::Value {
        self.0.to_json()
    }
}

#[derive(Deserialize)]
struct Created {
    card_id: String,
}

wechat_core::json_post_request!(
    CreateCard,
    "/card/create",
    idempotent = false,
    String,
    |out: Created| out.card_id
);

/// `GET /card/getcolors` as a value: the colour names a card may use. A read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetColors;

#[derive(Deserialize)]
struct Colors {
    colors: Vec<CardColor>,
}

wechat_core::json_get_request!(
    GetColors,
    "/card/getcolors",
    idempotent = true,
    token = true,
    Vec<CardColor>,
    |_req| [],
    |out: Colors| out.colors
);

/// `POST /card/code/decrypt` as a value: an `encrypt_code` → the real code. A read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecryptCode {
    encrypt_code: String,
}

impl DecryptCode {
    /// Decrypts `encrypt_code` (non-empty).
    pub fn new(encrypt_code: &str) -> Result<Self> {
        if encrypt_code.is_empty() {
            return Err(invalid("encrypt_code must not be empty"));
        }
        Ok(Self {
            encrypt_code: encrypt_code.to_owned(),
        })
    }

    fn body(&self) -> serde_json::Value {
        serde_json::json!({"encrypt_code": self.encrypt_code})
    }
}

#[derive(Deserialize)]
struct DecryptedCode {
    code: String,
}

wechat_core::json_post_request!(
    DecryptCode,
    "/card/code/decrypt",
    idempotent = true,
    String,
    |out: DecryptedCode| out.code
);

fn code_body(code: &str, card_id: Option<&str>) -> Result<serde_json::Value> {
    if code.is_empty() {
        return Err(invalid("code must not be empty"));
    }
    let mut body = serde_json::json!({ "code": code });
    if let Some(c) = card_id {
        body["card_id"] = c.into();
    }
    Ok(body)
}

/// `POST /card/code/get` as a value: a code's card, owner and state. A read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetCode {
    body: serde_json::Value,
}

impl GetCode {
    /// Looks `code` up (of `card_id` when given); with `check_consume`, an unusable code is an error.
    pub fn new(code: &str, card_id: Option<&str>, check_consume: bool) -> Result<Self> {
        let mut body = code_body(code, card_id)?;
        body["check_consume"] = check_consume.into();
        Ok(Self { body })
    }

    fn body(&self) -> &serde_json::Value {
        &self.body
    }
}

wechat_core::json_post_request!(
    GetCode,
    "/card/code/get",
    idempotent = true,
    CodeInfo,
    |r: CodeGetResponse| CodeInfo {
        card_id: r.card.card_id,
        begin_time: r.card.begin_time,
        end_time: r.card.end_time,
        openid: r.openid,
        can_consume: r.can_consume,
        user_card_status: r.user_card_status,
    }
);

/// `POST /card/code/consume` as a value: redeems a code. Not idempotent: a lost answer is looked into with
/// [`GetCode`], never resent blindly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumeCode {
    body: serde_json::Value,
}

impl ConsumeCode {
    /// Consumes `code` (of `card_id` when given).
    pub fn new(code: &str, card_id: Option<&str>) -> Result<Self> {
        Ok(Self {
            body: code_body(code, card_id)?,
        })
    }

    fn body(&self) -> &serde_json::Value {
        &self.body
    }
}

#[derive(Deserialize)]
struct ConsumeResponse {
    card: CodeCard,
    #[serde(default)]
    openid: String,
}

wechat_core::json_post_request!(
    ConsumeCode,
    "/card/code/consume",
    idempotent = false,
    Consumed,
    |r: ConsumeResponse| Consumed {
        card_id: r.card.card_id,
        openid: r.openid,
    }
);

/// A `multipart/form-data` image upload, built once (boundary included) so that sending it is pure.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Upload {
    content_type: String,
    body: Vec<u8>,
}

impl Upload {
    fn to_http(&self, endpoints: &Endpoints, path: &str, query: &[(&str, &str)]) -> wechat_core::Result<HttpRequest> {
        http::Request::post(wechat_core::build_url(&endpoints.api_base_url, path, query).as_str())
            .header(http::header::CONTENT_TYPE, self.content_type.as_str())
            .body(self.body.clone())
            .map_err(|e| wechat_core::Error::InvalidRequest { message: e.to_string() })
    }
}

/// `POST /cgi-bin/media/uploadimg` as a value: a card logo (JPG or PNG, ≤ 1 MB, checked here) → its URL. Idempotent:
/// a repeated upload only stores a second copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadLogo(Upload);

impl UploadLogo {
    /// The upload of `image`, refused before sending unless it is a JPG or PNG of at most 1 MB.
    pub fn new(image: &[u8]) -> Result<Self> {
        let format = match ImageFormat::detect(image) {
            Some(f @ (ImageFormat::Png | ImageFormat::Jpeg)) => f,
            _ => return Err(invalid("the logo must be a JPG or PNG image")),
        };
        if image.len() > MAX_LOGO_BYTES {
            return Err(invalid("the logo must be at most 1 MB"));
        }
        let (content_type, body) = multipart("buffer", format, image);
        Ok(Self(Upload { content_type, body }))
    }
}

impl ApiRequest for UploadLogo {
    type Response = String;

    fn idempotent(&self) -> bool {
        true
    }

    fn to_http(&self, endpoints: &Endpoints, token: Option<&AccessToken>) -> wechat_core::Result<HttpRequest> {
        self.0.to_http(
            endpoints,
            "/cgi-bin/media/uploadimg",
            &[("access_token", request::require_token(token)?)],
        )
    }

    fn parse(&self, response: HttpResponse) -> wechat_core::Result<String> {
        #[derive(Deserialize)]
        struct Url {
            url: String,
        }
        Ok(request::parse_json::<Url>(&response)?.url)
    }
}

/// `POST /cgi-bin/media/upload?type=image` as a value: a temporary image (PNG, JPEG or GIF, ≤ 10 MB, checked here),
/// usable for 3 days. Idempotent: a repeated upload only stores a second copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadTempImage(Upload);

impl UploadTempImage {
    /// The upload of `image`, refused before sending unless it is a PNG, JPEG or GIF of at most 10 MB.
    pub fn new(image: &[u8]) -> Result<Self> {
        let format = ImageFormat::detect(image).ok_or_else(|| invalid("the image must be PNG, JPEG or GIF"))?;
        if image.len() > MAX_MEDIA_IMAGE_BYTES {
            return Err(invalid("the image must be at most 10 MB"));
        }
        let (content_type, body) = multipart("media", format, image);
        Ok(Self(Upload { content_type, body }))
    }
}

impl ApiRequest for UploadTempImage {
    type Response = Media;

    fn idempotent(&self) -> bool {
        true
    }

    fn to_http(&self, endpoints: &Endpoints, token: Option<&AccessToken>) -> wechat_core::Result<HttpRequest> {
        self.0.to_http(
            endpoints,
            "/cgi-bin/media/upload",
            &[("access_token", request::require_token(token)?), ("type", "image")],
        )
    }

    fn parse(&self, response: HttpResponse) -> wechat_core::Result<Media> {
        request::parse_json(&response)
    }
}
