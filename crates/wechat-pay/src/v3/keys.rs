//! Keys: the merchant's API private key (signs requests and payment parameters) and WeChat Pay's verifying keys
//! (platform certificates and the WeChat Pay public key).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{PrivateKey as RsaPrivateKey, PublicKey as RsaPublicKey};
use sha2::Sha256;
use std::fmt;

/// The smallest modulus accepted: WeChat Pay's keys are RSA-2048; anything shorter is a mistake or an attack.
const MIN_MODULUS_BYTES: usize = 256;

/// Why a key or certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not a PEM RSA private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    #[error("not a PEM RSA private key (PKCS#8 \"PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\")")]
    PrivateKey,
    /// Not a PEM RSA public key (`PUBLIC KEY` or `RSA PUBLIC KEY`).
    #[error("not a PEM RSA public key (\"PUBLIC KEY\" or \"RSA PUBLIC KEY\")")]
    PublicKey,
    /// Not a PEM X.509 certificate carrying an RSA key.
    #[error("not a PEM X.509 certificate with an RSA key: {0}")]
    Certificate(String),
    /// The key is shorter than 2048 bits.
    #[error("RSA keys shorter than 2048 bits are refused")]
    TooShort,
}

/// The merchant's API private key (`apiclient_key.pem`): signs every v3 request and the `paySign` of payment
/// parameters. Never printed: `Debug` shows `MerchantPrivateKey([redacted])`.
///
/// ```
/// # let pem = include_str!("../../testdata/merchant.key");
/// use wechat_pay::v3::MerchantPrivateKey;
/// let key = MerchantPrivateKey::from_pem(pem)?;
/// let signature = key.sign(b"GET\n/v3/certificates\n1554208460\nNONCE\n\n");
/// assert!(key.public_key().verify(b"GET\n/v3/certificates\n1554208460\nNONCE\n\n", &signature));
/// assert_eq!(format!("{key:?}"), "MerchantPrivateKey([redacted])");
/// # Ok::<(), wechat_pay::v3::KeyError>(())
/// ```
#[derive(Clone)]
pub struct MerchantPrivateKey {
    signing: SigningKey<Sha256>,
    public: PublicKey,
}

impl fmt::Debug for MerchantPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MerchantPrivateKey([redacted])")
    }
}

impl MerchantPrivateKey {
    /// Reads a PEM private key, PKCS#8 (what the merchant platform hands out) or PKCS#1.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let pem = pem.trim();
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| KeyError::PrivateKey)?;
        if key.size() < MIN_MODULUS_BYTES {
            return Err(KeyError::TooShort);
        }
        let public = PublicKey::from_rsa(key.to_public_key())?;
        Ok(Self {
            signing: SigningKey::<Sha256>::new(key),
            public,
        })
    }

    /// SHA256withRSA (PKCS#1 v1.5) over `message`, base64.
    pub fn sign(&self, message: &[u8]) -> String {
        let signature: Signature = self.signing.sign(message);
        B64.encode(signature.to_bytes())
    }

    /// The matching public key (what WeChat Pay holds to check our requests).
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

/// An RSA public key that checks SHA256withRSA signatures: a WeChat Pay public key (`pub_key.pem`), the key of a
/// platform certificate, or (in a simulator) a merchant's.
#[derive(Clone, Debug)]
pub struct PublicKey {
    verifying: VerifyingKey<Sha256>,
}

impl PublicKey {
    /// Reads a PEM public key: SubjectPublicKeyInfo (`PUBLIC KEY`, what WeChat Pay hands out) or PKCS#1.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let pem = pem.trim();
        let key = RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
            .map_err(|_| KeyError::PublicKey)?;
        Self::from_rsa(key)
    }

    fn from_rsa(key: RsaPublicKey) -> Result<Self, KeyError> {
        if key.size() < MIN_MODULUS_BYTES {
            return Err(KeyError::TooShort);
        }
        Ok(Self {
            verifying: VerifyingKey::<Sha256>::new(key),
        })
    }

    /// Whether `signature_b64` is a valid SHA256withRSA signature of `message` by this key. Anything that is not
    /// base64 or not a signature of the right length is simply invalid.
    pub fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(raw) = B64.decode(signature_b64.trim().as_bytes()) else {
            return false;
        };
        let Ok(signature) = Signature::try_from(raw.as_slice()) else {
            return false;
        };
        self.verifying.verify(message, &signature).is_ok()
    }
}

