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

pub use crate::encoding::hex_lower;

/// `msg_signature = sha1(sort([token, timestamp, nonce, encrypt]).join(""))` for safe-mode pushes.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    sorted_sha1(&[token, timestamp, nonce, encrypt])
}

/// Why a safe-mode message was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The EncodingAESKey is not 43 base64 characters.
    #[error("EncodingAESKey must be 43 characters of base64")]
    InvalidAesKey,
    /// `msg_signature` (or `signature`) does not match.
    #[error("push signature mismatch")]
    BadSignature,
    /// The ciphertext is not base64, not whole blocks, or its padding is wrong.
    #[error("push message does not decrypt")]
    Decrypt,
    /// The decrypted message is for another app.
    #[error("push message is for another appid")]
    AppIdMismatch,
    /// The body is not the XML WeChat sends.
    #[error("push body is not valid: {0}")]
    Body(String),
    /// Safe mode is configured and the push is not encrypted (a downgrade).
    #[error("plaintext push refused: safe mode accepts only encrypted pushes")]
    NotEncrypted,
    /// `timestamp` is missing or not a Unix time in seconds.
    #[error("push timestamp is not a Unix time")]
    BadTimestamp,
    /// `timestamp` lies outside the accepted window around now.
    #[error("push timestamp is {skew_secs} s away from now, outside the ±{window_secs} s window")]
    Stale {
        /// How far the timestamp is from now (positive: in the future).
        skew_secs: i64,
        /// The window.
        window_secs: i64,
    },
}

/// Checks a push `timestamp` (Unix seconds, as WeChat sends it) against `now`: it must be digits only and lie
/// within `window_secs` either way. Returns the parsed timestamp. WeChat's own signature never expires; this, with
/// a memory of the `(timestamp, nonce)` pairs seen within the window, is what stops a captured push from being
/// replayed.
///
/// ```
/// use wechat_core::push::{check_timestamp, PushError};
/// assert_eq!(check_timestamp("1700000000", 1_700_000_100, 300), Ok(1_700_000_000));
/// assert!(matches!(check_timestamp("1000000000", 1_700_000_000, 300), Err(PushError::Stale { .. })));
/// assert_eq!(check_timestamp("abc", 1_700_000_000, 300), Err(PushError::BadTimestamp));
/// assert_eq!(check_timestamp("", 1_700_000_000, 300), Err(PushError::BadTimestamp));
/// ```
pub fn check_timestamp(timestamp: &str, now: i64, window_secs: i64) -> Result<i64, PushError> {
    if timestamp.is_empty() || timestamp.len() > 12 || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PushError::BadTimestamp);
    }
    let ts: i64 = timestamp.parse().map_err(|_| PushError::BadTimestamp)?;
    let skew_secs = ts - now;
    if skew_secs.abs() > window_secs {
        return Err(PushError::Stale { skew_secs, window_secs });
    }
    Ok(ts)
}

/// Safe-mode (`encrypt_type=aes`) message encryption and decryption for one official account.
///
/// Key = base64(EncodingAESKey + "="), iv = key\[0..16\], AES-256-CBC with PKCS#7 padding to a **32-byte** block;
/// plaintext = 16 random bytes ‖ u32 big-endian length ‖ message ‖ appid.
///
/// ```
/// use wechat_core::push::MessageCrypto;
/// let crypto = MessageCrypto::new("spamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2").unwrap();
/// let reply = crypto.encrypt_reply("<xml><Content>hi</Content></xml>", "1409735669", "1320562132");
/// let fields = wechat_core::xml::parse(reply.as_bytes()).unwrap();
/// let plain = crypto
///     .decrypt_message(&fields["MsgSignature"], "1409735669", "1320562132", reply.as_bytes())
///     .unwrap();
/// assert_eq!(plain, "<xml><Content>hi</Content></xml>");
/// ```
#[derive(Clone)]
pub struct MessageCrypto {
    token: String,
    key: [u8; 32],
    appid: String,
}

