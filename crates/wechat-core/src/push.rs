//! Server-push verification for the official account's server URL (`GET ?signature&timestamp&nonce&echostr`).

use sha1::{Digest, Sha1};

/// Lowercase hex SHA-1 of the concatenation of `parts` sorted lexicographically — the shape of every WeChat
/// "sort, join, sha1" signature (server URL, safe-mode `msg_signature`, card `cardExt`).
///
/// ```
/// assert_eq!(
///     wechat_core::push::sorted_sha1(&["test", "1410685589", "test"]),
///     "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"
/// );
/// ```
pub fn sorted_sha1(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex_lower(&hasher.finalize())
}

/// `signature = sha1(sort([token, timestamp, nonce]).join(""))`, lowercase hex.
pub fn server_signature(token: &str, timestamp: &str, nonce: &str) -> String {
    sorted_sha1(&[token, timestamp, nonce])
}

/// Checks a server-URL signature in constant time.
///
/// ```
/// use wechat_core::push::verify_server_signature;
/// assert!(verify_server_signature("test", "1410685589", "test", "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"));
/// assert!(!verify_server_signature("test", "1410685589", "test", "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe"));
/// ```
pub fn verify_server_signature(token: &str, timestamp: &str, nonce: &str, signature: &str) -> bool {
    let expected = server_signature(token, timestamp, nonce);
    crate::constant_time_eq(expected.as_bytes(), signature.to_ascii_lowercase().as_bytes())
}

/// Lowercase hex.
pub fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}
