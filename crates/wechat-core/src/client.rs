//! The WeChat API client: base URLs, a transport, the retry policy, and errcode-aware JSON decoding.

use crate::error::{Error, Result};
#[cfg(feature = "client")]
use crate::retry::RetryPolicy;
#[cfg(feature = "client")]
use crate::transport::{HttpRequest, HttpResponse, Transport, clone_request};
#[cfg(feature = "client")]
use serde::Serialize;
use serde::de::DeserializeOwned;
#[cfg(feature = "client")]
use std::sync::Arc;
use url::Url;

/// The hosts a client talks to. Point them at the simulator (`wxkit sim`) to run without WeChat.
///
/// Built with [`Endpoints::default`] (WeChat's hosts), [`Endpoints::single`] (one base URL, as the simulator serves
/// them) or [`Endpoints::new`]; more hosts may be added in later versions, hence `#[non_exhaustive]`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoints {
    /// `https://api.weixin.qq.com`: official-account, mini-program and card APIs.
    pub api_base_url: Url,
    /// `https://open.weixin.qq.com`: the OAuth authorize page users are sent to.
    pub open_base_url: Url,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            api_base_url: Url::parse("https://api.weixin.qq.com").expect("constant URL parses"),
            open_base_url: Url::parse("https://open.weixin.qq.com").expect("constant URL parses"),
        }
    }
}

impl Endpoints {
    /// The API host and the OAuth host, each checked to be an http(s) base URL.
    ///
    /// ```
    /// let e = wechat_core::Endpoints::new("https://api.weixin.qq.com", "https://open.weixin.qq.com").unwrap();
    /// assert_eq!(e, wechat_core::Endpoints::default());
    /// assert!(wechat_core::Endpoints::new("ftp://x", "https://open.weixin.qq.com").is_err());
    /// ```
    pub fn new(api_base_url: &str, open_base_url: &str) -> Result<Self> {
        Ok(Self {
            api_base_url: parse_base_url(api_base_url)?,
            open_base_url: parse_base_url(open_base_url)?,
        })
    }

    /// Both hosts on one base URL, as the simulator serves them.
    ///
    /// ```
    /// let e = wechat_core::Endpoints::single("http://127.0.0.1:9000").unwrap();
    /// assert_eq!(e.open_base_url.as_str(), "http://127.0.0.1:9000/");
    /// ```
    pub fn single(base_url: &str) -> Result<Self> {
        let url = parse_base_url(base_url)?;
        Ok(Self {
            api_base_url: url.clone(),
            open_base_url: url,
        })
    }
}

/// Parses a base URL, accepting only `http` and `https`.
pub fn parse_base_url(base_url: &str) -> Result<Url> {
    let url = Url::parse(base_url).map_err(|e| Error::InvalidRequest {
        message: format!("invalid base URL {base_url:?}: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::InvalidRequest {
            message: format!("base URL {base_url:?} must be an http(s) URL"),
        });
    }
    Ok(url)
}

/// Joins `path` onto `base` (keeping any path prefix of `base`) and appends `query` percent-encoded, in order.
///
/// ```
/// use url::Url;
/// let base = Url::parse("http://sim.local/prefix").unwrap();
/// let url = wechat_core::build_url(&base, "/cgi-bin/token", &[("appid", "wx1"), ("secret", "a b")]);
/// assert_eq!(url.as_str(), "http://sim.local/prefix/cgi-bin/token?appid=wx1&secret=a+b");
/// ```
pub fn build_url(base: &Url, path: &str, query: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path.trim_start_matches('/'));
    url.set_path(&joined);
    url.set_query(None);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url
}

