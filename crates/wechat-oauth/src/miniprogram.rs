//! Mini program: `wx.login` code → session (`jscode2session`), encryptedData decryption, rawData signatures, and
//! unlimited mini-program codes (`getwxacodeunlimit`).

use crate::error::{Result, invalid};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use std::fmt;
use wechat_core::request::{self, ApiRequest};
use wechat_core::transport::{HttpRequest, HttpResponse};
use wechat_core::{AccessToken, AppId, AppSecret, Endpoints, OpenId, UnionId};
#[cfg(feature = "client")]
use wechat_core::{AccessTokenManager, App};

wechat_core::secret_type!(
    /// A session key (secret: it decrypts the user's data), base64 as WeChat gives it.
    SessionKey
);

/// A verified phone number from `getuserphonenumber`.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct PhoneInfo {
    /// With the country code when not mainland China, e.g. `+1 202 555 0100`; else the bare number.
    #[serde(rename = "phoneNumber")]
    pub phone_number: String,
    /// The number without the country code.
    #[serde(rename = "purePhoneNumber")]
    pub pure_phone_number: String,
    /// e.g. `86`.
    #[serde(rename = "countryCode")]
    pub country_code: String,
    /// Which app WeChat issued it for, and when.
    pub watermark: Watermark,
}

impl fmt::Debug for PhoneInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A phone number is personal data: logs get the country code and the last two digits only.
        let tail: String = self
            .pure_phone_number
            .chars()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        f.debug_struct("PhoneInfo")
            .field("country_code", &self.country_code)
            .field("pure_phone_number", &format_args!("…{tail}"))
            .field("watermark", &self.watermark)
            .finish()
    }
}

/// The watermark WeChat puts on user data.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Watermark {
    /// The app the data was issued for.
    pub appid: String,
    /// When, Unix seconds.
    pub timestamp: i64,
}

/// The answer of `jscode2session`.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// The user's openid for the mini program.
    pub openid: OpenId,
    /// Decrypts `encryptedData`; keep it server-side only.
    pub session_key: SessionKey,
    /// Present when bound to an Open Platform account.
    #[serde(default)]
    pub unionid: Option<UnionId>,
}

/// Why mini-program data was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A field is not valid base64 or has the wrong length (`field` names it).
    #[error("{field} is not valid base64 of the right length")]
    Encoding {
        /// `session_key`, `iv` or `encrypted_data`.
        field: &'static str,
    },
    /// Decryption failed (bad padding): tampered data, or the wrong session key / iv.
    #[error("encryptedData does not decrypt with this session key and iv")]
    Decrypt,
    /// The plaintext is not the JSON WeChat encrypts.
    #[error("decrypted data is not JSON")]
    NotJson,
    /// `watermark.appid` is missing or another app's: the data was not issued for us.
    #[error("watermark appid does not match this app")]
    WatermarkMismatch,
    /// `sha1(rawData + session_key)` does not match the signature.
    #[error("rawData signature mismatch")]
    BadSignature,
}

/// Decrypts `encryptedData` (AES-128-CBC, PKCS#7; key and iv base64) and checks that `watermark.appid` is `app_id`.
///
/// ```
/// let data = wechat_oauth::miniprogram::decrypt_data(
///     &"wx4f4bc4dec97d474b".into(),
///     &wechat_oauth::miniprogram::SessionKey::new("tiihtNczf5v6AKRyjwEUhQ=="),
///     "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==",
///     "r7BXXKkLb8qrSNn05n0qiA==",
/// )?;
/// assert_eq!(data["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
/// assert_eq!(data["nickName"], "Band");
/// assert_eq!(data["unionId"], "ocMvos6NjeKLIBqg5Mr9QjxrP1FA");
/// # Ok::<(), wechat_oauth::miniprogram::DataError>(())
/// ```
pub fn decrypt_data(
    app_id: &AppId,
    session_key: &SessionKey,
    encrypted_data: &str,
    iv: &str,
) -> Result<serde_json::Value, DataError> {
    let key = decode_exact::<16>(session_key.secret(), "session_key")?;
    let iv = decode_exact::<16>(iv, "iv")?;
    let ciphertext = B64.decode(encrypted_data.trim()).map_err(|_| DataError::Encoding {
        field: "encrypted_data",
    })?;
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(DataError::Encoding {
            field: "encrypted_data",
        });
    }
    let plaintext = cbc::Decryptor::<aes::Aes128>::new(&key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext)
        .map_err(|_| DataError::Decrypt)?;
    let value: serde_json::Value = serde_json::from_slice(&plaintext).map_err(|_| DataError::NotJson)?;
    let watermark = value
        .get("watermark")
        .and_then(|w| w.get("appid"))
        .and_then(serde_json::Value::as_str);
    if watermark != Some(app_id.as_str()) {
        return Err(DataError::WatermarkMismatch);
    }
    Ok(value)
}

