//! The crate's error type: WeChat errcodes that callers act on get their own variant.

/// Everything a wechat-oauth call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 40029: the code is wrong or expired (codes live 5 minutes).
    #[error("invalid or expired code (errcode 40029): {message}")]
    InvalidCode {
        /// WeChat's errmsg.
        message: String,
    },
    /// 40163: the code was already used (codes are single use).
    #[error("code already used (errcode 40163): {message}")]
    CodeUsed {
        /// WeChat's errmsg.
        message: String,
    },
    /// 40030: the refresh_token is not valid.
    #[error("invalid refresh_token (errcode 40030): {message}")]
    InvalidRefreshToken {
        /// WeChat's errmsg.
        message: String,
    },
    /// 42002: the refresh_token expired (it lives 30 days); send the user through authorization again.
    #[error("refresh_token expired (errcode 42002): {message}")]
    RefreshTokenExpired {
        /// WeChat's errmsg.
        message: String,
    },
    /// 48001: the call needs a scope or permission the token does not have (e.g. `/sns/userinfo` with an
    /// `snsapi_base` token).
    #[error("API unauthorized (errcode 48001): {message}")]
    Unauthorized {
        /// WeChat's errmsg.
        message: String,
    },
    /// 40003: the openid does not match.
    #[error("invalid openid (errcode 40003): {message}")]
    InvalidOpenId {
        /// WeChat's errmsg.
        message: String,
    },
    /// 40226: WeChat blocked the login of a high-risk user.
    #[error("code blocked for a high-risk user (errcode 40226): {message}")]
    CodeBlocked {
        /// WeChat's errmsg.
        message: String,
    },
    /// 45011 / 45009: too many calls; back off.
    #[error("rate limited (errcode {code}): {message}")]
    RateLimited {
        /// The errcode.
        code: i64,
        /// WeChat's errmsg.
        message: String,
    },
    /// 40169 (scene length / not JSON) or 40129 (invalid scene) from `getwxacodeunlimit`.
    #[error("invalid scene (errcode {code}): {message}")]
    InvalidScene {
        /// The errcode.
        code: i64,
        /// WeChat's errmsg.
        message: String,
    },
    /// 41030: the mini-program page does not exist (or is not published).
    #[error("invalid page (errcode 41030): {message}")]
    InvalidPage {
        /// WeChat's errmsg.
        message: String,
    },
    /// Input rejected before anything was sent.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong.
        message: String,
    },
    /// An OAuth `state` failed verification.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// Decrypting or verifying mini-program data failed.
    #[error(transparent)]
    Data(#[from] crate::miniprogram::DataError),
    /// Any other failure (transport, token, other errcodes), from wechat-core.
    #[error(transparent)]
    Wechat(wechat_core::Error),
}

impl From<wechat_core::Error> for Error {
    fn from(e: wechat_core::Error) -> Self {
        let Some(code) = e.errcode() else {
            return Error::Wechat(e);
        };
        let message = match &e {
            wechat_core::Error::Api { message, .. }
            | wechat_core::Error::RateLimited { message, .. }
            | wechat_core::Error::TokenInvalid { message, .. }
            | wechat_core::Error::Config { message, .. }
            | wechat_core::Error::SystemBusy { message } => message.clone(),
            _ => String::new(),
        };
        match code {
            40029 => Error::InvalidCode { message },
            40163 => Error::CodeUsed { message },
            40030 => Error::InvalidRefreshToken { message },
            42002 => Error::RefreshTokenExpired { message },
            48001 => Error::Unauthorized { message },
            40003 => Error::InvalidOpenId { message },
            40226 => Error::CodeBlocked { message },
            45009 | 45011 => Error::RateLimited { code, message },
            40169 | 40129 => Error::InvalidScene { code, message },
            41030 => Error::InvalidPage { message },
            _ => Error::Wechat(e),
        }
    }
}

impl Error {
    /// The WeChat errcode behind the error, if any.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            Error::InvalidCode { .. } => Some(40029),
            Error::CodeUsed { .. } => Some(40163),
            Error::InvalidRefreshToken { .. } => Some(40030),
            Error::RefreshTokenExpired { .. } => Some(42002),
            Error::Unauthorized { .. } => Some(48001),
            Error::InvalidOpenId { .. } => Some(40003),
            Error::CodeBlocked { .. } => Some(40226),
            Error::RateLimited { code, .. } | Error::InvalidScene { code, .. } => Some(*code),
            Error::InvalidPage { .. } => Some(41030),
            Error::Wechat(e) => e.errcode(),
            _ => None,
        }
    }

    /// True when the call failed because WeChat is down, slow or busy — the same call may succeed a little later —
    /// not because of what was sent (a bad, used or blocked code). A login page then says "try again", not "log in
    /// again".
    ///
    /// ```
    /// use wechat_oauth::Error;
    /// assert!(!Error::CodeUsed { message: "code been used".into() }.is_wechat_unavailable());
    /// assert!(Error::RateLimited { code: 45011, message: "api minute-quota reach limit".into() }.is_wechat_unavailable());
    /// ```
    pub fn is_wechat_unavailable(&self) -> bool {
        match self {
            Error::RateLimited { .. } => true,
            Error::Wechat(inner) => {
                inner.is_transient()
                    || matches!(
                        inner,
                        wechat_core::Error::Transport(_)
                            | wechat_core::Error::HttpStatus { .. }
                            | wechat_core::Error::Decode { .. }
                            | wechat_core::Error::RateLimited { .. }
                    )
            }
            _ => false,
        }
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidInput {
        message: message.into(),
    }
}

/// Shorthand for `Result<T, wechat_oauth::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
