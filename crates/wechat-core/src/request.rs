//! Requests as values (sans-IO): each WeChat endpoint is a type that knows how to build its HTTP request and how to
//! read the answer, with no transport involved — so it is tested with plain bytes, and sent by any client.
//!
//! [`WechatClient::send`](crate::WechatClient::send) and [`AccessTokenManager::send`](crate::AccessTokenManager::send)
//! send them; a service with its own HTTP stack can call [`ApiRequest::to_http`] and [`ApiRequest::parse`] itself.
//!
//! ```
//! use wechat_core::request::{ApiRequest, GetTicket};
//! use wechat_core::{AccessToken, Endpoints};
//!
//! let request = GetTicket::jsapi();
//! let http = request.to_http(&Endpoints::default(), Some(&AccessToken::new("TOKEN"))).unwrap();
//! assert_eq!(http.uri().to_string(), "https://api.weixin.qq.com/cgi-bin/ticket/getticket?access_token=TOKEN&type=jsapi");
//! assert!(request.idempotent()); // a read: retried on a transient failure
//!
//! let answer = http::Response::new(br#"{"errcode":0,"errmsg":"ok","ticket":"T","expires_in":7200}"#.to_vec());
//! let ticket = request.parse(answer).unwrap();
//! assert_eq!((ticket.ticket.secret(), ticket.expires_in), ("T", 7200));
//! ```

