//! `ApiJson<T>`: the JSON body extractor of the API. Like `web::Json` (256 KiB cap, `application/json`), and it
//! refuses text that no field of ours may hold: NUL (PostgreSQL cannot store it, SQLite would) and the other C0
//! control characters except tab, newline and carriage return. The check is the same for every route and both
//! backends, and costs nothing for bodies without a backslash (raw control characters are not valid JSON, so only
//! an escape can carry one).

use crate::http::errors::ApiError;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;

/// Largest JSON body accepted.
pub const JSON_LIMIT: usize = 256 * 1024;

/// A JSON body, checked for control characters.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T> ApiJson<T> {
    /// The value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for ApiJson<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Whether a JSON document contains, inside a string, an escaped control character other than `\t`, `\n`, `\r`.
///
/// ```
/// use wxkit::http::json::has_control_escape;
/// assert!(has_control_escape(br#"{"name":"a\u0000b"}"#));
/// assert!(has_control_escape(br#"{"name":"bell\u0007"}"#));
/// assert!(has_control_escape(br#"{"name":"x\b"}"#));
/// assert!(!has_control_escape(br#"{"name":"line\nbreak\ttab \\u0000 is text"}"#));
/// assert!(!has_control_escape(br#"{"name":"\u4e2d"}"#));
/// ```
pub fn has_control_escape(body: &[u8]) -> bool {
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            i += 1;
            continue;
        }
        match body.get(i + 1) {
            Some(b'b' | b'f') => return true,
            Some(b'u') => {
                let hex = body.get(i + 2..i + 6).and_then(|h| std::str::from_utf8(h).ok());
                if let Some(cp) = hex.and_then(|h| u32::from_str_radix(h, 16).ok())
                    && (cp < 0x20 && !matches!(cp, 0x09 | 0x0a | 0x0d) || cp == 0x7f)
                {
                    return true;
                }
                i += 6;
            }
            // Any other escape (`\\`, `\"`, `\n` ...) is two bytes: skipping both keeps `\\u0000` as text.
            _ => i += 2,
        }
    }
    false
}

/// Parses a checked JSON body.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if has_control_escape(body) {
        return Err(ApiError::bad_request(
            "invalid_text",
            "a text field contains a NUL or control character",
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !json {
                return Err(ApiError::new(
                    actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as Content-Type: application/json",
                ));
            }
            let body = body.await.map_err(|e| body_error(&e))?;
            parse(&body).map(ApiJson)
        })
    }
}

/// The API error for a body that could not be read (too large, timed out, broken off).
pub fn body_error(e: &actix_web::Error) -> ApiError {
    use actix_web::http::StatusCode;
    // The body deadline (`limits::body_deadline`) ends the stream with a timed-out I/O error, which actix would
    // answer 400: it is a 408.
    let timed_out = e.as_error::<actix_web::error::PayloadError>().is_some_and(
        |p| matches!(p, actix_web::error::PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut),
    );
    let status = if timed_out {
        StatusCode::REQUEST_TIMEOUT
    } else {
        e.as_response_error().status_code()
    };
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, "payload_too_large", "the body is too large"),
        StatusCode::REQUEST_TIMEOUT => ApiError::new(status, "body_timeout", "the body did not arrive in time"),
        _ => ApiError::bad_request("invalid_body", e.to_string()),
    }
}