fn decode_exact<const N: usize>(b64: &str, field: &'static str) -> Result<[u8; N], DataError> {
    let bytes = B64.decode(b64.trim()).map_err(|_| DataError::Encoding { field })?;
    bytes.try_into().map_err(|_| DataError::Encoding { field })
}

/// `sha1(raw_data + session_key)`, lowercase hex — the signature `wx.getUserInfo` returns beside `rawData`.
pub fn raw_data_signature(raw_data: &str, session_key: &SessionKey) -> String {
    let mut h = Sha1::new();
    h.update(raw_data.as_bytes());
    h.update(session_key.secret().as_bytes());
    wechat_core::push::hex_lower(&h.finalize())
}

/// Checks a `rawData` signature in constant time.
pub fn verify_raw_data(raw_data: &str, session_key: &SessionKey, signature: &str) -> Result<(), DataError> {
    let expected = raw_data_signature(raw_data, session_key);
    if wechat_core::constant_time_eq(expected.as_bytes(), signature.trim().to_ascii_lowercase().as_bytes()) {
        Ok(())
    } else {
        Err(DataError::BadSignature)
    }
}

/// Which build of the mini program a code opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvVersion {
    /// The published version.
    #[default]
    Release,
    /// The trial version.
    Trial,
    /// The development version.
    Develop,
}

/// An RGB colour for `line_color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LineColor {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
}

/// Characters WeChat allows in a scene.
pub fn is_scene_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$&'()*+,/:;=?@-._~".contains(c)
}

/// A `getwxacodeunlimit` request, validated on construction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WxaCodeRequest {
    scene: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<String>,
    check_path: bool,
    env_version: EnvVersion,
    width: u32,
    auto_color: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    line_color: Option<LineColor>,
    is_hyaline: bool,
}

impl WxaCodeRequest {
    /// A request for `scene`: 1–32 characters from `[0-9A-Za-z!#$&'()*+,/:;=?@-._~]`.
    ///
    /// ```
    /// use wechat_oauth::miniprogram::WxaCodeRequest;
    /// assert!(WxaCodeRequest::new("login=ab12").is_ok());
    /// assert!(WxaCodeRequest::new("中文").is_err());
    /// assert!(WxaCodeRequest::new(&"a".repeat(33)).is_err());
    /// ```
    pub fn new(scene: &str) -> Result<Self> {
        let len = scene.chars().count();
        if len == 0 || len > 32 {
            return Err(invalid("scene must be 1 to 32 characters"));
        }
        if !scene.chars().all(is_scene_char) {
            return Err(invalid("scene may only use 0-9 A-Z a-z and !#$&'()*+,/:;=?@-._~"));
        }
        Ok(Self {
            scene: scene.to_owned(),
            page: None,
            check_path: true,
            env_version: EnvVersion::Release,
            width: 430,
            auto_color: false,
            line_color: None,
            is_hyaline: false,
        })
    }

    /// The page to open, e.g. `pages/login/index` (no leading `/`, no query string).
    pub fn page(mut self, page: &str) -> Result<Self> {
        if page.is_empty() || page.starts_with('/') || page.contains('?') || page.len() > 256 {
            return Err(invalid(
                "page must be a path like pages/index/index, without a leading / or a query",
            ));
        }
        self.page = Some(page.to_owned());
        Ok(self)
    }

    /// Whether WeChat checks that the page exists (default true).
    pub fn check_path(mut self, check: bool) -> Self {
        self.check_path = check;
        self
    }

    /// Which build to open.
    pub fn env_version(mut self, env: EnvVersion) -> Self {
        self.env_version = env;
        self
    }

    /// Image width in px, 280–1280 (default 430).
    pub fn width(mut self, width: u32) -> Result<Self> {
        if !(280..=1280).contains(&width) {
            return Err(invalid("width must be 280 to 1280 px"));
        }
        self.width = width;
        Ok(self)
    }