use crate::client::{Endpoints, build_url, parse_json_response};
use crate::credentials::{AccessToken, AppId, AppSecret, Ticket};
use crate::error::{Error, Result};
use crate::transport::{HttpRequest, HttpResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One WeChat API call as a value.
///
/// `idempotent` says whether sending it twice is harmless: reads are, and are retried on transient failures
/// (errcode -1, HTTP 5xx, timeouts); calls that change state at WeChat (send a message, consume a code, create a
/// card) are not, because a lost answer does not mean it was not applied.
pub trait ApiRequest {
    /// What a successful answer decodes to.
    type Response;

    /// Whether the request is safe to send again (a read).
    fn idempotent(&self) -> bool;

    /// Whether the request carries the app's `access_token` (most do; the token fetch and OAuth calls do not).
    fn needs_access_token(&self) -> bool {
        true
    }

    /// Builds the HTTP request against `endpoints`. `access_token` is given when
    /// [`needs_access_token`](Self::needs_access_token) says so; a missing one is an [`Error::InvalidRequest`].
    fn to_http(&self, endpoints: &Endpoints, access_token: Option<&AccessToken>) -> Result<HttpRequest>;

    /// Reads the answer: a non-zero `errcode` becomes a typed [`Error`] (for JSON endpoints).
    fn parse(&self, response: HttpResponse) -> Result<Self::Response>;
}

/// The token a request needs, or an error naming what is missing.
pub fn require_token(access_token: Option<&AccessToken>) -> Result<&str> {
    access_token
        .map(AccessToken::secret)
        .ok_or_else(|| Error::InvalidRequest {
            message: "this request needs an access token".into(),
        })
}

/// `GET {api_base_url}{path}?{query}` — the shape of most reads.
pub fn get(endpoints: &Endpoints, path: &str, query: &[(&str, &str)]) -> Result<HttpRequest> {
    http::Request::get(build_url(&endpoints.api_base_url, path, query).as_str())
        .body(Vec::new())
        .map_err(|e| Error::InvalidRequest { message: e.to_string() })
}

/// `POST {api_base_url}{path}?{query}` with a JSON body.
pub fn post_json<B: Serialize + ?Sized>(
    endpoints: &Endpoints,
    path: &str,
    query: &[(&str, &str)],
    body: &B,
) -> Result<HttpRequest> {
    let body = serde_json::to_vec(body).map_err(|e| Error::InvalidRequest {
        message: format!("request body cannot be encoded as JSON: {e}"),
    })?;
    http::Request::post(build_url(&endpoints.api_base_url, path, query).as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| Error::InvalidRequest { message: e.to_string() })
}

/// Decodes a WeChat JSON answer into `T` ([`parse_json_response`] on an [`HttpResponse`]).
pub fn parse_json<T: DeserializeOwned>(response: &HttpResponse) -> Result<T> {
    parse_json_response(response.status().as_u16(), response.body())
}

/// Implements [`ApiRequest`] for a JSON `POST {path}?access_token=…` whose body is `self.body()` (anything
/// `Serialize`): idempotent or not, the answer decoded as `$out_ty` (errcodes typed) and mapped to the response.
///
/// ```
/// use wechat_core::request::ApiRequest;
/// # #[derive(Debug)]
/// struct Decrypt { encrypt_code: String }
/// impl Decrypt { fn body(&self) -> serde_json::Value { serde_json::json!({"encrypt_code": self.encrypt_code}) } }
/// #[derive(serde::Deserialize)]
/// struct Out { code: String }
/// wechat_core::json_post_request!(Decrypt, "/card/code/decrypt", idempotent = true, String, |out: Out| out.code);
///
/// let r = Decrypt { encrypt_code: "E".into() };
/// let http = r.to_http(&wechat_core::Endpoints::default(), Some(&wechat_core::AccessToken::new("T"))).unwrap();
/// assert_eq!(http.uri().path(), "/card/code/decrypt");
/// assert_eq!(r.parse(http::Response::new(br#"{"errcode":0,"code":"123"}"#.to_vec())).unwrap(), "123");
/// ```
#[macro_export]
macro_rules! json_post_request {
    ($ty:ty, $path:expr, idempotent = $idem:expr, $response:ty, |$out:ident: $out_ty:ty| $map:expr) => {
        impl $crate::request::ApiRequest for $ty {
            type Response = $response;

            fn idempotent(&self) -> bool {
                $idem
            }

            fn to_http(
                &self,
                endpoints: &$crate::Endpoints,
                token: ::std::option::Option<&$crate::AccessToken>,
            ) -> $crate::Result<$crate::transport::HttpRequest> {
                $crate::request::post_json(
                    endpoints,
                    $path,
                    &[("access_token", $crate::request::require_token(token)?)],
                    &self.body(),
                )
            }

            fn parse(&self, response: $crate::transport::HttpResponse) -> $crate::Result<$response> {
                let $out: $out_ty = $crate::request::parse_json(&response)?;
                Ok($map)
            }
        }
    };
}

/// Implements [`ApiRequest`] for a JSON `GET {path}?{query}`: `token = true` puts the app's `access_token` first in
/// the query; `|req| query` lists the request's own parameters (`req` is `&self`); the answer is decoded as `$out_ty`
/// (errcodes typed) and mapped to the response.
///
/// ```
/// use wechat_core::request::ApiRequest;
/// # #[derive(Debug)]
/// struct Colors;
/// #[derive(serde::Deserialize)]
/// struct Out { colors: Vec<serde_json::Value> }
/// wechat_core::json_get_request!(Colors, "/card/getcolors", idempotent = true, token = true, usize,
///     |_req| [], |out: Out| out.colors.len());
///
/// let http = Colors.to_http(&wechat_core::Endpoints::default(), Some(&wechat_core::AccessToken::new("T"))).unwrap();
/// assert_eq!(http.uri().query(), Some("access_token=T"));
/// assert_eq!(Colors.parse(http::Response::new(br#"{"colors":[{},{}]}"#.to_vec())).unwrap(), 2);
/// ```
#[macro_export]
macro_rules! json_get_request {
    ($ty:ty, $path:expr, idempotent = $idem:expr, token = $token:expr, $response:ty,
     |$req:ident| $query:expr, |$out:ident: $out_ty:ty| $map:expr) => {
        impl $crate::request::ApiRequest for $ty {
            type Response = $response;

            fn idempotent(&self) -> bool {
                $idem
            }

            fn needs_access_token(&self) -> bool {
                $token
            }

            fn to_http(
                &self,
                endpoints: &$crate::Endpoints,
                token: ::std::option::Option<&$crate::AccessToken>,
            ) -> $crate::Result<$crate::transport::HttpRequest> {
                let $req = self;
                let own: &[(&str, &str)] = &$query;
                let mut query: ::std::vec::Vec<(&str, &str)> = ::std::vec::Vec::with_capacity(own.len() + 1);
                if $token {
                    query.push(("access_token", $crate::request::require_token(token)?));
                }
                query.extend_from_slice(own);
                $crate::request::get(endpoints, $path, &query)
            }

            fn parse(&self, response: $crate::transport::HttpResponse) -> $crate::Result<$response> {
                let $out: $out_ty = $crate::request::parse_json(&response)?;
                Ok($map)
            }
        }
    };
}

/// `GET /cgi-bin/token` — the classic access token (each fetch replaces the previous one).
#[derive(Clone, Debug)]
pub struct GetAccessToken {
    /// The app.
    pub app_id: AppId,
    /// Its secret (sent in the query, never logged: [`AppSecret`] prints `[redacted]`).
    pub secret: AppSecret,
}

/// `POST /cgi-bin/stable_token` — the stable access token (repeat fetches return the same one).
#[derive(Clone, Debug)]
pub struct GetStableAccessToken {
    /// The app.
    pub app_id: AppId,
    /// Its secret.
    pub secret: AppSecret,
    /// `force_refresh`: a new token now (limited to 20 a day by WeChat).
    pub force_refresh: bool,
}

/// A fetched access token.
#[derive(Clone, Debug, serde::Deserialize)]
#[non_exhaustive]
pub struct AccessTokenResponse {
    /// The token.
    pub access_token: AccessToken,
    /// Seconds it lives (7200).
    pub expires_in: i64,
}

// A fetch replaces the previous token, but the old one lives 5 more minutes: repeating it is harmless.
json_get_request!(
    GetAccessToken,
    "/cgi-bin/token",
    idempotent = true,
    token = false,
    AccessTokenResponse,
    |req| [
        ("grant_type", "client_credential"),
        ("appid", req.app_id.as_str()),
        ("secret", req.secret.secret()),
    ],
    |out: AccessTokenResponse| out
);

impl ApiRequest for GetStableAccessToken {
    type Response = AccessTokenResponse;

    fn idempotent(&self) -> bool {
        !self.force_refresh
    }

    fn needs_access_token(&self) -> bool {
        false
    }

    fn to_http(&self, endpoints: &Endpoints, _: Option<&AccessToken>) -> Result<HttpRequest> {
        post_json(
            endpoints,
            "/cgi-bin/stable_token",
            &[],
            &serde_json::json!({
                "grant_type": "client_credential",
                "appid": self.app_id.as_str(),
                "secret": self.secret.secret(),
                "force_refresh": self.force_refresh,
            }),
        )
    }

    fn parse(&self, response: HttpResponse) -> Result<AccessTokenResponse> {
        parse_json(&response)
    }
}

/// `GET /cgi-bin/ticket/getticket` — the JS-SDK `jsapi` ticket or the card `wx_card` ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetTicket {
    ticket_type: &'static str,
}

