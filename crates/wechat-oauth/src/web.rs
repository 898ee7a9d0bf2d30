//! Web OAuth2 for official-account H5 pages: authorize URL, code exchange, refresh, userinfo, auth check.

use crate::error::{Result, invalid};
use serde::{Deserialize, Deserializer};
use url::Url;
use wechat_core::request::{self, ApiRequest};
use wechat_core::transport::{HttpRequest, HttpResponse};
use wechat_core::{AccessToken, AppId, AppSecret, Endpoints, OpenId, UnionId};
#[cfg(feature = "client")]
use wechat_core::{App, WechatClient};

/// The authorization scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `snsapi_base`: silent, yields the openid only.
    Base,
    /// `snsapi_userinfo`: asks the user, then `/sns/userinfo` works.
    UserInfo,
}

impl Scope {
    /// WeChat's name for the scope.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Base => "snsapi_base",
            Scope::UserInfo => "snsapi_userinfo",
        }
    }

    /// Parses WeChat's name.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "snsapi_base" => Some(Scope::Base),
            "snsapi_userinfo" => Some(Scope::UserInfo),
            _ => None,
        }
    }
}

/// The scope of the open platform's website login (`qrconnect`).
pub const QRCONNECT_SCOPE: &str = "snsapi_login";

/// The website QR login page of the open platform (PC sites, outside WeChat): the page shows a code the user scans
/// with WeChat, then WeChat sends the browser to `redirect_uri?code=…&state=…`; exchange the code with
/// [`OAuthClient::exchange_code`] built with the **website app's** appid and secret.
///
/// ```
/// use wechat_oauth::web::qrconnect_url;
/// let open = url::Url::parse("https://open.weixin.qq.com").unwrap();
/// let url = qrconnect_url(&open, &"wxweb123".into(), "https://shop.example/auth/qrconnect/callback", Some("s1")).unwrap();
/// assert_eq!(url, "https://open.weixin.qq.com/connect/qrconnect?appid=wxweb123&redirect_uri=https%3A%2F%2Fshop.example%2Fauth%2Fqrconnect%2Fcallback&response_type=code&scope=snsapi_login&state=s1#wechat_redirect");
/// ```
pub fn qrconnect_url(open_base_url: &Url, app_id: &AppId, redirect_uri: &str, state: Option<&str>) -> Result<String> {
    // The same checks and format as the in-WeChat authorize URL, on the qrconnect page with snsapi_login.
    let url = authorize_url(open_base_url, app_id, redirect_uri, Scope::Base, state)?;
    Ok(url
        .replacen("/connect/oauth2/authorize?", "/connect/qrconnect?", 1)
        .replacen("&scope=snsapi_base", &format!("&scope={QRCONNECT_SCOPE}"), 1))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, as WeChat expects `redirect_uri`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Maximum length of `state` WeChat passes back.
pub const MAX_STATE_LEN: usize = 128;

/// Builds the authorize URL exactly as WeChat documents it: parameters in the order `appid, redirect_uri,
/// response_type, scope, state`, `redirect_uri` fully percent-encoded, and the `#wechat_redirect` fragment.
///
/// `state` must be at most 128 characters from `[A-Za-z0-9]` (WeChat's rule); `None` leaves it out.
///
/// ```
/// use url::Url;
/// use wechat_oauth::web::{Scope, authorize_url};
/// let open = Url::parse("https://open.weixin.qq.com").unwrap();
/// let url = authorize_url(&open, &"123456".into(), "http://localhost", Scope::Base, None).unwrap();
/// assert_eq!(
///     url,
///     "https://open.weixin.qq.com/connect/oauth2/authorize?appid=123456&redirect_uri=http%3A%2F%2Flocalhost\
///      &response_type=code&scope=snsapi_base#wechat_redirect"
/// );
/// ```
pub fn authorize_url(
    open_base_url: &Url,
    app_id: &AppId,
    redirect_uri: &str,
    scope: Scope,
    state: Option<&str>,
) -> Result<String> {
    let redirect = Url::parse(redirect_uri).map_err(|e| invalid(format!("redirect_uri is not a URL: {e}")))?;
    if !matches!(redirect.scheme(), "http" | "https") {
        return Err(invalid("redirect_uri must be an http(s) URL"));
    }
    if let Some(state) = state
        && (state.len() > MAX_STATE_LEN || !state.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(invalid("state must be at most 128 characters from A-Z, a-z, 0-9"));
    }
    let base = open_base_url.as_str().trim_end_matches('/');
    let mut url = format!(
        "{base}/connect/oauth2/authorize?appid={}&redirect_uri={}&response_type=code&scope={}",
        percent_encode(app_id.as_str()),
        percent_encode(redirect_uri),
        scope.as_str()
    );
    if let Some(state) = state {
        url.push_str("&state=");
        url.push_str(state);
    }
    url.push_str("#wechat_redirect");
    Ok(url)
}

wechat_core::secret_type!(
    /// A refresh token (secret: lives 30 days).
    RefreshToken
);

/// The answer to a code exchange or a refresh.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct WebAccessToken {
    /// The web (user) access token — not the basic access token.
    pub access_token: AccessToken,
    /// Seconds until it expires (7200).
    pub expires_in: i64,
    /// Use it to get a new access token for 30 days.
    pub refresh_token: RefreshToken,
    /// The user's openid for this app.
    pub openid: OpenId,
    /// The granted scope(s), comma-separated as WeChat sends them.
    pub scope: String,
    /// Present when the app is bound to an Open Platform account.
    #[serde(default)]
    pub unionid: Option<UnionId>,
    /// True when WeChat reports a "snapshot" (朋友圈快照页) virtual user: the openid is not a real user's and must
    /// not be trusted as one.
    #[serde(default, deserialize_with = "flag")]
    pub is_snapshotuser: bool,
}