    /// Line colour (turns `auto_color` off).
    pub fn line_color(mut self, color: LineColor) -> Self {
        self.line_color = Some(color);
        self.auto_color = false;
        self
    }

    /// Transparent background.
    pub fn hyaline(mut self, hyaline: bool) -> Self {
        self.is_hyaline = hyaline;
        self
    }

    /// The scene.
    pub fn scene(&self) -> &str {
        &self.scene
    }
}

/// A mini-program code image.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WxaCode {
    /// `image/png`, `image/jpeg`...
    pub content_type: String,
    /// The image.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for WxaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WxaCode")
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Interprets a `getwxacodeunlimit` response: an image on success, WeChat JSON on failure. Decided by the
/// Content-Type and by parsing JSON — never by searching the bytes for a substring.
pub fn parse_wxacode_response(status: u16, content_type: Option<&str>, body: &[u8]) -> Result<WxaCode> {
    Ok(wxacode_response(status, content_type, body)?)
}

fn wxacode_response(status: u16, content_type: Option<&str>, body: &[u8]) -> wechat_core::Result<WxaCode> {
    if !(200..300).contains(&status) {
        return Err(wechat_core::Error::HttpStatus { status });
    }
    let content_type = content_type.unwrap_or("").trim().to_ascii_lowercase();
    let media = content_type.split(';').next().unwrap_or("").trim().to_owned();
    let json_error = || -> Option<wechat_core::Error> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let code = value.get("errcode")?.as_i64()?;
        let message = value.get("errmsg").and_then(serde_json::Value::as_str).unwrap_or("");
        Some(wechat_core::Error::from_errcode(code, message))
    };
    if media.starts_with("image/") {
        // Some gateways label errors as images; a body that parses as a WeChat error is an error.
        if let Some(e) = json_error() {
            return Err(e);
        }
        if body.is_empty() {
            return Err(wechat_core::Error::Decode {
                message: "empty image".into(),
            });
        }
        return Ok(WxaCode {
            content_type: media,
            bytes: body.to_vec(),
        });
    }
    match json_error() {
        Some(e) => Err(e),
        None => Err(wechat_core::Error::Decode {
            message: format!(
                "expected an image or a WeChat error, got {} bytes of {media:?}",
                body.len()
            ),
        }),
    }
}

/// Mini-program login and codes for one mini program.
///
/// ```no_run
/// use wechat_core::App;
/// use wechat_oauth::miniprogram::{MiniProgramClient, WxaCodeRequest};
/// # async fn demo() -> wechat_oauth::Result<()> {
/// let app = App::builder().app_id("wx1234567890abcdef").secret("secret").base_url("http://127.0.0.1:9000").build()?;
/// let mp = MiniProgramClient::from_app(&app);
/// let session = mp.code_to_session("code-from-wx.login").await?;
/// let image = mp.unlimited_code(&WxaCodeRequest::new("login=ab12")?.page("pages/login/index")?).await?;
/// # let _ = (session, image);
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "client")]
#[derive(Clone, Debug)]
pub struct MiniProgramClient {
    app: App,
}

#[cfg(feature = "client")]
impl MiniProgramClient {
    /// A client for the mini program whose token manager this is (its id, secret and client come with it).
    pub fn new(tokens: AccessTokenManager) -> Self {
        Self {
            app: App::from_tokens(tokens),
        }
    }

    /// The client of an [`App`]: its id, secret, client and token manager.
    pub fn from_app(app: &App) -> Self {
        Self { app: app.clone() }
    }

    /// The app.
    pub fn app_id(&self) -> &AppId {
        self.app.app_id()
    }

    /// Exchanges a `wx.login` code for the openid and session key. Errors: 40029, 40163, 40226, 45011.
    pub async fn code_to_session(&self, js_code: &str) -> Result<Session> {
        let request = CodeToSession::new(self.app.app_id().clone(), self.app.secret().clone(), js_code)?;
        Ok(self.app.client().send(&request, None).await?)
    }

