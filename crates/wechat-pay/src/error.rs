//! The crate's error type.

use crate::sign::SignError;
use crate::xml::XmlError;

/// Everything a Pay call or a notify can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The body is not acceptable XML (hostile, malformed, too large...).
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// `return_code` FAIL: the request did not get through (bad signature, bad parameters format, ...).
    #[error("WeChat Pay refused the request: {return_msg}")]
    ReturnFail {
        /// WeChat's `return_msg`.
        return_msg: String,
    },
    /// `result_code` FAIL: a business failure (ORDERPAID, ORDERCLOSED, OUT_TRADE_NO_USED, NOTENOUGH, ...).
    #[error("WeChat Pay business error {err_code}: {err_code_des}")]
    Business {
        /// `err_code`.
        err_code: String,
        /// `err_code_des`.
        err_code_des: String,
    },
    /// A response's signature does not verify: it was not sent by WeChat (or was altered). Never trust it.
    #[error("WeChat Pay response signature invalid: {0}")]
    ResponseSignature(SignError),
    /// A notify's signature does not verify.
    #[error("payment notify signature invalid: {0}")]
    NotifySignature(SignError),
    /// A response or notify is for another app or merchant.
    #[error("{field} does not match this merchant")]
    MerchantMismatch {
        /// `appid` or `mch_id`.
        field: &'static str,
    },
    /// A field the message must have is missing or unreadable.
    #[error("missing or invalid field {0}")]
    MissingField(&'static str),
    /// `req_info` of a refund notify does not decrypt with our key.
    #[error("refund notify req_info does not decrypt with this key")]
    Decrypt,
    /// Refunds need the merchant certificate transport (`with_certificate_transport`).
    #[error("this call needs the merchant client certificate: configure with_certificate_transport")]
    CertificateRequired,
    /// Input refused before sending.
    #[error("invalid request: {message}")]
    InvalidRequest {
        /// What is wrong.
        message: String,
    },
    /// Transport and other failures from wechat-core.
    #[error(transparent)]
    Wechat(#[from] wechat_core::Error),
}

impl Error {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidRequest {
            message: message.into(),
        }
    }

    /// The business `err_code`, if this is a business failure.
    pub fn err_code(&self) -> Option<&str> {
        match self {
            Error::Business { err_code, .. } => Some(err_code),
            _ => None,
        }
    }
}

/// Shorthand for `Result<T, wechat_pay::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