impl std::fmt::Debug for MessageCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCrypto")
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

const PUSH_BLOCK: usize = 32;

impl MessageCrypto {
    /// Crypto for `appid` with the server token and the 43-character EncodingAESKey.
    pub fn new(token: &str, encoding_aes_key: &str, appid: &str) -> Result<Self, PushError> {
        use base64::Engine as _;
        if encoding_aes_key.len() != 43 {
            return Err(PushError::InvalidAesKey);
        }
        // WeChat's keys end in a character whose low bits are not zero: decode like WeChat's own SDKs, leniently.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let bytes = lenient
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| PushError::InvalidAesKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| PushError::InvalidAesKey)?;
        Ok(Self {
            token: token.to_owned(),
            key,
            appid: appid.to_owned(),
        })
    }

    /// Encrypts `message` into the base64 `Encrypt` value.
    pub fn encrypt(&self, message: &str) -> String {
        use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
        use base64::Engine as _;
        let mut random = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut random);
        let mut plain = Vec::with_capacity(20 + message.len() + self.appid.len() + PUSH_BLOCK);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
        plain.extend_from_slice(message.as_bytes());
        plain.extend_from_slice(self.appid.as_bytes());
        let pad = PUSH_BLOCK - plain.len() % PUSH_BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let iv: [u8; 16] = self.key[..16].try_into().unwrap_or([0; 16]);
        let encryptor = cbc::Encryptor::<aes::Aes256>::new(&self.key.into(), &iv.into());
        let len = plain.len();
        // Length is a multiple of 32, hence of the AES block: NoPadding cannot fail.
        let out = encryptor
            .encrypt_padded_mut::<NoPadding>(&mut plain, len)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    /// Decrypts an `Encrypt` value and checks the appid. Does not check any signature: see
    /// [`decrypt_message`](Self::decrypt_message).
    pub fn decrypt(&self, encrypt: &str) -> Result<String, PushError> {
        use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::NoPadding};
        use base64::Engine as _;
        let mut data = base64::engine::general_purpose::STANDARD
            .decode(encrypt.trim())
            .map_err(|_| PushError::Decrypt)?;
        if data.is_empty() || data.len() % PUSH_BLOCK != 0 || data.len() > crate::xml::DEFAULT_MAX_BODY {
            return Err(PushError::Decrypt);
        }
        let iv: [u8; 16] = self.key[..16].try_into().map_err(|_| PushError::Decrypt)?;
        let decryptor = cbc::Decryptor::<aes::Aes256>::new(&self.key.into(), &iv.into());
        let plain = decryptor
            .decrypt_padded_mut::<NoPadding>(&mut data)
            .map_err(|_| PushError::Decrypt)?;
        let pad = usize::from(*plain.last().ok_or(PushError::Decrypt)?);
        if pad == 0
            || pad > PUSH_BLOCK
            || pad > plain.len()
            || !plain[plain.len() - pad..].iter().all(|&b| usize::from(b) == pad)
        {
            return Err(PushError::Decrypt);
        }
        let plain = &plain[..plain.len() - pad];
        if plain.len() < 20 {
            return Err(PushError::Decrypt);
        }
        let len = u32::from_be_bytes([plain[16], plain[17], plain[18], plain[19]]) as usize;
        let rest = &plain[20..];
        if len > rest.len() {
            return Err(PushError::Decrypt);
        }
        let (message, appid) = rest.split_at(len);
        if appid != self.appid.as_bytes() {
            return Err(PushError::AppIdMismatch);
        }
        String::from_utf8(message.to_vec()).map_err(|_| PushError::Decrypt)
    }

    /// Verifies `msg_signature` over the body's `Encrypt` element, then decrypts it.
    pub fn decrypt_message(
        &self,
        msg_signature_value: &str,
        timestamp: &str,
        nonce: &str,
        body: &[u8],
    ) -> Result<String, PushError> {
        // The mini program may push JSON (`{"ToUserName", "Encrypt"}`) instead of XML; the rules are the same.
        let encrypt = if body.trim_ascii_start().starts_with(b"{") {
            let value: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| PushError::Body(format!("JSON: {e}")))?;
            value
                .get("Encrypt")
                .and_then(|e| e.as_str())
                .map(str::to_owned)
                .ok_or_else(|| PushError::Body("no Encrypt field".into()))?
        } else {
            let fields = crate::xml::parse_push(body).map_err(|e| PushError::Body(e.to_string()))?;
            fields
                .get("Encrypt")
                .cloned()
                .ok_or_else(|| PushError::Body("no Encrypt element".into()))?
        };
        let encrypt = &encrypt;
        let expected = msg_signature(&self.token, timestamp, nonce, encrypt);
        if !crate::constant_time_eq(expected.as_bytes(), msg_signature_value.to_ascii_lowercase().as_bytes()) {
            return Err(PushError::BadSignature);
        }
        self.decrypt(encrypt)
    }

    /// The encrypted reply (or push) envelope: `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`.
    pub fn encrypt_reply(&self, message: &str, timestamp: &str, nonce: &str) -> String {
        let encrypt = self.encrypt(message);
        let signature = msg_signature(&self.token, timestamp, nonce, &encrypt);
        let mut f = crate::xml::Fields::new();
        f.insert("Encrypt".into(), encrypt);
        f.insert("MsgSignature".into(), signature);
        f.insert("TimeStamp".into(), timestamp.into());
        f.insert("Nonce".into(), nonce.into());
        crate::xml::to_xml(&f)
    }
}