    /// Trades a `getPhoneNumber` button's code for the user's verified phone number
    /// (`POST /wxa/business/getuserphonenumber`, the current API; the code is single use and short-lived). With
    /// `openid`, WeChat also checks that the code belongs to that user. The watermark must name this app.
    /// Errors: 40029 invalid code ([`crate::Error::InvalidCode`]), 40163 used code, 40013 wrong appid.
    pub async fn phone_number(&self, code: &str, openid: Option<&OpenId>) -> Result<PhoneInfo> {
        let request = GetPhoneNumber::new(code, openid.cloned())?;
        let phone = self.app.send(&request).await?;
        if phone.watermark.appid != self.app.app_id().as_str() {
            return Err(DataError::WatermarkMismatch.into());
        }
        Ok(phone)
    }

    /// [`decrypt_data`] for this app.
    pub fn decrypt(&self, session_key: &SessionKey, encrypted_data: &str, iv: &str) -> Result<serde_json::Value> {
        Ok(decrypt_data(self.app.app_id(), session_key, encrypted_data, iv)?)
    }

    /// An unlimited mini-program code (`getwxacodeunlimit`), with the access token from the manager (refreshed and
    /// retried once if WeChat rejects it).
    pub async fn unlimited_code(&self, request: &WxaCodeRequest) -> Result<WxaCode> {
        Ok(self.app.send(request).await?)
    }

    /// A code for a page path with its query (`getwxacode`). It shares WeChat's lifetime cap of 100,000 codes per
    /// mini program with [`qr_code`](Self::qr_code) (45029 after that): prefer [`unlimited_code`](Self::unlimited_code)
    /// for per-user codes.
    pub async fn path_code(&self, path: &str, width: Option<u32>) -> Result<WxaCode> {
        Ok(self.app.send(&PathCode::round(path, width)?).await?)
    }

    /// A square QR code for a page path (`createwxaqrcode`), under the same cap as [`path_code`](Self::path_code).
    pub async fn qr_code(&self, path: &str, width: Option<u32>) -> Result<WxaCode> {
        Ok(self.app.send(&PathCode::square(path, width)?).await?)
    }

    /// A URL Link (`generate_urllink`) that opens `path?query` from outside WeChat, valid `expire_days` (1–30).
    pub async fn url_link(&self, path: &str, query: &str, env: EnvVersion, expire_days: u32) -> Result<String> {
        Ok(self
            .app
            .send(&GenerateUrlLink::new(path, query, env, expire_days)?)
            .await?)
    }

    /// A URL Scheme (`generatescheme`, `weixin://dl/business/?t=…`) that opens `path?query`; it expires at
    /// `expire_time` (Unix seconds) when given.
    pub async fn scheme(&self, path: &str, query: &str, env: EnvVersion, expire_time: Option<i64>) -> Result<String> {
        Ok(self
            .app
            .send(&GenerateScheme::new(path, query, env, expire_time)?)
            .await?)
    }

    /// Content security v2 for a text a user wrote (`msg_sec_check`): `scene` 1 profile, 2 comment, 3 forum, 4
    /// social log.
    pub async fn msg_sec_check(&self, content: &str, openid: &OpenId, scene: u8) -> Result<SecCheck> {
        Ok(self
            .app
            .send(&MsgSecCheck::new(content, openid.clone(), scene)?)
            .await?)
    }

    /// Uploads a payment's shipping information (see [`UploadShippingInfo`]): WeChat then releases its funds.
    pub async fn upload_shipping_info(&self, upload: &UploadShippingInfo) -> Result<()> {
        Ok(self.app.send(upload).await?)
    }

    /// Content security v2 for an image (`media_type` 1) or audio (2) at `media_url` (`media_check_async`): returns
    /// the trace id; the verdict arrives as the `wxa_media_check` push event with it.
    pub async fn media_check_async(
        &self,
        media_url: &str,
        media_type: u8,
        openid: &OpenId,
        scene: u8,
    ) -> Result<String> {
        let request = MediaCheckAsync::new(media_url, media_type, openid.clone(), scene)?;
        Ok(self.app.send(&request).await?)
    }
}

/// `GET /sns/jscode2session` as a value: a `wx.login` code → [`Session`]. Not idempotent: the code is good once.
#[derive(Clone, Debug)]
pub struct CodeToSession {
    app_id: AppId,
    secret: AppSecret,
    js_code: String,
}

impl CodeToSession {
    /// The exchange of `js_code` (1 to 512 characters).
    pub fn new(app_id: AppId, secret: AppSecret, js_code: &str) -> Result<Self> {
        if js_code.is_empty() || js_code.len() > 512 {
            return Err(invalid("js_code must be 1 to 512 characters"));
        }
        Ok(Self {
            app_id,
            secret,
            js_code: js_code.to_owned(),
        })
    }
}

