//! Sensitive-field encryption: a field WeChat Pay must read in the clear (a name, an ID number, a phone number in
//! transfers, profit sharing, 商家券 contacts) travels encrypted with WeChat Pay's key — RSA-OAEP (SHA-1, MGF1-SHA-1:
//! WeChat's `RSA/ECB/OAEPWithSHA-1AndMGF1Padding`) under the WeChat Pay public key or the platform certificate, base64
//! — and the request names that key in `Wechatpay-Serial` ([`RequestSigner::with_wechatpay_serial`]; the
//! [`Client`](crate::v3::Client) names the key it holds, [`Client::encrypt_sensitive`](crate::v3::Client::encrypt_sensitive)
//! encrypts with the same one).
//!
//! Only public-key arithmetic happens here (no secret is involved, so no constant-time concern); the random seed
//! comes from the system's generator.
//!
//! ```
//! # let pem = include_str!("../../testdata/pubkey.pem");
//! use wechat_pay::v3::{PublicKey, sensitive};
//! let key = PublicKey::from_pem(pem)?;
//! let sealed = sensitive::encrypt(&key, "张三")?;
//! assert_eq!(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &sealed).unwrap().len(), 256);
//! assert_ne!(sensitive::encrypt(&key, "张三")?, sealed); // a fresh seed each time
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`RequestSigner::with_wechatpay_serial`]: crate::v3::RequestSigner::with_wechatpay_serial

use crate::v3::keys::PublicKey;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use num_bigint::BigUint;
use sha1::{Digest, Sha1};

/// SHA-1's output size.
const H_LEN: usize = 20;

/// Why a field could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SensitiveError {
    /// Longer than OAEP-SHA-1 carries under this key (214 bytes for RSA-2048).
    #[error("the field is {len} bytes; RSA-OAEP under this key carries at most {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The most.
        max: usize,
    },
    /// The system's random generator failed.
    #[error("the system random generator is unavailable")]
    Random,
    /// The key is not usable.
    #[error("the key is not an RSA public key")]
    Key,
}

/// Encrypts `plaintext` (UTF-8) for WeChat Pay under `key`: RSA-OAEP with SHA-1 and MGF1-SHA-1, an empty label, a
/// fresh random seed; base64.
pub fn encrypt(key: &PublicKey, plaintext: &str) -> Result<String, SensitiveError> {
    let mut seed = [0u8; H_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed).map_err(|_| SensitiveError::Random)?;
    encrypt_with_seed(key, plaintext.as_bytes(), &seed)
}

/// [`encrypt`] with a given seed (RFC 8017 §7.1.1): deterministic, for test vectors only.
#[doc(hidden)]
pub fn encrypt_with_seed(key: &PublicKey, message: &[u8], seed: &[u8; H_LEN]) -> Result<String, SensitiveError> {
    let (n, e) = key.components().ok_or(SensitiveError::Key)?;
    let k = n.len();
    let max = k.saturating_sub(2 * H_LEN + 2);
    if message.len() > max {
        return Err(SensitiveError::TooLong {
            len: message.len(),
            max,
        });
    }
    // DB = lHash ‖ PS ‖ 0x01 ‖ M
    let mut db = Vec::with_capacity(k - H_LEN - 1);
    db.extend_from_slice(&Sha1::digest(b""));
    db.resize(k - message.len() - H_LEN - 2, 0);
    db.push(1);
    db.extend_from_slice(message);
    let db_mask = mgf1(seed, db.len());
    db.iter_mut().zip(db_mask).for_each(|(b, m)| *b ^= m);
    let seed_mask = mgf1(&db, H_LEN);
    let masked_seed: Vec<u8> = seed.iter().zip(seed_mask).map(|(s, m)| s ^ m).collect();
    // EM = 0x00 ‖ maskedSeed ‖ maskedDB
    let mut em = Vec::with_capacity(k);
    em.push(0);
    em.extend_from_slice(&masked_seed);
    em.extend_from_slice(&db);
    let c = BigUint::from_bytes_be(&em).modpow(&BigUint::from_bytes_be(e), &BigUint::from_bytes_be(n));
    let bytes = c.to_bytes_be();
    let mut out = vec![0u8; k - bytes.len()];
    out.extend_from_slice(&bytes);
    Ok(B64.encode(out))
}

/// MGF1 with SHA-1 (RFC 8017 B.2.1).
fn mgf1(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + H_LEN);
    let mut counter: u32 = 0;
    while out.len() < len {
        let mut h = Sha1::new();
        h.update(seed);
        h.update(counter.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC_KEY: &str = include_str!("../../testdata/pubkey.pem");

    /// A fixed-seed vector computed by an independent implementation: Python's `hashlib` and `pow` following RFC 8017
    /// step by step (crates/wechat-pay/testdata/oaep-vector.py); OpenSSL decrypts it with `pubkey.key`
    /// (`openssl pkeyutl -decrypt -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1`).
    #[test]
    fn the_fixed_seed_vector_matches_an_independent_implementation() {
        let key = PublicKey::from_pem(PUBLIC_KEY).unwrap();
        let seed: [u8; 20] = core::array::from_fn(|i| i as u8);
        let sealed = encrypt_with_seed(&key, "张三 13800138000".as_bytes(), &seed).unwrap();
        assert_eq!(sealed, include_str!("../../testdata/oaep-vector.b64").trim());
    }

    #[test]
    fn too_long_fields_are_refused_and_seeds_differ() {
        let key = PublicKey::from_pem(PUBLIC_KEY).unwrap();
        assert_eq!(
            encrypt(&key, &"x".repeat(215)),
            Err(SensitiveError::TooLong { len: 215, max: 214 })
        );
        assert!(encrypt(&key, &"x".repeat(214)).is_ok());
        assert_ne!(encrypt(&key, "a").unwrap(), encrypt(&key, "a").unwrap());
    }
}
