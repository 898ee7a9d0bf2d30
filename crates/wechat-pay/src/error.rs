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
    /// v3: WeChat Pay answered with an error (`{code, message, detail}`).
    #[error("WeChat Pay v3 error {code} (HTTP {status}): {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// `code`, typed.
        code: crate::v3::ErrorCode,
        /// `message`.
        message: String,
        /// `detail`, when given.
        detail: Option<serde_json::Value>,
    },
    /// v3: a response or notify signature was refused.
    #[error("WeChat Pay v3 signature refused: {0}")]
    Verify(#[from] crate::v3::VerifyError),
    /// v3: a key or certificate could not be used.
    #[error(transparent)]
    Key(#[from] crate::v3::KeyError),
    /// v3: a sealed payload did not open.
    #[error("v3 payload does not decrypt: {0}")]
    Aead(#[from] crate::v3::aead::DecryptError),
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

    /// The business error code, if this is a business failure: v2's `err_code`, v3's `code`.
    pub fn err_code(&self) -> Option<&str> {
        match self {
            Error::Business { err_code, .. } => Some(err_code),
            Error::Api { code, .. } => Some(code.as_str()),
            _ => None,
        }
    }

    /// Whether the same request (same `out_trade_no` / `out_refund_no`) may be sent again: transport failures, 5xx,
    /// v3 `SYSTEM_ERROR`, `BANK_ERROR`, `FREQUENCY_LIMITED`, v2 `SYSTEMERROR`. WeChat Pay deduplicates on the number.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api { code, status, .. } => code.is_retryable() || *status >= 500,
            Error::Business { err_code, .. } => matches!(err_code.as_str(), "SYSTEMERROR" | "BANKERROR"),
            Error::Wechat(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Shorthand for `Result<T, wechat_pay::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