wechat_core::json_get_request!(
    CodeToSession,
    "/sns/jscode2session",
    idempotent = false,
    token = false,
    Session,
    |req| [
        ("appid", req.app_id.as_str()),
        ("secret", req.secret.secret()),
        ("js_code", req.js_code.as_str()),
        ("grant_type", "authorization_code"),
    ],
    |out: Session| out
);

/// `POST /wxa/business/getuserphonenumber` as a value: a `getPhoneNumber` code → [`PhoneInfo`] (the caller checks
/// the watermark names its app, as [`MiniProgramClient::phone_number`] does). Not idempotent: single-use code.
#[derive(Clone, Debug)]
pub struct GetPhoneNumber {
    code: String,
    openid: Option<OpenId>,
}

impl GetPhoneNumber {
    /// The exchange of `code`; with `openid`, WeChat checks the code is that user's.
    pub fn new(code: &str, openid: Option<OpenId>) -> Result<Self> {
        if code.is_empty() || code.len() > 512 {
            return Err(invalid("code must be 1 to 512 characters"));
        }
        Ok(Self {
            code: code.to_owned(),
            openid,
        })
    }

    fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "code": &self.code });
        if let Some(openid) = &self.openid {
            body["openid"] = openid.as_str().into();
        }
        body
    }
}

#[derive(Deserialize)]
struct PhoneAnswer {
    phone_info: PhoneInfo,
}

wechat_core::json_post_request!(
    GetPhoneNumber,
    "/wxa/business/getuserphonenumber",
    idempotent = false,
    PhoneInfo,
    |out: PhoneAnswer| out.phone_info
);

/// `getwxacodeunlimit`: the request is its own value — the same scene gives the same code, so it is idempotent.
impl ApiRequest for WxaCodeRequest {
    type Response = WxaCode;

    fn idempotent(&self) -> bool {
        true
    }

    fn to_http(&self, endpoints: &Endpoints, token: Option<&AccessToken>) -> wechat_core::Result<HttpRequest> {
        request::post_json(
            endpoints,
            "/wxa/getwxacodeunlimit",
            &[("access_token", request::require_token(token)?)],
            self,
        )
    }

    fn parse(&self, response: HttpResponse) -> wechat_core::Result<WxaCode> {
        image_response(&response)
    }
}

fn image_response(response: &HttpResponse) -> wechat_core::Result<WxaCode> {
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    wxacode_response(response.status().as_u16(), content_type, response.body())
}

/// `getwxacode` or `createwxaqrcode` as a value: a code for a page path. Not idempotent — each one counts against
/// the mini program's lifetime cap of 100,000.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathCode {
    api_path: &'static str,
    body: serde_json::Value,
}

impl PathCode {
    /// A round mini-program code (`getwxacode`) for `path` (1 to 128 bytes, no leading `/`), `width` 280–1280.
    pub fn round(path: &str, width: Option<u32>) -> Result<Self> {
        Ok(Self {
            api_path: "/wxa/getwxacode",
            body: path_code_body(path, width)?,
        })
    }

    /// A square QR code (`createwxaqrcode`) for `path`.
    pub fn square(path: &str, width: Option<u32>) -> Result<Self> {
        Ok(Self {
            api_path: "/cgi-bin/wxaapp/createwxaqrcode",
            body: path_code_body(path, width)?,
        })
    }
}

impl ApiRequest for PathCode {
    type Response = WxaCode;

    fn idempotent(&self) -> bool {
        false
    }

    fn to_http(&self, endpoints: &Endpoints, token: Option<&AccessToken>) -> wechat_core::Result<HttpRequest> {
        request::post_json(
            endpoints,
            self.api_path,
            &[("access_token", request::require_token(token)?)],
            &self.body,
        )
    }

    fn parse(&self, response: HttpResponse) -> wechat_core::Result<WxaCode> {
        image_response(&response)
    }
}

/// `POST /wxa/generate_urllink` as a value: a URL Link (not idempotent: each is a new link, under a daily quota).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerateUrlLink {
    body: serde_json::Value,
}