impl WebAccessToken {
    /// Whether the granted scopes include `snsapi_userinfo`.
    pub fn has_userinfo_scope(&self) -> bool {
        // A website login (snsapi_login) may read the profile too.
        self.scope
            .split(',')
            .any(|s| s.trim() == Scope::UserInfo.as_str() || s.trim() == QRCONNECT_SCOPE)
    }
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::Number(n) => n.as_i64() == Some(1),
        serde_json::Value::String(s) => s == "1" || s == "true",
        _ => false,
    })
}

/// The user's sex as WeChat reports it (0 unknown, 1 male, 2 female). WeChat stopped exposing it in 2021 and sends
/// 0; some responses send it as a string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sex {
    /// 0 or anything unrecognised.
    #[default]
    Unknown,
    /// 1.
    Male,
    /// 2.
    Female,
}

impl<'de> Deserialize<'de> for Sex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let code = match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        Ok(match code {
            Some(1) => Sex::Male,
            Some(2) => Sex::Female,
            _ => Sex::Unknown,
        })
    }
}

/// `/sns/userinfo`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserInfo {
    /// openid.
    pub openid: OpenId,
    /// Nickname.
    #[serde(default)]
    pub nickname: String,
    /// Sex (number or string on the wire).
    #[serde(default)]
    pub sex: Sex,
    /// Province.
    #[serde(default)]
    pub province: String,
    /// City.
    #[serde(default)]
    pub city: String,
    /// Country.
    #[serde(default)]
    pub country: String,
    /// Avatar URL (may be empty).
    #[serde(default)]
    pub headimgurl: String,
    /// Privileges.
    #[serde(default)]
    pub privilege: Vec<String>,
    /// unionid, when bound to an Open Platform account.
    #[serde(default)]
    pub unionid: Option<UnionId>,
}

/// Language of `/sns/userinfo` place names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    /// Simplified Chinese.
    #[default]
    ZhCn,
    /// Traditional Chinese.
    ZhTw,
    /// English.
    En,
}

impl Lang {
    fn as_str(self) -> &'static str {
        match self {
            Lang::ZhCn => "zh_CN",
            Lang::ZhTw => "zh_TW",
            Lang::En => "en",
        }
    }
}

/// Web OAuth for one official account.
///
/// ```no_run
/// use wechat_core::{AppId, AppSecret, Endpoints, WechatClient};
/// use wechat_oauth::web::{OAuthClient, Scope};
/// # async fn demo() -> wechat_oauth::Result<()> {
/// let core = WechatClient::with_default_transport()?.with_endpoints(Endpoints::single("http://127.0.0.1:9000")?);
/// let oauth = OAuthClient::new(core, AppId::new("wx1234567890abcdef"), AppSecret::new("secret"));
/// let url = oauth.authorize_url("https://shop.example.com/auth/callback", Scope::UserInfo, Some("abc123"))?;
/// // ... the user approves, WeChat redirects to the callback with ?code=CODE&state=abc123
/// let token = oauth.exchange_code("CODE").await?;
/// let me = oauth.user_info(&token.access_token, &token.openid, Default::default()).await?;
/// # let _ = (url, me);
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "client")]
#[derive(Clone, Debug)]
pub struct OAuthClient {
    client: WechatClient,
    app_id: AppId,
    secret: AppSecret,
}

#[cfg(feature = "client")]
impl OAuthClient {
    /// A client for `app_id`. Prefer [`from_app`](Self::from_app), which cannot mix up apps.
    pub fn new(client: WechatClient, app_id: AppId, secret: AppSecret) -> Self {
        Self { client, app_id, secret }
    }

    /// The client of an [`App`] (its id, secret and client).
    pub fn from_app(app: &App) -> Self {
        Self::new(app.client().clone(), app.app_id().clone(), app.secret().clone())
    }

