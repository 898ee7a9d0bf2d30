//! v3's error codes, typed.

use std::fmt;

/// The `code` of a v3 error body. Unknown codes are kept as [`ErrorCode::Other`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 401: the request signature did not verify.
    SignError,
    /// 400: a parameter is wrong.
    ParamError,
    /// 400: the request is not acceptable in this state.
    InvalidRequest,
    /// 403: the merchant may not do this.
    NoAuth,
    /// 400/403: the order is paid already.
    OrderPaid,
    /// 400/403: the order is closed.
    OrderClosed,
    /// 403: the balance does not cover the refund.
    NotEnough,
    /// 404: no such order.
    OrderNotExist,
    /// 404: no such resource (refund, …).
    ResourceNotExists,
    /// 429: too many requests; retry later with the same number.
    FrequencyLimited,
    /// 5xx: WeChat Pay failed; retry with the same number.
    SystemError,
    /// 5xx: the bank failed; retry with the same number.
    BankError,
    /// Anything else, as sent.
    Other(String),
}

impl ErrorCode {
    /// From WeChat Pay's string.
    pub fn parse(code: &str) -> Self {
        match code {
            "SIGN_ERROR" => Self::SignError,
            "PARAM_ERROR" => Self::ParamError,
            "INVALID_REQUEST" => Self::InvalidRequest,
            "NO_AUTH" => Self::NoAuth,
            "ORDERPAID" | "ORDER_PAID" => Self::OrderPaid,
            "ORDER_CLOSED" | "ORDERCLOSED" => Self::OrderClosed,
            "NOT_ENOUGH" => Self::NotEnough,
            "ORDER_NOT_EXIST" | "ORDERNOTEXIST" => Self::OrderNotExist,
            "RESOURCE_NOT_EXISTS" => Self::ResourceNotExists,
            "FREQUENCY_LIMITED" => Self::FrequencyLimited,
            "SYSTEM_ERROR" | "SYSTEMERROR" => Self::SystemError,
            "BANK_ERROR" | "BANKERROR" => Self::BankError,
            other => Self::Other(other.to_owned()),
        }
    }

    /// WeChat Pay's string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::SignError => "SIGN_ERROR",
            Self::ParamError => "PARAM_ERROR",
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::NoAuth => "NO_AUTH",
            Self::OrderPaid => "ORDERPAID",
            Self::OrderClosed => "ORDER_CLOSED",
            Self::NotEnough => "NOT_ENOUGH",
            Self::OrderNotExist => "ORDER_NOT_EXIST",
            Self::ResourceNotExists => "RESOURCE_NOT_EXISTS",
            Self::FrequencyLimited => "FREQUENCY_LIMITED",
            Self::SystemError => "SYSTEM_ERROR",
            Self::BankError => "BANK_ERROR",
            Self::Other(s) => s,
        }
    }

    /// Whether sending the same request again (same `out_trade_no`) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::SystemError | Self::BankError | Self::FrequencyLimited)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_say_whether_to_retry() {
        for c in [
            "SIGN_ERROR",
            "PARAM_ERROR",
            "INVALID_REQUEST",
            "NO_AUTH",
            "ORDERPAID",
            "ORDER_CLOSED",
            "NOT_ENOUGH",
            "ORDER_NOT_EXIST",
            "RESOURCE_NOT_EXISTS",
            "FREQUENCY_LIMITED",
            "SYSTEM_ERROR",
            "BANK_ERROR",
            "MCH_NOT_EXISTS",
        ] {
            assert_eq!(ErrorCode::parse(c).as_str(), c);
        }
        assert!(ErrorCode::parse("SYSTEM_ERROR").is_retryable());
        assert!(!ErrorCode::parse("ORDERPAID").is_retryable());
        assert!(!ErrorCode::parse("SIGN_ERROR").is_retryable());
    }
}