impl GenerateUrlLink {
    /// A link to `path?query`, valid `expire_days` (1–30).
    pub fn new(path: &str, query: &str, env: EnvVersion, expire_days: u32) -> Result<Self> {
        check_page(path)?;
        if !(1..=30).contains(&expire_days) {
            return Err(invalid("a URL Link lasts 1 to 30 days"));
        }
        Ok(Self {
            body: serde_json::json!({"path": path, "query": query, "env_version": env,
                "expire_type": 1, "expire_interval": expire_days}),
        })
    }

    fn body(&self) -> &serde_json::Value {
        &self.body
    }
}

#[derive(Deserialize)]
struct UrlLinkAnswer {
    url_link: String,
}

wechat_core::json_post_request!(
    GenerateUrlLink,
    "/wxa/generate_urllink",
    idempotent = false,
    String,
    |out: UrlLinkAnswer| out.url_link
);

/// `POST /wxa/generatescheme` as a value: a URL Scheme (not idempotent: each is a new scheme, under a quota).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerateScheme {
    body: serde_json::Value,
}

impl GenerateScheme {
    /// A scheme opening `path?query`, expiring at `expire_time` (Unix seconds) when given.
    pub fn new(path: &str, query: &str, env: EnvVersion, expire_time: Option<i64>) -> Result<Self> {
        check_page(path)?;
        let mut body = serde_json::json!({"jump_wxa": {"path": path, "query": query, "env_version": env}});
        if let Some(t) = expire_time {
            body["is_expire"] = true.into();
            body["expire_time"] = t.into();
        }
        Ok(Self { body })
    }

    fn body(&self) -> &serde_json::Value {
        &self.body
    }
}

#[derive(Deserialize)]
struct SchemeAnswer {
    openlink: String,
}

wechat_core::json_post_request!(
    GenerateScheme,
    "/wxa/generatescheme",
    idempotent = false,
    String,
    |out: SchemeAnswer| out.openlink
);

/// `POST /wxa/sec/order/upload_shipping_info` (小程序发货信息管理) as a value: since 2023 WeChat holds the funds
/// of a mini-program payment until its shipping information is uploaded. This is the virtual-goods form
/// (`logistics_type` 3, `delivery_mode` 1 — a coupon delivered at once), keyed by WeChat's transaction id and naming
/// the payer. Uploading the same again is harmless.
///
/// ```
/// use wechat_core::OpenId;
/// let upload = wechat_oauth::miniprogram::UploadShippingInfo::virtual_goods(
///     "4200000001202612040000000001", &OpenId::new("o-payer"), "拿铁团购券", "2026-12-04T10:00:00+08:00")?;
/// assert_eq!(upload.body()["logistics_type"], 3);
/// # Ok::<(), wechat_oauth::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadShippingInfo {
    body: serde_json::Value,
}

impl UploadShippingInfo {
    /// A virtual good (a coupon) delivered for the payment `transaction_id` of `payer` at `upload_time` (RFC 3339).
    pub fn virtual_goods(
        transaction_id: &str,
        payer: &wechat_core::OpenId,
        item_desc: &str,
        upload_time: &str,
    ) -> Result<Self> {
        if transaction_id.is_empty() || transaction_id.len() > 64 {
            return Err(invalid("transaction_id must be 1 to 64 characters"));
        }
        let mut desc = item_desc.to_owned();
        if desc.chars().count() > 120 {
            desc = desc.chars().take(120).collect();
        }
        if desc.is_empty() {
            return Err(invalid("item_desc must not be empty"));
        }
        Ok(Self {
            body: serde_json::json!({
                "order_key": {"order_number_type": 2, "transaction_id": transaction_id},
                "logistics_type": 3,
                "delivery_mode": 1,
                "shipping_list": [{"item_desc": desc}],
                "upload_time": upload_time,
                "payer": {"openid": payer.as_str()},
            }),
        })
    }

    /// The JSON body.
    pub fn body(&self) -> &serde_json::Value {
        &self.body
    }
}

wechat_core::json_post_request!(
    UploadShippingInfo,
    "/wxa/sec/order/upload_shipping_info",
    idempotent = true,
    (),
    |_out: serde_json::Value| ()
);

/// `POST /wxa/msg_sec_check` (v2) as a value: a verdict on a user's text. A read: idempotent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgSecCheck {
    body: serde_json::Value,
}