    /// The app.
    pub fn app_id(&self) -> &AppId {
        &self.app_id
    }

    /// The authorize URL on this client's `open_base_url` (see [`authorize_url`]).
    pub fn authorize_url(&self, redirect_uri: &str, scope: Scope, state: Option<&str>) -> Result<String> {
        authorize_url(
            &self.client.endpoints().open_base_url,
            &self.app_id,
            redirect_uri,
            scope,
            state,
        )
    }

    /// The website QR login page for this (website) app: see [`qrconnect_url`].
    pub fn qrconnect_url(&self, redirect_uri: &str, state: Option<&str>) -> Result<String> {
        qrconnect_url(
            &self.client.endpoints().open_base_url,
            &self.app_id,
            redirect_uri,
            state,
        )
    }

    /// Exchanges the `code` from the redirect for a web access token and the openid (`/sns/oauth2/access_token`).
    /// Errors: [`InvalidCode`](crate::Error::InvalidCode) (40029), [`CodeUsed`](crate::Error::CodeUsed) (40163).
    pub async fn exchange_code(&self, code: &str) -> Result<WebAccessToken> {
        let request = ExchangeCode::new(self.app_id.clone(), self.secret.clone(), code)?;
        Ok(self.client.send(&request, None).await?)
    }

    /// Gets a new web access token with a refresh token (`/sns/oauth2/refresh_token`).
    pub async fn refresh(&self, refresh_token: &RefreshToken) -> Result<WebAccessToken> {
        let request = RefreshWebToken {
            app_id: self.app_id.clone(),
            refresh_token: refresh_token.clone(),
        };
        Ok(self.client.send(&request, None).await?)
    }

    /// The user's profile (`/sns/userinfo`); needs an `snsapi_userinfo` token, else
    /// [`Unauthorized`](crate::Error::Unauthorized) (48001).
    pub async fn user_info(&self, token: &AccessToken, openid: &OpenId, lang: Lang) -> Result<UserInfo> {
        let request = GetUserInfo {
            token: token.clone(),
            openid: openid.clone(),
            lang,
        };
        Ok(self.client.send(&request, None).await?)
    }

    /// Whether a web access token is still valid for `openid` (`/sns/auth`). `Ok(false)` for 40003 (wrong openid),
    /// 40001 and 42001 (bad or expired token).
    pub async fn check_auth(&self, token: &AccessToken, openid: &OpenId) -> Result<bool> {
        let request = CheckAuth {
            token: token.clone(),
            openid: openid.clone(),
        };
        Ok(self.client.send(&request, None).await?)
    }
}

/// `GET /sns/oauth2/access_token` as a value (sans-IO): the code from the redirect → [`WebAccessToken`]. Not
/// idempotent: a code is good once, so a lost answer is not retried (the retry would only earn 40163).
///
/// ```
/// use wechat_core::{ApiRequest, AppId, AppSecret, Endpoints};
/// use wechat_oauth::web::ExchangeCode;
/// let request = ExchangeCode::new(AppId::new("wx1"), AppSecret::new("s"), "CODE")?;
/// let http = request.to_http(&Endpoints::default(), None)?;
/// assert!(http.uri().to_string().starts_with("https://api.weixin.qq.com/sns/oauth2/access_token?appid=wx1"));
/// let answer = http::Response::new(br#"{"access_token":"A","expires_in":7200,"refresh_token":"R","openid":"o1","scope":"snsapi_base"}"#.to_vec());
/// assert_eq!(request.parse(answer)?.openid.as_str(), "o1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ExchangeCode {
    app_id: AppId,
    secret: AppSecret,
    code: String,
}

impl ExchangeCode {
    /// The exchange of `code` (1 to 512 characters) for `app_id`.
    pub fn new(app_id: AppId, secret: AppSecret, code: &str) -> Result<Self> {
        if code.is_empty() || code.len() > 512 {
            return Err(invalid("code must be 1 to 512 characters"));
        }
        Ok(Self {
            app_id,
            secret,
            code: code.to_owned(),
        })
    }
}

wechat_core::json_get_request!(
    ExchangeCode,
    "/sns/oauth2/access_token",
    idempotent = false,
    token = false,
    WebAccessToken,
    |req| [
        ("appid", req.app_id.as_str()),
        ("secret", req.secret.secret()),
        ("code", req.code.as_str()),
        ("grant_type", "authorization_code"),
    ],
    |out: WebAccessToken| out
);

/// `GET /sns/oauth2/refresh_token` as a value: a new web access token from a refresh token.
#[derive(Clone, Debug)]
pub struct RefreshWebToken {
    /// The app.
    pub app_id: AppId,
    /// The refresh token (30 days).
    pub refresh_token: RefreshToken,
}

