//! The crate's error type.

/// Everything a card call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 40056: the code does not exist (or is not this card's).
    #[error("invalid serial code (errcode 40056): {message}")]
    InvalidCode {
        /// WeChat's errmsg.
        message: String,
    },
    /// 40099: the code was already consumed.
    #[error("code already consumed (errcode 40099): {message}")]
    AlreadyConsumed {
        /// WeChat's errmsg.
        message: String,
    },
    /// 40127: the card was deleted, given away or is otherwise unavailable.
    #[error("card unavailable (errcode 40127): {message}")]
    Unavailable {
        /// WeChat's errmsg.
        message: String,
    },
    /// 40075: the encrypt_code does not decrypt.
    #[error("invalid encrypt_code (errcode 40075): {message}")]
    InvalidEncryptCode {
        /// WeChat's errmsg.
        message: String,
    },
    /// Input refused before sending (field limits, image type or size...).
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong.
        message: String,
    },
    /// Any other failure, from wechat-core.
    #[error(transparent)]
    Wechat(wechat_core::Error),
}

impl From<wechat_core::Error> for Error {
    fn from(e: wechat_core::Error) -> Self {
        let message = match &e {
            wechat_core::Error::Api { message, .. } => message.clone(),
            _ => return Error::Wechat(e),
        };
        match e.errcode() {
            Some(40056) => Error::InvalidCode { message },
            Some(40099) => Error::AlreadyConsumed { message },
            Some(40127) => Error::Unavailable { message },
            Some(40075) => Error::InvalidEncryptCode { message },
            _ => Error::Wechat(e),
        }
    }
}

impl Error {
    /// The WeChat errcode, if any.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            Error::InvalidCode { .. } => Some(40056),
            Error::AlreadyConsumed { .. } => Some(40099),
            Error::Unavailable { .. } => Some(40127),
            Error::InvalidEncryptCode { .. } => Some(40075),
            Error::Wechat(e) => e.errcode(),
            Error::InvalidInput { .. } => None,
        }
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidInput {
        message: message.into(),
    }
}

/// Shorthand for `Result<T, wechat_card::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