/// The query parameters WeChat sends with a push.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushQuery {
    /// `signature`.
    pub signature: String,
    /// `timestamp`.
    pub timestamp: String,
    /// `nonce`.
    pub nonce: String,
    /// `encrypt_type` (`aes` in safe mode).
    pub encrypt_type: Option<String>,
    /// `msg_signature` (safe mode).
    pub msg_signature: Option<String>,
}

/// How the official account's pushes are protected (the "message encryption mode" of its server configuration).
#[derive(Clone, Copy, Debug)]
pub enum PushSecurity<'a> {
    /// Plaintext mode: only the `signature` over (token, timestamp, nonce) is checked. By WeChat's design it does
    /// not cover the body, so the receiver must also check the timestamp and remember nonces. Prefer safe mode.
    Plaintext,
    /// Safe mode: only encrypted pushes with a valid `msg_signature` (which covers the ciphertext) and our appid.
    /// A plaintext push is refused ([`PushError::NotEncrypted`]): anything else would let a forger downgrade.
    Safe(&'a MessageCrypto),
    /// Compatible mode (an explicit choice, for the switch-over): encrypted pushes are decrypted and checked,
    /// plaintext ones are accepted as in plaintext mode.
    Compatible(&'a MessageCrypto),
}

/// Verifies a push as WeChat sends it and returns its plaintext XML: the `signature` always; an encrypted push
/// (`encrypt_type=aes`, in any letter case) also by `msg_signature`, decryption and the appid. Which pushes are
/// accepted at all follows `security`. Freshness (timestamp window, nonce memory) is the caller's: see
/// [`check_timestamp`].
///
/// ```
/// use wechat_core::push::{open_push, server_signature, MessageCrypto, PushError, PushQuery, PushSecurity};
/// let crypto = MessageCrypto::new("token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx1").unwrap();
/// let query = PushQuery {
///     signature: server_signature("token", "1700000000", "n1"),
///     timestamp: "1700000000".into(),
///     nonce: "n1".into(),
///     ..PushQuery::default()
/// };
/// let body = b"<xml><MsgType>text</MsgType><Content>hi</Content></xml>";
/// assert!(open_push("token", PushSecurity::Plaintext, &query, body).is_ok());
/// // With a key configured, the same plaintext push is a downgrade.
/// assert_eq!(open_push("token", PushSecurity::Safe(&crypto), &query, body), Err(PushError::NotEncrypted));
/// ```
pub fn open_push(token: &str, security: PushSecurity<'_>, query: &PushQuery, body: &[u8]) -> Result<String, PushError> {
    if !verify_server_signature(token, &query.timestamp, &query.nonce, &query.signature) {
        return Err(PushError::BadSignature);
    }
    let encrypted = match query.encrypt_type.as_deref() {
        None | Some("") | Some("raw") => false,
        Some(t) if t.eq_ignore_ascii_case("aes") => true,
        Some(_) => return Err(PushError::Body("unknown encrypt_type".into())),
    };
    let crypto = match (security, encrypted) {
        (PushSecurity::Safe(_), false) => return Err(PushError::NotEncrypted),
        (PushSecurity::Plaintext, true) => {
            return Err(PushError::Body(
                "encrypted push but no EncodingAESKey configured".into(),
            ));
        }
        (PushSecurity::Plaintext | PushSecurity::Compatible(_), false) => {
            return String::from_utf8(body.to_vec()).map_err(|_| PushError::Body("not UTF-8".into()));
        }
        (PushSecurity::Safe(c) | PushSecurity::Compatible(c), true) => c,
    };
    let msg_signature = query.msg_signature.as_deref().ok_or(PushError::BadSignature)?;
    crypto.decrypt_message(msg_signature, &query.timestamp, &query.nonce, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    // WeChat's official WXBizMsgCrypt sample.
    const ENCRYPT: &str = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";

    #[test]
    fn the_official_sample_verifies_and_decrypts() {
        assert_eq!(
            msg_signature("spamtest", "1409735669", "1320562132", ENCRYPT),
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
        );
        let crypto = MessageCrypto::new("spamtest", AES_KEY, "wx2c2769f8efd9abc2").unwrap();
        let body = format!(
            "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[{ENCRYPT}]]></Encrypt></xml>"
        );
        let plain = crypto
            .decrypt_message(
                "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
                "1409735669",
                "1320562132",
                body.as_bytes(),
            )
            .unwrap();
        assert!(plain.starts_with("<xml>") && plain.contains("ToUserName"), "{plain}");
    }

    #[test]
    fn wrong_appid_and_wrong_signature_are_rejected() {
        let ours = MessageCrypto::new("tok", AES_KEY, "wxours").unwrap();
        let theirs = MessageCrypto::new("tok", AES_KEY, "wxtheirs").unwrap();
        let reply = theirs.encrypt_reply("<xml/>", "1", "n");
        let sig = crate::xml::parse(reply.as_bytes()).unwrap()["MsgSignature"].clone();
        assert_eq!(
            ours.decrypt_message(&sig, "1", "n", reply.as_bytes()),
            Err(PushError::AppIdMismatch)
        );
        let reply = ours.encrypt_reply("<xml/>", "1", "n");
        assert_eq!(
            ours.decrypt_message(&sig, "1", "n", reply.as_bytes()),
            Err(PushError::BadSignature)
        );
        assert_eq!(
            ours.decrypt_message(&sig, "2", "n", reply.as_bytes()),
            Err(PushError::BadSignature)
        );
        assert!(MessageCrypto::new("t", "short", "a").is_err());
        assert_eq!(ours.decrypt("!!notbase64"), Err(PushError::Decrypt));
    }

    #[test]
    fn round_trips_for_many_lengths() {
        let c = MessageCrypto::new("t", AES_KEY, "wxapp").unwrap();
        for n in [0usize, 1, 11, 31, 32, 33, 500, 4096] {
            let msg: String = "中a".repeat(n);
            assert_eq!(c.decrypt(&c.encrypt(&msg)).unwrap(), msg);
        }
    }
}