impl GetTicket {
    /// The `jsapi_ticket` (JS-SDK `wx.config` signatures).
    pub fn jsapi() -> Self {
        Self { ticket_type: "jsapi" }
    }

    /// The card `api_ticket` (`cardExt` signatures).
    pub fn wx_card() -> Self {
        Self { ticket_type: "wx_card" }
    }

    /// `jsapi` or `wx_card`.
    pub fn ticket_type(&self) -> &'static str {
        self.ticket_type
    }
}

/// A fetched ticket.
#[derive(Clone, Debug, serde::Deserialize)]
#[non_exhaustive]
pub struct TicketResponse {
    /// The ticket.
    pub ticket: Ticket,
    /// Seconds it lives (7200).
    pub expires_in: i64,
}

json_get_request!(
    GetTicket,
    "/cgi-bin/ticket/getticket",
    idempotent = true,
    token = true,
    TicketResponse,
    |req| [("type", req.ticket_type)],
    |out: TicketResponse| out
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_requests_are_built_without_io_and_keep_the_secret_out_of_debug() {
        let request = GetAccessToken {
            app_id: AppId::new("wx1"),
            secret: AppSecret::new("s3cret"),
        };
        let http = request
            .to_http(&Endpoints::single("http://sim.local").unwrap_or_default(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            http.uri().to_string(),
            "http://sim.local/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s3cret"
        );
        assert!(!format!("{request:?}").contains("s3cret"));
        let stable = GetStableAccessToken {
            app_id: AppId::new("wx1"),
            secret: AppSecret::new("s3cret"),
            force_refresh: true,
        };
        assert!(!stable.idempotent(), "a forced refresh is not repeated blindly");
        let http = stable
            .to_http(&Endpoints::default(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(http.method(), http::Method::POST);
        let body: serde_json::Value = serde_json::from_slice(http.body()).unwrap_or_default();
        assert_eq!(body["force_refresh"], true);
    }

    #[test]
    fn a_ticket_request_without_a_token_is_refused_and_errcodes_are_typed() {
        assert!(matches!(
            GetTicket::wx_card().to_http(&Endpoints::default(), None),
            Err(Error::InvalidRequest { .. })
        ));
        let answer = http::Response::new(br#"{"errcode":40001,"errmsg":"invalid credential"}"#.to_vec());
        assert!(GetTicket::jsapi().parse(answer).unwrap_err().is_token_invalid());
    }
}
