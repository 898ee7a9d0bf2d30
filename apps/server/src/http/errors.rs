//! The JSON error envelope `{"error": {"code", "message"}}`, used by every 4xx/5xx the server sends.

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;

/// An error a handler returns: HTTP status, a stable machine-readable code and a human message.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
    wechat_errcode: Option<i64>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    /// WeChat's errcode, when WeChat refused what the client sent (e.g. 40029 for a bad `wx.login` code).
    #[serde(skip_serializing_if = "Option::is_none")]
    wechat_errcode: Option<i64>,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            wechat_errcode: None,
        }
    }

    /// Adds WeChat's errcode to the envelope (`error.wechat_errcode`).
    pub fn with_wechat_errcode(mut self, errcode: Option<i64>) -> Self {
        self.wechat_errcode = errcode;
        self
    }

    /// Adds `Retry-After: secs` (429, 503).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 that logs the cause and tells the client nothing internal.
    pub fn internal(cause: &dyn fmt::Display) -> Self {
        tracing::error!(code = "internal", error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error")
    }

    /// A database failure: 503 with a retry hint (logged with its cause), so that clients and pages say "try again"
    /// instead of showing a 500.
    pub fn unavailable(cause: &dyn fmt::Display) -> Self {
        crate::db::OUTAGE_LOG.failed(cause);
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is briefly unavailable: try again in a moment",
        )
        .with_retry_after(2)
    }

    /// The machine-readable code.
    pub fn code(&self) -> &str {
        self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = envelope_with(self.status, self.code, &self.message, self.wechat_errcode);
        if let Some(secs) = self.retry_after
            && let Ok(v) = actix_web::http::header::HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(actix_web::http::header::RETRY_AFTER, v);
        }
        res
    }
}

/// Builds the envelope response. A 401 names the scheme it wants (`WWW-Authenticate`, RFC 9110).
pub fn envelope(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    envelope_with(status, code, message, None)
}

fn envelope_with(status: StatusCode, code: &str, message: &str, wechat_errcode: Option<i64>) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED {
        res.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer realm=\"wxkit\""));
    }
    res.json(Envelope {
        error: Body {
            code,
            message,
            wechat_errcode,
        },
    })
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// Whether a request is for a page (HTML errors) rather than a machine endpoint (the JSON envelope): machines are
/// `/api/`, WeChat's callbacks (`/wechat/`), health and metrics, and any client that asks for JSON and not HTML.
pub fn wants_page(req: &actix_web::HttpRequest) -> bool {
    let path = req.path();
    let machine = [
        "/api/",
        "/wechat/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/ws/",
        "/auth/ticket",
    ]
    .iter()
    .any(|p| path.starts_with(p));
    if machine {
        return false;
    }
    let accept = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !accept.contains("application/json") || accept.contains("text/html")
}