/// Decodes a WeChat JSON response: a non-zero `errcode` becomes a typed [`Error`], anything else is deserialized into
/// `T`. Pure, so it is tested with plain byte strings.
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// struct Ticket { ticket: String }
/// let ok: Ticket = wechat_core::parse_json_response(200, br#"{"errcode":0,"errmsg":"ok","ticket":"t"}"#).unwrap();
/// assert_eq!(ok.ticket, "t");
/// let err = wechat_core::parse_json_response::<Ticket>(200, br#"{"errcode":40001,"errmsg":"invalid credential"}"#);
/// assert!(err.unwrap_err().is_token_invalid());
/// ```
pub fn parse_json_response<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T> {
    if !(200..300).contains(&status) {
        return Err(Error::HttpStatus { status });
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| Error::Decode {
        message: format!("body is not JSON ({} bytes): {}", body.len(), e.classify_name()),
    })?;
    if let Some(code) = value.get("errcode").and_then(serde_json::Value::as_i64)
        && code != 0
    {
        let message = value
            .get("errmsg")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        return Err(Error::from_errcode(code, message));
    }
    // The error text of serde_json can quote values from the body (tokens, session keys): keep only its position.
    serde_json::from_value(value).map_err(|e| Error::Decode {
        message: format!(
            "response does not have the expected fields (line {}, column {})",
            e.line(),
            e.column()
        ),
    })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// A WeChat API client: endpoints + transport + retry policy. Cheap to clone (shares the transport).
#[cfg(feature = "client")]
#[derive(Clone, Debug)]
pub struct WechatClient {
    transport: Arc<dyn Transport>,
    endpoints: Endpoints,
    retry: RetryPolicy,
    clock: Arc<dyn crate::clock::Clock>,
}

#[cfg(feature = "client")]
impl WechatClient {
    /// A client on the given transport, talking to WeChat's real hosts with the default retry policy.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Self {
            transport,
            endpoints: Endpoints::default(),
            retry: RetryPolicy::default(),
            clock: Arc::new(crate::clock::SystemClock),
        }
    }

    /// The clock whose `sleep` waits out retry backoff (default: the system's, on tokio's timer).
    pub fn with_clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A client on the default reqwest transport.
    #[cfg(feature = "reqwest")]
    pub fn with_default_transport() -> Result<Self> {
        Ok(Self::new(Arc::new(crate::transport::ReqwestTransport::new()?)))
    }

    /// Replaces the endpoints (for the simulator, a proxy or a test server).
    pub fn with_endpoints(mut self, endpoints: Endpoints) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The endpoints this client talks to.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The transport, for crates that send non-JSON requests (multipart uploads, XML, images).
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// A URL on the API host.
    pub fn api_url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        build_url(&self.endpoints.api_base_url, path, query)
    }

    /// Sends `request`, retrying transient transport failures and HTTP 5xx. The response is returned whatever its
    /// status below 500, for the caller to interpret.
    pub async fn execute(&self, request: HttpRequest) -> Result<HttpResponse> {
        self.with_retry_loop(&request, |response| {
            let status = response.status().as_u16();
            if status >= 500 {
                Err(Error::HttpStatus { status })
            } else {
                Ok(response)
            }
        })
        .await
    }

    /// Sends `request` and returns the response whatever its status — WeChat Pay v3 puts its error body (`code`,
    /// `message`) in 4xx and 5xx answers; only transport failures are retried (as the policy says).
    pub async fn execute_any_status(&self, request: HttpRequest) -> Result<HttpResponse> {
        self.with_retry_loop(&request, Ok).await
    }

    /// Sends `request` and decodes a WeChat JSON response, retrying transient failures (errcode -1 included).
    pub async fn execute_json<T: DeserializeOwned>(&self, request: HttpRequest) -> Result<T> {
        self.with_retry_loop(&request, |response| {
            parse_json_response(response.status().as_u16(), response.body())
        })
        .await
    }

    async fn with_retry_loop<T>(
        &self,
        request: &HttpRequest,
        interpret: impl Fn(HttpResponse) -> Result<T>,
    ) -> Result<T> {
        let path = request.uri().path().to_owned();
        let mut attempt = 1;
        loop {
            let outcome = match self.transport.send(clone_request(request)).await {
                Ok(response) => interpret(response),
                Err(e) => Err(Error::Transport(e)),
            };
            match outcome {
                Err(e) if record_error(&path, &e) && self.retry.should_retry(&e, attempt) => {
                    let delay = self.retry.backoff(attempt);
                    // Only the path is logged: queries carry secrets.
                    tracing::warn!(%path, attempt, ?delay, error = %e, "transient WeChat failure, retrying");
                    self.clock.sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Sends a [request value](crate::request): built against this client's endpoints, retried on transient
    /// failures by this client's policy only when the request is [idempotent](crate::request::ApiRequest::idempotent),
    /// and decoded by the request itself.
    pub async fn send<R: crate::request::ApiRequest + ?Sized>(
        &self,
        request: &R,
        access_token: Option<&crate::AccessToken>,
    ) -> Result<R::Response> {
        let http = request.to_http(&self.endpoints, access_token)?;
        let client = if request.idempotent() {
            std::borrow::Cow::Borrowed(self)
        } else {
            std::borrow::Cow::Owned(self.without_retry())
        };
        client.with_retry_loop(&http, |response| request.parse(response)).await
    }

    /// `GET {api_base_url}{path}?{query}` decoded as WeChat JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T> {
        let request = http::Request::get(self.api_url(path, query).as_str())
            .body(Vec::new())
            .map_err(invalid_request)?;
        self.execute_json(request).await
    }

    /// The same client without retries: for calls that change state at WeChat and may have taken effect even when
    /// the answer was lost (a timeout, a 5xx, errcode -1). Retrying those could apply them twice.
    ///
    /// ```
    /// let client = wechat_core::WechatClient::with_default_transport().unwrap().without_retry();
    /// assert_eq!(client.retry_policy().max_attempts, 1);
    /// ```
    pub fn without_retry(&self) -> Self {
        self.clone().with_retry(RetryPolicy::none())
    }

    /// `POST {api_base_url}{path}?{query}` with a JSON body, decoded as WeChat JSON.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &B,
    ) -> Result<T> {
        let body = serde_json::to_vec(body).map_err(|e| Error::InvalidRequest {
            message: format!("request body cannot be encoded as JSON: {e}"),
        })?;
        let request = http::Request::post(self.api_url(path, query).as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(invalid_request)?;
        self.execute_json(request).await
    }
}

/// Counts a failed call by endpoint and errcode (or error kind) through the `metrics` facade — a no-op unless the
/// embedding service installs a recorder. Always true, so that it can sit in a match guard.
#[cfg(feature = "client")]
fn record_error(path: &str, e: &Error) -> bool {
    let code = match e {
        Error::Transport(_) => "transport".to_owned(),
        Error::HttpStatus { status } => format!("http_{status}"),
        Error::Decode { .. } => "decode".to_owned(),
        other => other.errcode().map_or_else(|| "other".to_owned(), |c| c.to_string()),
    };
    metrics::counter!("wechat_api_errors_total", "endpoint" => path.to_owned(), "errcode" => code).increment(1);
    true
}

#[cfg(feature = "client")]
fn invalid_request(e: http::Error) -> Error {
    Error::InvalidRequest { message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Token {
        #[allow(dead_code)]
        access_token: String,
    }

    #[test]
    fn errcode_zero_is_success_and_missing_errcode_too() {
        assert!(parse_json_response::<Token>(200, br#"{"access_token":"a","expires_in":7200}"#).is_ok());
        assert!(parse_json_response::<Token>(200, br#"{"errcode":0,"errmsg":"ok","access_token":"a"}"#).is_ok());
    }

    #[test]
    fn errmsg_suffixes_do_not_matter() {
        let e = parse_json_response::<Token>(
            200,
            br#"{"errcode":40125,"errmsg":"invalid appsecret, rid: 6560c0f8-1e2f"}"#,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Config { code: 40125, .. }));
    }

    #[test]
    fn decode_errors_never_quote_the_body() {
        let e = parse_json_response::<Token>(200, br#"{"access_token":12345678}"#).unwrap_err();
        assert!(matches!(e, Error::Decode { .. }));
        assert!(!e.to_string().contains("12345678"));
        let e = parse_json_response::<Token>(200, b"<html>secret-ish</html>").unwrap_err();
        assert!(!e.to_string().contains("secret-ish"));
    }

    #[test]
    fn http_errors_are_typed() {
        let e = parse_json_response::<Token>(503, b"").unwrap_err();
        assert!(matches!(e, Error::HttpStatus { status: 503 }));
        assert!(e.is_transient());
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(parse_base_url("ftp://x").is_err());
        assert!(parse_base_url("not a url").is_err());
        assert!(parse_base_url("http://127.0.0.1:1").is_ok());
    }

    /// Fails with 503 `failures` times, then answers `{"ok": 1}`.
    #[cfg(feature = "client")]
    #[derive(Debug)]
    struct Flaky(std::sync::atomic::AtomicU32);

    #[cfg(feature = "client")]
    #[async_trait::async_trait]
    impl Transport for Flaky {
        async fn send(&self, _request: HttpRequest) -> std::result::Result<HttpResponse, crate::TransportError> {
            let left = self.0.load(std::sync::atomic::Ordering::SeqCst);
            if left > 0 {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                return Ok(http::Response::builder()
                    .status(503)
                    .body(Vec::new())
                    .unwrap_or_default());
            }
            Ok(http::Response::new(br#"{"ok":1}"#.to_vec()))
        }
    }

    /// A clock that only records what it was asked to wait.
    #[cfg(feature = "client")]
    #[derive(Debug, Default)]
    struct Recording(std::sync::Mutex<Vec<std::time::Duration>>);

    #[cfg(feature = "client")]
    impl crate::clock::Clock for Recording {
        fn now_ms(&self) -> i64 {
            0
        }
        fn sleep(&self, d: std::time::Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
            if let Ok(mut v) = self.0.lock() {
                v.push(d);
            }
            Box::pin(std::future::ready(()))
        }
    }

    #[cfg(feature = "client")]
    #[tokio::test]
    async fn retry_backoff_waits_on_the_injected_clock() {
        #[derive(Debug, serde::Deserialize)]
        struct Ok1 {
            ok: u8,
        }
        let clock = Arc::new(Recording::default());
        let client = WechatClient::new(Arc::new(Flaky(std::sync::atomic::AtomicU32::new(2))))
            .with_endpoints(Endpoints::single("http://127.0.0.1:9").unwrap_or_default())
            .with_clock(clock.clone());
        let got: Ok1 = client.get_json("/x", &[]).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.ok, 1);
        let waited = clock.0.lock().map(|v| v.clone()).unwrap_or_default();
        // Two retries, each the policy's backoff (100 ms then 200 ms, less up to half of jitter), all on the clock.
        assert_eq!(waited.len(), 2, "{waited:?}");
        let ms: Vec<u128> = waited.iter().map(std::time::Duration::as_millis).collect();
        assert!((50..=100).contains(&ms[0]) && (100..=200).contains(&ms[1]), "{ms:?}");
    }

    /// A request value whose only property is whether it says it is idempotent.
    #[cfg(feature = "client")]
    struct Call {
        idempotent: bool,
    }

    #[cfg(feature = "client")]
    impl crate::request::ApiRequest for Call {
        type Response = serde_json::Value;

        fn idempotent(&self) -> bool {
            self.idempotent
        }

        fn needs_access_token(&self) -> bool {
            false
        }

        fn to_http(&self, endpoints: &Endpoints, _: Option<&crate::AccessToken>) -> Result<HttpRequest> {
            crate::request::post_json(endpoints, "/call", &[], &serde_json::json!({}))
        }

        fn parse(&self, response: HttpResponse) -> Result<serde_json::Value> {
            crate::request::parse_json(&response)
        }
    }

    #[cfg(feature = "client")]
    #[tokio::test]
    async fn only_idempotent_requests_are_retried() {
        let client = |failures| {
            let flaky = Arc::new(Flaky(std::sync::atomic::AtomicU32::new(failures)));
            let client = WechatClient::new(flaky.clone())
                .with_endpoints(Endpoints::single("http://127.0.0.1:9").unwrap_or_default())
                .with_clock(Arc::new(Recording::default()));
            (client, flaky)
        };
        // A read rides out two 503s.
        let (read, _) = client(2);
        let answer = read.send(&Call { idempotent: true }, None).await;
        assert_eq!(answer.ok().and_then(|v| v["ok"].as_u64()), Some(1));
        // The same failures on a mutation surface at once, after one attempt: it may have been applied.
        let (mutate, flaky) = client(2);
        let e = mutate.send(&Call { idempotent: false }, None).await.unwrap_err();
        assert!(matches!(e, Error::HttpStatus { status: 503 }), "{e}");
        assert_eq!(
            flaky.0.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "sent exactly once"
        );
    }
}
