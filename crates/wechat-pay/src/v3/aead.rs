//! AES-256-GCM with the APIv3 key: what notify `resource`s and downloaded platform certificates are sealed with.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

wechat_core::secret_type!(
    /// The merchant's APIv3 key: 32 characters, set on the merchant platform. Decrypts notifies and certificates.
    ApiV3Key
);

/// The only algorithm WeChat Pay uses.
pub const ALGORITHM: &str = "AEAD_AES_256_GCM";

/// A sealed payload as WeChat Pay sends it (a notify's `resource`, a certificate's `encrypt_certificate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    /// `AEAD_AES_256_GCM`.
    pub algorithm: String,
    /// Base64 of the ciphertext followed by the 16-byte tag.
    pub ciphertext: String,
    /// The associated data (may be empty).
    #[serde(default)]
    pub associated_data: String,
    /// The 12-character nonce.
    pub nonce: String,
    /// What the plaintext is (`transaction`, `refund`, …), on notifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_type: Option<String>,
}

/// Why a sealed payload did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// The APIv3 key is not 32 bytes.
    #[error("the APIv3 key must be 32 bytes")]
    KeyLength,
    /// Not `AEAD_AES_256_GCM`.
    #[error("unsupported algorithm {0}")]
    Algorithm(String),
    /// The nonce is not 12 bytes or the ciphertext not base64.
    #[error("malformed nonce or ciphertext")]
    Malformed,
    /// The tag does not verify: another key, altered data or altered associated data.
    #[error("does not decrypt with this APIv3 key (wrong key, or the data was altered)")]
    Authentication,
}

fn cipher(key: &ApiV3Key) -> Result<Aes256Gcm, DecryptError> {
    Aes256Gcm::new_from_slice(key.secret().as_bytes()).map_err(|_| DecryptError::KeyLength)
}

/// Opens a sealed payload.
///
/// ```
/// use wechat_pay::v3::{ApiV3Key, aead};
/// let key = ApiV3Key::new("0123456789abcdefghijklmnopqrstuv");
/// let sealed = aead::encrypt(&key, "fdasflkja484", "transaction", b"{\"ok\":1}")?;
/// assert_eq!(aead::decrypt(&key, &sealed)?, b"{\"ok\":1}");
/// let mut altered = sealed.clone();
/// altered.associated_data = "refund".into();
/// assert_eq!(aead::decrypt(&key, &altered), Err(aead::DecryptError::Authentication));
/// # Ok::<(), aead::DecryptError>(())
/// ```
pub fn decrypt(key: &ApiV3Key, resource: &EncryptedResource) -> Result<Vec<u8>, DecryptError> {
    if resource.algorithm != ALGORITHM {
        return Err(DecryptError::Algorithm(resource.algorithm.clone()));
    }
    let cipher = cipher(key)?;
    if resource.nonce.len() != 12 {
        return Err(DecryptError::Malformed);
    }
    let sealed = B64
        .decode(resource.ciphertext.trim().as_bytes())
        .map_err(|_| DecryptError::Malformed)?;
    cipher
        .decrypt(
            Nonce::from_slice(resource.nonce.as_bytes()),
            Payload {
                msg: &sealed,
                aad: resource.associated_data.as_bytes(),
            },
        )
        .map_err(|_| DecryptError::Authentication)
}

/// Seals a payload as WeChat Pay does (for simulators and tests): `nonce` must be 12 bytes.
pub fn encrypt(
    key: &ApiV3Key,
    nonce: &str,
    associated_data: &str,
    plaintext: &[u8],
) -> Result<EncryptedResource, DecryptError> {
    let cipher = cipher(key)?;
    if nonce.len() != 12 {
        return Err(DecryptError::Malformed);
    }
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(nonce.as_bytes()),
            Payload {
                msg: plaintext,
                aad: associated_data.as_bytes(),
            },
        )
        .map_err(|_| DecryptError::Malformed)?;
    Ok(EncryptedResource {
        algorithm: ALGORITHM.into(),
        ciphertext: B64.encode(sealed),
        associated_data: associated_data.into(),
        nonce: nonce.into(),
        original_type: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::vectors as v;

    fn vector() -> EncryptedResource {
        EncryptedResource {
            algorithm: ALGORITHM.into(),
            ciphertext: v::CIPHERTEXT.into(),
            associated_data: "transaction".into(),
            nonce: "fdasflkja484".into(),
            original_type: Some("transaction".into()),
        }
    }

    #[test]
    fn decrypts_what_python_cryptography_sealed() {
        let key = ApiV3Key::new(v::API_V3_KEY);
        assert_eq!(decrypt(&key, &vector()).expect("opens"), v::PLAIN.as_bytes());
        let again = encrypt(&key, "fdasflkja484", "transaction", v::PLAIN.as_bytes()).expect("seals");
        assert_eq!(again.ciphertext, v::CIPHERTEXT);
    }

    #[test]
    fn anything_altered_or_another_key_fails() {
        let key = ApiV3Key::new(v::API_V3_KEY);
        let other = ApiV3Key::new("vutsrqponmlkjihgfedcba9876543210");
        assert_eq!(decrypt(&other, &vector()), Err(DecryptError::Authentication));
        assert_eq!(
            decrypt(&ApiV3Key::new("short"), &vector()),
            Err(DecryptError::KeyLength)
        );
        let mut r = vector();
        r.nonce = "fdasflkja485".into();
        assert_eq!(decrypt(&key, &r), Err(DecryptError::Authentication));
        let mut r = vector();
        r.nonce = "short".into();
        assert_eq!(decrypt(&key, &r), Err(DecryptError::Malformed));
        let mut r = vector();
        r.algorithm = "AES_128".into();
        assert!(matches!(decrypt(&key, &r), Err(DecryptError::Algorithm(_))));
        let mut r = vector();
        r.ciphertext = "!!".into();
        assert_eq!(decrypt(&key, &r), Err(DecryptError::Malformed));
    }
}
