//! The error of the product handles' builders and shortcuts.

/// What went wrong building or using a product handle. The API groups return their own crates' errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder setting is missing or invalid, or a WeChat call failed (typed errcodes, transport).
    #[error(transparent)]
    Wechat(#[from] wechat_core::Error),
    /// A login or JS-SDK call failed.
    #[error(transparent)]
    OAuth(#[from] wechat_oauth::Error),
    /// A WeChat Pay setting or call failed.
    #[error(transparent)]
    Pay(#[from] wechat_pay::Error),
    /// The push settings are invalid (an EncodingAESKey that is not 43 base64 characters).
    #[error(transparent)]
    Push(#[from] wechat_core::push::PushError),
    /// The handle was built without what this call needs.
    #[error("{what} is not configured: set it with {how}")]
    NotConfigured {
        /// What is missing.
        what: &'static str,
        /// The builder call that sets it.
        how: &'static str,
    },
}

/// `Result<T, wechat::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
