//! Errors: WeChat errcodes as typed data, plus transport and decoding failures.

use std::fmt;

/// Everything a WeChat call can fail with.
///
/// WeChat's errcodes are kept as data (`code` and `message` are preserved exactly as WeChat sent them); the codes a
/// caller acts on get their own variant so that `match` is enough to decide what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The access token was rejected: 40001 (invalid or not latest), 40014 (invalid token), 42001 (expired),
    /// 41001 (missing). The token manager invalidates the token, refreshes once and retries once.
    #[error("WeChat rejected the access token (errcode {code}): {message}")]
    TokenInvalid {
        /// The errcode.
        code: i64,
        /// WeChat's errmsg.
        message: String,
    },
    /// A configuration error that no retry can fix: 40013 (invalid appid), 40125 (invalid appsecret),
    /// 40164 (caller IP not in the whitelist), 41002/41004 (appid/secret missing).
    #[error("WeChat rejected the app configuration (errcode {code}): {message}")]
    Config {
        /// The errcode.
        code: i64,
        /// WeChat's errmsg.
        message: String,
    },
    /// A quota was hit: 45009 (daily), 45011 (per minute). Back off; do not hammer.
    #[error("WeChat rate limit reached (errcode {code}): {message}")]
    RateLimited {
        /// The errcode.
        code: i64,
        /// WeChat's errmsg.
        message: String,
    },
    /// errcode -1, "system error": transient, retried with backoff by the [`RetryPolicy`](crate::RetryPolicy).
    #[error("WeChat system error (errcode -1): {message}")]
    SystemBusy {
        /// WeChat's errmsg.
        message: String,
    },
    /// Any other errcode. Higher-level crates match on `code` or map it to their own variants.
    #[error("WeChat API error (errcode {code}): {message}")]
    Api {
        /// The errcode.
        code: i64,
        /// WeChat's errmsg.
        message: String,
    },
    /// WeChat (or a proxy) answered with a non-2xx HTTP status.
    #[error("WeChat answered HTTP {status}")]
    HttpStatus {
        /// The HTTP status code.
        status: u16,
    },
    /// The HTTP exchange itself failed (connect, TLS, reset, timeout).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The response could not be decoded into the expected shape. Carries a description, never the body: bodies of
    /// token and session endpoints contain secrets.
    #[error("unexpected response from WeChat: {message}")]
    Decode {
        /// What was wrong with the response.
        message: String,
    },
    /// A request could not be built from the given input (bad base URL, unencodable body...).
    #[error("invalid request: {message}")]
    InvalidRequest {
        /// What was wrong.
        message: String,
    },
    /// The token store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// Maps a non-zero WeChat errcode and its errmsg to the matching variant.
    ///
    /// ```
    /// use wechat_core::Error;
    /// assert!(matches!(Error::from_errcode(42001, "access_token expired"), Error::TokenInvalid { code: 42001, .. }));
    /// assert!(matches!(Error::from_errcode(40125, "invalid appsecret"), Error::Config { .. }));
    /// assert!(matches!(Error::from_errcode(40029, "invalid code"), Error::Api { code: 40029, .. }));
    /// ```
    pub fn from_errcode(code: i64, message: impl Into<String>) -> Self {
        let message = message.into();
        match code {
            40001 | 40014 | 41001 | 42001 => Error::TokenInvalid { code, message },
            40013 | 40125 | 40164 | 41002 | 41004 | 40002 => Error::Config { code, message },
            45009 | 45011 => Error::RateLimited { code, message },
            -1 => Error::SystemBusy { message },
            _ => Error::Api { code, message },
        }
    }

    /// The WeChat errcode behind this error, if it came from one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            Error::TokenInvalid { code, .. }
            | Error::Config { code, .. }
            | Error::RateLimited { code, .. }
            | Error::Api { code, .. } => Some(*code),
            Error::SystemBusy { .. } => Some(-1),
            _ => None,
        }
    }

    /// True for failures that may succeed when tried again: errcode -1, HTTP 5xx, timeouts and connection failures.
    /// Configuration errors, quota errors and business errors are never transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::SystemBusy { .. } => true,
            Error::HttpStatus { status } => *status >= 500,
            Error::Transport(e) => e.is_transient(),
            _ => false,
        }
    }

    /// True when the access token used for the call was rejected (40001, 40014, 41001, 42001).
    pub fn is_token_invalid(&self) -> bool {
        matches!(self, Error::TokenInvalid { .. })
    }
}

/// A failure of the HTTP exchange. Never carries a URL: WeChat puts secrets and tokens in query strings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No response within the configured timeout.
    #[error("request to WeChat timed out")]
    Timeout,
    /// The connection could not be established.
    #[error("could not connect to WeChat: {0}")]
    Connect(#[source] BoxError),
    /// Any other failure (TLS, reset, malformed HTTP...).
    #[error("HTTP transport failed: {0}")]
    Other(#[source] BoxError),
}

impl TransportError {
    /// Timeouts and connection failures are worth retrying; other transport failures are not.
    pub fn is_transient(&self) -> bool {
        matches!(self, TransportError::Timeout | TransportError::Connect(_))
    }
}

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure of a [`TokenStore`](crate::TokenStore) implementation.
#[derive(thiserror::Error)]
#[error("token store failed: {message}")]
pub struct StoreError {
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl StoreError {
    /// An error with a message only.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error wrapping its cause.
    pub fn with_source(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("message", &self.message)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

/// Shorthand for `Result<T, wechat_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_classification() {
        assert!(Error::from_errcode(-1, "system error").is_transient());
        assert!(Error::HttpStatus { status: 502 }.is_transient());
        assert!(!Error::HttpStatus { status: 404 }.is_transient());
        for code in [40013, 40125, 40164] {
            let e = Error::from_errcode(code, "x");
            assert!(!e.is_transient(), "{code} must never be retried");
            assert!(matches!(e, Error::Config { .. }));
        }
        assert!(!Error::from_errcode(45011, "slow down").is_transient());
        assert!(Error::Transport(TransportError::Timeout).is_transient());
    }

    #[test]
    fn errcode_is_preserved() {
        let e = Error::from_errcode(40099, "invalid code, this code has consumed., rid: 1");
        assert_eq!(e.errcode(), Some(40099));
        assert!(e.to_string().contains("rid: 1"));
    }
}
