//! Keys: the merchant's API private key (signs requests and payment parameters) and WeChat Pay's verifying keys
//! (platform certificates and the WeChat Pay public key).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{self, KeyPair as _};
use std::fmt;
use std::sync::Arc;
use x509_cert::der::{Decode as _, pem};
use x509_cert::spki::SubjectPublicKeyInfoRef;

/// The smallest modulus accepted: WeChat Pay's keys are RSA-2048; anything shorter is a mistake or an attack.
const MIN_MODULUS_BYTES: usize = 256;
/// The largest modulus accepted (ring's RSA limit; WeChat Pay never issues more than 2048 bits).
const MAX_MODULUS_BYTES: usize = 1024;
/// `rsaEncryption` (1.2.840.113549.1.1.1), the algorithm of an RSA SubjectPublicKeyInfo.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

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
/// Private-key operations run in `ring`, whose RSA is constant-time and blinded: the `rsa` crate's timing side
/// channel (RUSTSEC-2023-0071, "Marvin") has no fixed version, and the merchant key signs every request.
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
    signing: Arc<ring::rsa::KeyPair>,
    public: PublicKey,
}

impl fmt::Debug for MerchantPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MerchantPrivateKey([redacted])")
    }
}

/// The DER inside a PEM document whose label is one of `labels`.
fn pem_der(text: &str, labels: &[&str]) -> Option<(String, Vec<u8>)> {
    let (label, der) = pem::decode_vec(text.trim().as_bytes()).ok()?;
    labels.contains(&label).then(|| (label.to_owned(), der))
}

impl MerchantPrivateKey {
    /// Reads a PEM private key, PKCS#8 (what the merchant platform hands out) or PKCS#1.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_der(pem, &["PRIVATE KEY", "RSA PRIVATE KEY"]).ok_or(KeyError::PrivateKey)?;
        let parsed = if label == "PRIVATE KEY" {
            ring::rsa::KeyPair::from_pkcs8(&der)
        } else {
            ring::rsa::KeyPair::from_der(&der)
        };
        let key = parsed.map_err(|e| match e.to_string().as_str() {
            "TooSmall" => KeyError::TooShort,
            _ => KeyError::PrivateKey,
        })?;
        if key.public().modulus_len() < MIN_MODULUS_BYTES {
            return Err(KeyError::TooShort);
        }
        let public = PublicKey::from_pkcs1_der(key.public_key().as_ref())?;
        Ok(Self {
            signing: Arc::new(key),
            public,
        })
    }

    /// SHA256withRSA (PKCS#1 v1.5) over `message`, base64.
    ///
    /// Signing fails only if the system's random generator (used for blinding) fails; the signature is then empty
    /// and WeChat Pay refuses the request as unsigned — never a signature made without blinding.
    pub fn sign(&self, message: &[u8]) -> String {
        let rng = ring::rand::SystemRandom::new();
        let mut signature = vec![0u8; self.signing.public().modulus_len()];
        match self
            .signing
            .sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut signature)
        {
            Ok(()) => B64.encode(signature),
            Err(_) => {
                tracing::error!("RSA signing failed: the system random generator is unavailable");
                String::new()
            }
        }
    }

    /// The matching public key (what WeChat Pay holds to check our requests).
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

/// An RSA public key that checks SHA256withRSA signatures: a WeChat Pay public key (`pub_key.pem`), the key of a
/// platform certificate, or (in a simulator) a merchant's.
#[derive(Clone)]
pub struct PublicKey {
    /// PKCS#1 `RSAPublicKey` DER, as ring verifies with it.
    pkcs1: Arc<[u8]>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("bits", &(modulus_len(&self.pkcs1).unwrap_or(0) * 8))
            .finish()
    }
}

impl PublicKey {
    /// Reads a PEM public key: SubjectPublicKeyInfo (`PUBLIC KEY`, what WeChat Pay hands out) or PKCS#1.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_der(pem, &["PUBLIC KEY", "RSA PUBLIC KEY"]).ok_or(KeyError::PublicKey)?;
        if label == "PUBLIC KEY" {
            Self::from_spki_der(&der).map_err(|e| match e {
                KeyError::TooShort => KeyError::TooShort,
                _ => KeyError::PublicKey,
            })
        } else {
            Self::from_pkcs1_der(&der)
        }
    }

    /// From a SubjectPublicKeyInfo (`PUBLIC KEY`) with the `rsaEncryption` algorithm.
    fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|_| KeyError::PublicKey)?;
        if spki.algorithm.oid.to_string() != RSA_ENCRYPTION {
            return Err(KeyError::PublicKey);
        }
        let bits = spki.subject_public_key.as_bytes().ok_or(KeyError::PublicKey)?;
        Self::from_pkcs1_der(bits)
    }

    /// From a PKCS#1 `RSAPublicKey`: checked to be a DER `SEQUENCE { modulus, exponent }` of 2048 to 8192 bits.
    fn from_pkcs1_der(der: &[u8]) -> Result<Self, KeyError> {
        let n = modulus_len(der).ok_or(KeyError::PublicKey)?;
        if n < MIN_MODULUS_BYTES {
            return Err(KeyError::TooShort);
        }
        if n > MAX_MODULUS_BYTES {
            return Err(KeyError::PublicKey);
        }
        Ok(Self { pkcs1: der.into() })
    }

    /// The modulus and the public exponent, big-endian without leading zeros (sensitive-field encryption).
    pub(crate) fn components(&self) -> Option<(&[u8], &[u8])> {
        let (0x30, body, []) = der_element(&self.pkcs1)? else {
            return None;
        };
        let (0x02, n, rest) = der_element(body)? else {
            return None;
        };
        let (0x02, e, []) = der_element(rest)? else {
            return None;
        };
        fn strip(v: &[u8]) -> &[u8] {
            let start = v.iter().position(|&b| b != 0).unwrap_or(v.len());
            &v[start..]
        }
        Some((strip(n), strip(e)))
    }

    /// Whether `signature_b64` is a valid SHA256withRSA signature of `message` by this key. Anything that is not
    /// base64 or not a signature of the right length is simply invalid.
    pub fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(raw) = B64.decode(signature_b64.trim().as_bytes()) else {
            return false;
        };
        signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &*self.pkcs1)
            .verify(message, &raw)
            .is_ok()
    }
}

/// One DER element at the start of `der`: (tag, contents, the rest). Definite lengths only, as DER requires.
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The modulus length in bytes of a PKCS#1 `RSAPublicKey` (`SEQUENCE { INTEGER n, INTEGER e }`), if it is one.
fn modulus_len(der: &[u8]) -> Option<usize> {
    let (0x30, body, []) = der_element(der)? else {
        return None;
    };
    let (0x02, n, rest) = der_element(body)? else {
        return None;
    };
    let (0x02, e, []) = der_element(rest)? else {
        return None;
    };
    if e.is_empty() {
        return None;
    }
    let significant = n.iter().position(|&b| b != 0).map_or(0, |i| n.len() - i);
    Some(significant)
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
        let key = PublicKey::from_spki_der(&spki).map_err(|e| match e {
            KeyError::TooShort => KeyError::TooShort,
            _ => KeyError::Certificate("the certificate's key is not RSA".into()),
        })?;
        Ok(Self {
            serial,
            not_before: secs(validity.not_before),
            not_after: secs(validity.not_after),
            key,
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
