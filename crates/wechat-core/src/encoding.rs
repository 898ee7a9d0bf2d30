//! Encodings used across the crates.

/// Lowercase hex, as WeChat writes digests and signatures.
///
/// ```
/// assert_eq!(wechat_core::encoding::hex_lower(&[0x0f, 0xa0]), "0fa0");
/// ```
pub fn hex_lower(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}
