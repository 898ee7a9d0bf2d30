//! Pay v2 signatures: every non-empty field but `sign`, sorted by name, `k=v&...&key=APIKEY`, then MD5 or
//! HMAC-SHA256, uppercase hex. Verification signs every field received (known or not) and compares in constant time.

use crate::xml::Fields;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use std::str::FromStr;

wechat_core::secret_type!(
    /// The merchant API key (secret).
    PayKey
);

/// The signature algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SignType {
    /// `MD5` (the default when `sign_type` is absent).
    #[default]
    Md5,
    /// `HMAC-SHA256`.
    HmacSha256,
}

impl SignType {
    /// WeChat's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SignType::Md5 => "MD5",
            SignType::HmacSha256 => "HMAC-SHA256",
        }
    }
}

impl FromStr for SignType {
    type Err = SignError;

    fn from_str(s: &str) -> Result<Self, SignError> {
        match s {
            "MD5" => Ok(SignType::Md5),
            "HMAC-SHA256" => Ok(SignType::HmacSha256),
            other => Err(SignError::UnknownSignType(other.to_owned())),
        }
    }
}

/// Why a signature check failed. Reveals nothing about the expected value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// No `sign` field.
    #[error("the message has no sign")]
    Missing,
    /// The sign does not match.
    #[error("signature mismatch")]
    Mismatch,
    /// `sign_type` names an algorithm we do not know.
    #[error("unknown sign_type {0:?}")]
    UnknownSignType(String),
}

/// The string that is signed, without the key: `a=1&b=2` over the non-empty fields except `sign`, sorted.
pub fn string_to_sign<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = fields
        .into_iter()
        .filter(|(k, v)| *k != "sign" && !v.is_empty())
        .collect();
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

fn upper_hex(bytes: &[u8]) -> String {
    wechat_core::push::hex_lower(bytes).to_ascii_uppercase()
}

/// Signs `fields`.
///
/// ```
/// use wechat_pay::sign::{PayKey, SignType, sign};
/// let fields = [("appid", "wxd930ea5d5a258f4f"), ("mch_id", "10000100"), ("device_info", "1000"),
///               ("body", "test"), ("nonce_str", "ibuaiVcKdpRxkhJA")];
/// let key = PayKey::new("192006250b4c09247ec02edce69f6a2d");
/// assert_eq!(sign(fields, &key, SignType::Md5), "9A0A8659F005D6984697E2CA0A9CF3B7");
/// assert_eq!(sign(fields, &key, SignType::HmacSha256),
///            "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6");
/// ```
pub fn sign<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>, key: &PayKey, sign_type: SignType) -> String {
    let message = format!("{}&key={}", string_to_sign(fields), key.secret());
    match sign_type {
        SignType::Md5 => upper_hex(&Md5::digest(message.as_bytes())),
        SignType::HmacSha256 => {
            // HMAC takes keys of any length, so this cannot fail; an empty sign would never verify if it did.
            match <Hmac<Sha256> as KeyInit>::new_from_slice(key.secret().as_bytes()) {
                Ok(mut mac) => {
                    mac.update(message.as_bytes());
                    upper_hex(&mac.finalize().into_bytes())
                }
                Err(_) => String::new(),
            }
        }
    }
}

/// Signs a field map.
pub fn sign_fields(fields: &Fields, key: &PayKey, sign_type: SignType) -> String {
    sign(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())), key, sign_type)
}

/// Verifies the `sign` of `fields` with `sign_type`, over every field received. Constant-time comparison.
pub fn verify(fields: &Fields, key: &PayKey, sign_type: SignType) -> Result<(), SignError> {
    let received = fields.get("sign").filter(|s| !s.is_empty()).ok_or(SignError::Missing)?;
    let expected = sign_fields(fields, key, sign_type);
    if wechat_core::constant_time_eq(expected.as_bytes(), received.to_ascii_uppercase().as_bytes()) {
        Ok(())
    } else {
        Err(SignError::Mismatch)
    }
}

