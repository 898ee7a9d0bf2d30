//! Digests and random tokens used across the app.

use sha2::{Digest, Sha256};

/// sha256 hex, for API tokens at rest.
///
/// ```
/// assert_eq!(
///     wxkit::platform::crypto::sha256_hex("abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn sha256_hex(s: &str) -> String {
    sha256_hex_bytes(s.as_bytes())
}

/// sha256 hex of bytes.
pub fn sha256_hex_bytes(b: &[u8]) -> String {
    wechat_core::encoding::hex_lower(&Sha256::digest(b))
}

/// A fresh random token: 256 bits from the operating system's CSPRNG (through rand's thread-local generator), hex.
///
/// ```
/// let t = wxkit::platform::crypto::random_token();
/// assert_eq!(t.len(), 64);
/// assert_ne!(t, wxkit::platform::crypto::random_token());
/// ```
pub fn random_token() -> String {
    random_hex(32)
}

/// `bytes` random bytes from the operating system's CSPRNG, as lowercase hex (twice as many characters).
///
/// ```
/// assert_eq!(wxkit::platform::crypto::random_hex(16).len(), 32);
/// ```
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    wechat_core::encoding::hex_lower(&b)
}