/// A WeChat Pay platform certificate: its serial (as `Wechatpay-Serial` names it), validity and key.
#[derive(Clone, Debug)]
pub struct Certificate {
    serial: String,
    not_before: i64,
    not_after: i64,
    key: PublicKey,
    pem: String,
}

impl Certificate {
    /// Reads a PEM X.509 certificate with an RSA key.
    ///
    /// ```
    /// # let pem = include_str!("../../testdata/platform.pem");
    /// let cert = wechat_pay::v3::Certificate::from_pem(pem)?;
    /// assert_eq!(cert.serial(), "5157F09EFDC096DE15EBE81A47057A7232F1B8E1");
    /// assert!(cert.not_after() > cert.not_before());
    /// # Ok::<(), wechat_pay::v3::KeyError>(())
    /// ```
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        use x509_cert::der::{DecodePem, Encode};
        let pem = pem.trim();
        let cert = x509_cert::Certificate::from_pem(pem).map_err(|e| KeyError::Certificate(e.to_string()))?;
        let tbs = cert.tbs_certificate();
        let serial = serial_hex(tbs.serial_number().as_bytes());
        let validity = tbs.validity();
        let secs = |t: x509_cert::time::Time| i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| KeyError::Certificate(e.to_string()))?;
        let key = RsaPublicKey::from_public_key_der(&spki)
            .map_err(|_| KeyError::Certificate("the certificate's key is not RSA".into()))?;
        Ok(Self {
            serial,
            not_before: secs(validity.not_before),
            not_after: secs(validity.not_after),
            key: PublicKey::from_rsa(key)?,
            pem: pem.to_owned(),
        })
    }

    /// The serial, upper-case hex, as WeChat Pay writes it (`Wechatpay-Serial`, `serial_no`).
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Start of validity, Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// End of validity, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// The certificate's key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The certificate as PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }
}

/// Upper-case hex of a serial number's bytes, without the DER sign byte.
fn serial_hex(bytes: &[u8]) -> String {
    let mut bytes = bytes;
    while bytes.len() > 1 && bytes[0] == 0 {
        bytes = &bytes[1..];
    }
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::vectors as v;

    #[test]
    fn keys_and_certificates_read_and_refuse() {
        assert!(MerchantPrivateKey::from_pem(v::MERCHANT_KEY).is_ok());
        assert_eq!(MerchantPrivateKey::from_pem("junk").err(), Some(KeyError::PrivateKey));
        assert_eq!(PublicKey::from_pem(v::MERCHANT_KEY).err(), Some(KeyError::PublicKey));
        assert!(PublicKey::from_pem(v::PUBLIC_KEY).is_ok());
        let merchant = Certificate::from_pem(v::MERCHANT_CERT).expect("cert");
        assert_eq!(merchant.serial(), "444F4E4F54555345494E50524F44554354494F4E");
        assert!(matches!(
            Certificate::from_pem(v::PUBLIC_KEY),
            Err(KeyError::Certificate(_))
        ));
        assert_eq!(serial_hex(&[0, 0x80, 1]), "8001");
    }

    #[test]
    fn signatures_match_openssl() {
        let key = MerchantPrivateKey::from_pem(v::MERCHANT_KEY).expect("key");
        assert_eq!(
            key.sign(b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"),
            v::GET_SIGNATURE
        );
        let cert = Certificate::from_pem(v::MERCHANT_CERT).expect("cert");
        assert!(cert.public_key().verify(
            b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n",
            v::GET_SIGNATURE
        ));
        assert!(!cert.public_key().verify(b"GET\n/v3/certificates\n", v::GET_SIGNATURE));
        assert!(!cert.public_key().verify(b"x", "not base64!"));
        assert!(!cert.public_key().verify(b"x", "AAAA"));
    }
}