/// Verifies with the algorithm named by the message's own `sign_type` field (MD5 when absent), unless it
/// contradicts `expected` — an attacker must not be able to downgrade the algorithm.
pub fn verify_with_declared_type(fields: &Fields, key: &PayKey, expected: SignType) -> Result<(), SignError> {
    let declared = match fields.get("sign_type").filter(|s| !s.is_empty()) {
        Some(s) => s.parse()?,
        None => SignType::Md5,
    };
    if declared != expected && fields.contains_key("sign_type") {
        return Err(SignError::UnknownSignType(declared.as_str().to_owned()));
    }
    verify(fields, key, expected)
}

/// A random 32-character nonce.
pub fn nonce() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// Adds `nonce_str` (if absent), `sign_type` (for HMAC) and `sign` to `fields`.
pub fn seal(fields: &mut Fields, key: &PayKey, sign_type: SignType) {
    fields.entry("nonce_str".into()).or_insert_with(nonce);
    if sign_type == SignType::HmacSha256 {
        fields.insert("sign_type".into(), sign_type.as_str().into());
    }
    fields.remove("sign");
    let s = sign_fields(fields, key, sign_type);
    fields.insert("sign".into(), s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vector() -> Fields {
        [
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("device_info", "1000"),
            ("body", "test"),
            ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn spec_vectors() {
        let key = PayKey::new("192006250b4c09247ec02edce69f6a2d");
        assert_eq!(
            sign_fields(&vector(), &key, SignType::Md5),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
        assert_eq!(
            sign_fields(&vector(), &key, SignType::HmacSha256),
            "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
        );
    }

    #[test]
    fn empty_fields_and_sign_are_excluded_unknown_fields_included() {
        let mut f = vector();
        f.insert("empty".into(), String::new());
        f.insert("sign".into(), "whatever".into());
        let key = PayKey::new("192006250b4c09247ec02edce69f6a2d");
        assert_eq!(sign_fields(&f, &key, SignType::Md5), "9A0A8659F005D6984697E2CA0A9CF3B7");
        f.insert("zz_unknown".into(), "1".into());
        assert_ne!(sign_fields(&f, &key, SignType::Md5), "9A0A8659F005D6984697E2CA0A9CF3B7");
    }

    #[test]
    fn downgrades_are_refused() {
        let key = PayKey::new("k");
        let mut f = vector();
        seal(&mut f, &key, SignType::Md5);
        f.insert("sign_type".into(), "MD5".into());
        assert!(verify_with_declared_type(&f, &key, SignType::HmacSha256).is_err());
        assert_eq!(format!("{key:?}"), "PayKey([redacted])");
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips_and_any_one_character_change_fails(
            fields in proptest::collection::btree_map("[a-z_]{1,12}", "[ -~]{1,24}", 1..12),
            key in "[0-9a-zA-Z]{32}",
            hmac in any::<bool>(),
            pick in any::<prop::sample::Index>(),
            replacement in "[ -~]",
        ) {
            let key = PayKey::new(key);
            let sign_type = if hmac { SignType::HmacSha256 } else { SignType::Md5 };
            let mut f: Fields = fields.into_iter().filter(|(k, _)| k != "sign" && k != "sign_type").collect();
            prop_assume!(!f.is_empty());
            seal(&mut f, &key, sign_type);
            prop_assert!(verify(&f, &key, sign_type).is_ok());
            // Change one character of one signed value.
            let names: Vec<String> = f.keys().filter(|k| *k != "sign").cloned().collect();
            let name = &names[pick.index(names.len())];
            let value = f[name].clone();
            let chars: Vec<char> = value.chars().collect();
            let i = pick.index(chars.len());
            let new_char = replacement.chars().next().unwrap_or('x');
            prop_assume!(chars[i] != new_char);
            let mut changed = chars.clone();
            changed[i] = new_char;
            f.insert(name.clone(), changed.into_iter().collect());
            prop_assert_eq!(verify(&f, &key, sign_type), Err(SignError::Mismatch));
        }
    }
}