/// Middleware hook: any 4xx/5xx that is not JSON yet (actix's own 404/405/extractor errors) is replaced by the
/// envelope — or, for a page, by an HTML error page — so clients see one error shape everywhere. A 405 keeps its
/// `Allow`.
pub fn wrap_in_envelope<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // JSON errors are already enveloped; HTML error pages are for people in a browser.
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (json, html) = (
        content_type.starts_with("application/json"),
        content_type.starts_with("text/html"),
    );
    // A person whose page failed on our side (the database away while their session was looked up) gets the page
    // that says so, with its Retry-After, not the API's JSON.
    if json && res.status().is_server_error() && wants_page(res.request()) {
        let retry = res.headers().get(actix_web::http::header::RETRY_AFTER).cloned();
        let (req, _) = res.into_parts();
        let mut page = crate::http::pages::unavailable_page(req.path());
        if let Some(v) = retry {
            page.headers_mut().insert(actix_web::http::header::RETRY_AFTER, v);
        }
        return Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(req, page).map_into_right_body(),
        ));
    }
    if json || html {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = res
        .response()
        .error()
        .filter(|_| status.is_client_error())
        .map(ToString::to_string)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase());
    let (req, old) = res.into_parts();
    let mut new = if wants_page(&req) {
        let (zh, en) = match status {
            StatusCode::METHOD_NOT_ALLOWED => (
                "请求方式不支持",
                "This page cannot be used that way: open it from a link.",
            ),
            StatusCode::NOT_FOUND => ("页面不存在", "There is no such page: check the link."),
            StatusCode::TOO_MANY_REQUESTS => ("请求太频繁", "Too many requests: wait a moment, then try again."),
            s if s.is_server_error() => (
                "服务暂时不可用",
                "Something went wrong on our side: try again in a moment.",
            ),
            _ => ("请求无效", "This request could not be used: go back and try again."),
        };
        crate::http::pages::error_page(status, zh, &format!("{en} ({message})"))
    } else {
        envelope(status, code_for(status), &message)
    };
    // Keep headers such as Allow (405) and WWW-Authenticate (401); the page brings its own policy headers.
    for (name, value) in old.headers() {
        if name != CONTENT_TYPE && name != actix_web::http::header::CONTENT_LENGTH && !new.headers().contains_key(name)
        {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}

/// The HTTP form of a failed WeChat login call: the client's fault (bad, used or blocked code; data that does not
/// decrypt) is a 400 carrying WeChat's errcode; WeChat being down or busy is a 503 (429 for its per-user quota) with
/// a retry hint; anything else is a 502 naming WeChat.
pub fn wechat_login_error(e: &wechat_oauth::Error) -> ApiError {
    use wechat_oauth::Error as E;
    let errcode = e.errcode();
    match e {
        E::InvalidCode { .. } => ApiError::bad_request("invalid_code", format!("WeChat refused the code: {e}")),
        E::CodeUsed { .. } => ApiError::bad_request("code_used", format!("the code was already used: {e}")),
        E::CodeBlocked { .. } => ApiError::new(StatusCode::FORBIDDEN, "code_blocked", e.to_string()),
        E::InvalidOpenId { .. } => ApiError::bad_request("invalid_openid", e.to_string()),
        E::Data(_) => ApiError::bad_request("invalid_data", e.to_string()),
        E::InvalidInput { .. } => ApiError::bad_request("invalid_field", e.to_string()),
        E::RateLimited { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "wechat_rate_limited",
            "WeChat's per-user login quota is used up: try again in a minute",
        )
        .with_retry_after(60),
        e if e.is_wechat_unavailable() => {
            tracing::warn!(error = %e, "WeChat unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "wechat_unavailable",
                "WeChat is not answering right now: try again in a few seconds",
            )
            .with_retry_after(5)
        }
        e => {
            tracing::error!(error = %e, "WeChat refused a login call");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "wechat_error",
                format!("WeChat refused the call: {e}"),
            )
        }
    }
    .with_wechat_errcode(errcode)
}

impl From<crate::db::DbError> for ApiError {
    /// The database could not be reached (no connection within `database.acquire_timeout_ms`, or the connection
    /// died): 503 with a retry hint, logged once per interval. Any other database failure is a 500 with its cause
    /// chain logged. Nothing internal is shown to the client either way.
    fn from(e: crate::db::DbError) -> ApiError {
        if crate::db::is_connection_error(&e) {
            ApiError::unavailable(&Chain(&e))
        } else {
            ApiError::internal(&Chain(&e))
        }
    }
}

/// An error with its sources, `outer: inner: innermost`, for log lines.
#[derive(Debug)]
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            // thiserror's `#[error(transparent)]` repeats its source's message: print each message once.
            let message = e.to_string();
            if !self.0.to_string().ends_with(&message) {
                write!(f, ": {message}")?;
            }
            source = e.source();
        }
        Ok(())
    }
}

/// A `302 Found` to `location`.
pub fn found(location: &str) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Found()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}