impl MsgSecCheck {
    /// Checks `content` written by `openid`; `scene` 1 profile, 2 comment, 3 forum, 4 social log.
    pub fn new(content: &str, openid: OpenId, scene: u8) -> Result<Self> {
        if content.is_empty() {
            return Err(invalid("content must not be empty"));
        }
        if !(1..=4).contains(&scene) {
            return Err(invalid("scene is 1 to 4"));
        }
        Ok(Self {
            body: serde_json::json!({"content": content, "version": 2, "scene": scene, "openid": openid.as_str()}),
        })
    }

    fn body(&self) -> &serde_json::Value {
        &self.body
    }
}

#[derive(Deserialize)]
struct Verdict {
    suggest: String,
    #[serde(default)]
    label: i64,
}

#[derive(Deserialize)]
struct SecCheckAnswer {
    result: Verdict,
    #[serde(default)]
    trace_id: String,
}

wechat_core::json_post_request!(
    MsgSecCheck,
    "/wxa/msg_sec_check",
    idempotent = true,
    SecCheck,
    |out: SecCheckAnswer| SecCheck {
        suggest: Suggest::parse(&out.result.suggest),
        label: out.result.label,
        trace_id: out.trace_id,
    }
);

/// `POST /wxa/media_check_async` (v2) as a value: the trace id now, the verdict later as a push. Not idempotent
/// (each call is a new check and a new push).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaCheckAsync {
    body: serde_json::Value,
}

impl MediaCheckAsync {
    /// Checks the image (`media_type` 1) or audio (2) at `media_url` for `openid`, `scene` 1 to 4.
    pub fn new(media_url: &str, media_type: u8, openid: OpenId, scene: u8) -> Result<Self> {
        if !(media_url.starts_with("https://") || media_url.starts_with("http://")) {
            return Err(invalid("media_url must be http(s)"));
        }
        if !matches!(media_type, 1 | 2) || !(1..=4).contains(&scene) {
            return Err(invalid("media_type is 1 (image) or 2 (audio); scene 1 to 4"));
        }
        Ok(Self {
            body: serde_json::json!({"media_url": media_url, "media_type": media_type, "version": 2,
                "scene": scene, "openid": openid.as_str()}),
        })
    }

    fn body(&self) -> &serde_json::Value {
        &self.body
    }
}

#[derive(Deserialize)]
struct TraceAnswer {
    trace_id: String,
}

wechat_core::json_post_request!(
    MediaCheckAsync,
    "/wxa/media_check_async",
    idempotent = false,
    String,
    |out: TraceAnswer| out.trace_id
);

/// A page path as the link APIs take it: no leading `/`, no query (that goes apart), ≤ 1,024 bytes.
fn check_page(path: &str) -> Result<()> {
    if path.starts_with('/') || path.contains('?') || path.len() > 1024 {
        return Err(invalid("path is a page like pages/index/index: no leading /, no query"));
    }
    Ok(())
}

fn path_code_body(path: &str, width: Option<u32>) -> Result<serde_json::Value> {
    if path.is_empty() || path.len() > 128 || path.starts_with('/') {
        return Err(invalid("path must be 1 to 128 bytes, without a leading /"));
    }
    let mut body = serde_json::json!({"path": path});
    if let Some(w) = width {
        if !(280..=1280).contains(&w) {
            return Err(invalid("width must be 280 to 1280"));
        }
        body["width"] = w.into();
    }
    Ok(body)
}

/// A content check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Suggest {
    /// Nothing found.
    Pass,
    /// A person should look.
    Review,
    /// Do not publish.
    Risky,
}

impl Suggest {
    fn parse(s: &str) -> Self {
        match s {
            "pass" => Suggest::Pass,
            "review" => Suggest::Review,
            // Anything unknown is treated as the cautious answer.
            _ => Suggest::Risky,
        }
    }
}