wechat_core::json_get_request!(
    RefreshWebToken,
    "/sns/oauth2/refresh_token",
    idempotent = true,
    token = false,
    WebAccessToken,
    |req| [
        ("appid", req.app_id.as_str()),
        ("grant_type", "refresh_token"),
        ("refresh_token", req.refresh_token.secret()),
    ],
    |out: WebAccessToken| out
);

/// `GET /sns/userinfo` as a value: the profile behind an `snsapi_userinfo` web token.
#[derive(Clone, Debug)]
pub struct GetUserInfo {
    /// The *web* access token from [`ExchangeCode`] (not the app's).
    pub token: AccessToken,
    /// The user.
    pub openid: OpenId,
    /// The language of country/province/city names.
    pub lang: Lang,
}

// `token = false`: it carries the user's web token itself, not the app's.
wechat_core::json_get_request!(
    GetUserInfo,
    "/sns/userinfo",
    idempotent = true,
    token = false,
    UserInfo,
    |req| [
        ("access_token", req.token.secret()),
        ("openid", req.openid.as_str()),
        ("lang", req.lang.as_str()),
    ],
    |out: UserInfo| out
);

/// `GET /sns/auth` as a value: whether a web token is still valid for an openid (`false` for 40003, 40001, 42001).
#[derive(Clone, Debug)]
pub struct CheckAuth {
    /// The web access token.
    pub token: AccessToken,
    /// The user it should belong to.
    pub openid: OpenId,
}

impl ApiRequest for CheckAuth {
    type Response = bool;

    fn idempotent(&self) -> bool {
        true
    }

    fn needs_access_token(&self) -> bool {
        false
    }

    fn to_http(&self, endpoints: &Endpoints, _: Option<&AccessToken>) -> wechat_core::Result<HttpRequest> {
        request::get(
            endpoints,
            "/sns/auth",
            &[("access_token", self.token.secret()), ("openid", self.openid.as_str())],
        )
    }

    fn parse(&self, response: HttpResponse) -> wechat_core::Result<bool> {
        match request::parse_json::<serde_json::Value>(&response) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.errcode(), Some(40003 | 40001 | 42001)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Url {
        Url::parse("https://open.weixin.qq.com").unwrap()
    }

    #[test]
    fn authorize_url_matches_the_spec_vector() {
        let url = authorize_url(&open(), &"123456".into(), "http://localhost", Scope::Base, None).unwrap();
        assert_eq!(
            url,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=123456&redirect_uri=http%3A%2F%2Flocalhost&response_type=code&scope=snsapi_base#wechat_redirect"
        );
    }

    #[test]
    fn authorize_url_with_state_and_userinfo_scope_encodes_the_whole_redirect() {
        let url = authorize_url(
            &open(),
            &"wx1".into(),
            "https://a.example/cb?x=1&y=a b",
            Scope::UserInfo,
            Some("St4te"),
        )
        .unwrap();
        assert_eq!(
            url,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx1&redirect_uri=https%3A%2F%2Fa.example%2Fcb%3Fx%3D1%26y%3Da%20b&response_type=code&scope=snsapi_userinfo&state=St4te#wechat_redirect"
        );
    }

    #[test]
    fn bad_state_and_redirects_are_refused() {
        for state in ["has space", "a-b", &"a".repeat(129)] {
            assert!(authorize_url(&open(), &"wx1".into(), "http://x", Scope::Base, Some(state)).is_err());
        }
        assert!(authorize_url(&open(), &"wx1".into(), "javascript:alert(1)", Scope::Base, None).is_err());
        assert!(authorize_url(&open(), &"wx1".into(), "/relative", Scope::Base, None).is_err());
    }

    #[test]
    fn token_response_surfaces_unionid_and_snapshot_flag() {
        let t: WebAccessToken = serde_json::from_str(
            r#"{"access_token":"AT","expires_in":7200,"refresh_token":"RT","openid":"o1","scope":"snsapi_base","unionid":"u1","is_snapshotuser":1}"#,
        )
        .unwrap();
        assert!(t.is_snapshotuser);
        assert_eq!(t.unionid.as_ref().unwrap().as_str(), "u1");
        assert!(!format!("{:?}", t.refresh_token).contains("RT"));
        assert!(!t.has_userinfo_scope());
    }

    #[test]
    fn sex_is_accepted_as_number_or_string() {
        for (raw, sex) in [
            ("1", Sex::Male),
            ("\"2\"", Sex::Female),
            ("0", Sex::Unknown),
            ("\"x\"", Sex::Unknown),
        ] {
            let u: UserInfo = serde_json::from_str(&format!(r#"{{"openid":"o","sex":{raw}}}"#)).unwrap();
            assert_eq!(u.sex, sex, "{raw}");
        }
    }
}