/// `msg_sec_check`'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecCheck {
    /// The verdict.
    pub suggest: Suggest,
    /// WeChat's label (100 normal, 20001 politics, 20002 porn…).
    pub label: i64,
    /// The trace id.
    pub trace_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "wx4f4bc4dec97d474b";
    const KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
    const DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";

    #[test]
    fn the_official_vector_decrypts() {
        let v = decrypt_data(&APP.into(), &SessionKey::new(KEY), DATA, IV).unwrap();
        assert_eq!(v["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
        assert_eq!(v["nickName"], "Band");
        assert_eq!(v["unionId"], "ocMvos6NjeKLIBqg5Mr9QjxrP1FA");
        assert_eq!(v["watermark"]["appid"], APP);
    }

    #[test]
    fn a_wrong_appid_is_rejected() {
        let e = decrypt_data(&"wxsomeoneelse".into(), &SessionKey::new(KEY), DATA, IV).unwrap_err();
        assert_eq!(e, DataError::WatermarkMismatch);
    }

    #[test]
    fn tampered_data_is_rejected() {
        let mut bytes = B64.decode(DATA).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0x01; // last block: breaks the padding
        let e = decrypt_data(&APP.into(), &SessionKey::new(KEY), &B64.encode(&bytes), IV).unwrap_err();
        assert!(matches!(e, DataError::Decrypt | DataError::NotJson), "{e:?}");
        let mut bytes = B64.decode(DATA).unwrap();
        bytes[20] ^= 0x40; // early block: garbles the JSON
        let e = decrypt_data(&APP.into(), &SessionKey::new(KEY), &B64.encode(&bytes), IV).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Decrypt | DataError::NotJson | DataError::WatermarkMismatch
            ),
            "{e:?}"
        );
        assert_eq!(
            decrypt_data(&APP.into(), &SessionKey::new("short"), DATA, IV).unwrap_err(),
            DataError::Encoding { field: "session_key" }
        );
        assert_eq!(
            decrypt_data(&APP.into(), &SessionKey::new(KEY), "!!!", IV).unwrap_err(),
            DataError::Encoding {
                field: "encrypted_data"
            }
        );
    }

    #[test]
    fn raw_data_signature_is_sha1_of_raw_data_and_session_key() {
        // Computed independently: python3 -c 'import hashlib;print(hashlib.sha1(b"{\"nickName\":\"Band\"}" + b"tiihtNczf5v6AKRyjwEUhQ==").hexdigest())'
        let raw = r#"{"nickName":"Band"}"#;
        let key = SessionKey::new(KEY);
        assert_eq!(raw_data_signature(raw, &key), RAW_SIG);
        assert!(verify_raw_data(raw, &key, RAW_SIG).is_ok());
        assert_eq!(
            verify_raw_data(raw, &key, &RAW_SIG.replace('a', "b")),
            Err(DataError::BadSignature)
        );
        assert_eq!(
            verify_raw_data(r#"{"nickName":"Bend"}"#, &key, RAW_SIG),
            Err(DataError::BadSignature)
        );
    }

    const RAW_SIG: &str = "54b71917aab21b53e850dec1b03f73b0bbeb6abe";

    #[test]
    fn wxacode_responses_are_told_apart_by_content_type_and_json() {
        let png = b"\x89PNG\r\n\x1a\nrest";
        assert!(parse_wxacode_response(200, Some("image/png"), png).is_ok());
        let err = br#"{"errcode":40169,"errmsg":"invalid length for scene, or the data is not json string"}"#;
        let e = parse_wxacode_response(200, Some("application/json; encoding=utf-8"), err).unwrap_err();
        assert!(matches!(e, crate::Error::InvalidScene { code: 40169, .. }));
        let e = parse_wxacode_response(200, Some("image/jpeg"), br#"{"errcode":41030,"errmsg":"invalid page"}"#);
        assert!(matches!(e, Err(crate::Error::InvalidPage { .. })));
        // An image whose bytes happen to contain "errcode" is still an image.
        let tricky = b"\x89PNG....\"errcode\":40001....";
        assert!(parse_wxacode_response(200, Some("image/png"), tricky).is_ok());
        assert!(parse_wxacode_response(200, Some("text/html"), b"<html>").is_err());
    }

    #[test]
    fn wxacode_requests_are_validated() {
        assert!(WxaCodeRequest::new("a b").is_err());
        assert!(WxaCodeRequest::new("").is_err());
        assert!(WxaCodeRequest::new("!#$&'()*+,/:;=?@-._~09AZaz").is_ok());
        let r = WxaCodeRequest::new("s").unwrap();
        assert!(r.clone().page("/pages/x").is_err());
        assert!(r.clone().page("pages/x?y=1").is_err());
        assert!(r.clone().width(279).is_err());
        assert!(r.clone().width(1281).is_err());
        let body = serde_json::to_value(r.page("pages/x").unwrap().width(280).unwrap()).unwrap();
        assert_eq!(body["scene"], "s");
        assert_eq!(body["page"], "pages/x");
        assert_eq!(body["check_path"], true);
        assert_eq!(body["env_version"], "release");
    }
}
