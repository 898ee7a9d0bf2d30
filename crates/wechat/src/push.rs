//! The official account's server URL: every push verified, fresh, decrypted and parsed; replies rendered (and
//! encrypted) the way WeChat reads them.

use wechat_core::push::{MessageCrypto, PushError, PushQuery, PushSecurity, check_timestamp, open_push};
use wechat_core::{AppId, SecretString};
use wechat_message::{Incoming, Reply, incoming};

/// The "message encryption mode" configured for the server URL in the official account's admin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushMode {
    /// Only encrypted pushes (with a valid `msg_signature`) are accepted — the default when an EncodingAESKey is
    /// set; a plaintext push is refused as a downgrade.
    #[default]
    Safe,
    /// Encrypted pushes are decrypted and checked, plaintext ones accepted as in plaintext mode (the switch-over).
    Compatible,
    /// Plaintext: only the `signature` over (token, timestamp, nonce) is checked. WeChat's design: it does not
    /// cover the body. Prefer safe mode.
    Plaintext,
}

/// Opens pushes and renders replies for one official account. Built by
/// [`OfficialAccountBuilder::push_token`](crate::OfficialAccountBuilder::push_token).
pub struct PushReceiver {
    token: SecretString,
    crypto: Option<MessageCrypto>,
    mode: PushMode,
    window_secs: i64,
}

impl std::fmt::Debug for PushReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushReceiver")
            .field("token", &self.token)
            .field("mode", &self.mode)
            .field("window_secs", &self.window_secs)
            .finish_non_exhaustive()
    }
}

impl PushReceiver {
    pub(crate) fn new(
        app_id: &AppId,
        token: String,
        encoding_aes_key: Option<String>,
        mode: Option<PushMode>,
        window_secs: i64,
    ) -> Result<Self, PushError> {
        let crypto = match &encoding_aes_key {
            Some(key) => Some(MessageCrypto::new(&token, key, app_id.as_str())?),
            None => None,
        };
        let mode = match (mode, &crypto) {
            (Some(m), _) => m,
            (None, Some(_)) => PushMode::Safe,
            (None, None) => PushMode::Plaintext,
        };
        if mode != PushMode::Plaintext && crypto.is_none() {
            return Err(PushError::InvalidAesKey);
        }
        Ok(Self {
            token: SecretString::new(token),
            crypto,
            mode,
            window_secs,
        })
    }

    /// The mode in force.
    pub fn mode(&self) -> PushMode {
        self.mode
    }

    fn security(&self) -> PushSecurity<'_> {
        match (self.mode, &self.crypto) {
            (PushMode::Safe, Some(c)) => PushSecurity::Safe(c),
            (PushMode::Compatible, Some(c)) => PushSecurity::Compatible(c),
            _ => PushSecurity::Plaintext,
        }
    }

    /// Verifies a push (signature; in safe mode `msg_signature`, decryption and the appid), checks its timestamp is
    /// within the window around `now` (Unix seconds), and parses it. Deduplicate what it returns with
    /// [`Router::dispatch_once`](wechat_message::Router::dispatch_once): WeChat resends a push it got no answer to.
    pub fn open(&self, query: &PushQuery, body: &[u8], now: i64) -> Result<Incoming, PushError> {
        check_timestamp(&query.timestamp, now, self.window_secs)?;
        let plain = open_push(self.token.secret(), self.security(), query, body)?;
        incoming::parse(plain.as_bytes())
    }

    /// WeChat's check of the server URL (`GET ?signature&timestamp&nonce&echostr`): true when `signature` is the
    /// token's signature of `timestamp` and `nonce` (compared in constant time); then answer `echostr`.
    ///
    /// ```
    /// # let oa = wechat::OfficialAccount::builder().app_id("wx1").secret("s").push_token("token").build().unwrap();
    /// let push = oa.push().unwrap();
    /// let signature = wechat_core::push::server_signature("token", "1700000000", "n1");
    /// assert!(push.verify_server_url("1700000000", "n1", &signature));
    /// assert!(!push.verify_server_url("1700000000", "n2", &signature));
    /// ```
    pub fn verify_server_url(&self, timestamp: &str, nonce: &str, signature: &str) -> bool {
        wechat_core::push::verify_server_signature(self.token.secret(), timestamp, nonce, signature)
    }

    /// The passive reply to `message` as the HTTP body to answer with: encrypted when the push came encrypted.
    pub fn reply(&self, reply: &Reply, message: &Incoming, query: &PushQuery, now: i64) -> String {
        let (to, from) = (&message.from_user_name, &message.to_user_name);
        let encrypted = query
            .encrypt_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("aes"));
        match (&self.crypto, encrypted) {
            (Some(crypto), true) => reply.render_encrypted(crypto, to, from, now, &query.nonce),
            _ => reply.render(to, from, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wechat_core::push::{msg_signature, server_signature};

    const TOKEN: &str = "push-token";
    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const TEXT: &str = "<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName>\
        <CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>7</MsgId></xml>";

    fn receiver(mode: Option<PushMode>, key: Option<&str>) -> PushReceiver {
        PushReceiver::new(&AppId::new("wx1"), TOKEN.into(), key.map(str::to_owned), mode, 300)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A push as WeChat sends it in safe mode, encrypted for `appid`.
    fn encrypted(appid: &str, timestamp: &str) -> (PushQuery, Vec<u8>) {
        let crypto = MessageCrypto::new(TOKEN, KEY, appid).unwrap_or_else(|e| panic!("{e}"));
        let encrypt = crypto.encrypt(TEXT);
        let query = PushQuery {
            signature: server_signature(TOKEN, timestamp, "n1"),
            timestamp: timestamp.into(),
            nonce: "n1".into(),
            encrypt_type: Some("aes".into()),
            msg_signature: Some(msg_signature(TOKEN, timestamp, "n1", &encrypt)),
        };
        let body =
            format!("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
        (query, body.into_bytes())
    }

    fn plaintext(timestamp: &str) -> (PushQuery, Vec<u8>) {
        let query = PushQuery {
            signature: server_signature(TOKEN, timestamp, "n1"),
            timestamp: timestamp.into(),
            nonce: "n1".into(),
            ..PushQuery::default()
        };
        (query, TEXT.as_bytes().to_vec())
    }

    #[test]
    fn a_safe_mode_push_opens_and_its_reply_is_encrypted_for_wechat() {
        let push = receiver(None, Some(KEY));
        assert_eq!(push.mode(), PushMode::Safe);
        let (query, body) = encrypted("wx1", "1700000000");
        let message = push
            .open(&query, &body, 1_700_000_010)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(message.fields["Content"], "hi");
        let answer = push.reply(&Reply::text("你好"), &message, &query, 1_700_000_011);
        assert!(!answer.contains("你好"), "the reply travels encrypted");
        let fields = wechat_core::xml::parse_push(answer.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let crypto = MessageCrypto::new(TOKEN, KEY, "wx1").unwrap_or_else(|e| panic!("{e}"));
        let plain = crypto
            .decrypt_message(
                &fields["MsgSignature"],
                &fields["TimeStamp"],
                &fields["Nonce"],
                answer.as_bytes(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(plain.contains("你好") && plain.contains("<ToUserName><![CDATA[o1]]></ToUserName>"));
    }

    #[test]
    fn forged_downgraded_foreign_and_replayed_pushes_are_refused() {
        let push = receiver(None, Some(KEY));
        // A forged msg_signature (the body was swapped after signing).
        let (mut query, body) = encrypted("wx1", "1700000000");
        query.msg_signature = Some("0".repeat(40));
        assert_eq!(
            push.open(&query, &body, 1_700_000_000).unwrap_err(),
            PushError::BadSignature
        );
        // A forged server signature.
        let (mut query, body) = encrypted("wx1", "1700000000");
        query.signature = "0".repeat(40);
        assert_eq!(
            push.open(&query, &body, 1_700_000_000).unwrap_err(),
            PushError::BadSignature
        );
        // The plaintext form of a genuine push: a downgrade, refused in safe mode.
        let (query, body) = plaintext("1700000000");
        assert_eq!(
            push.open(&query, &body, 1_700_000_000).unwrap_err(),
            PushError::NotEncrypted
        );
        // Encrypted for another app.
        let (query, body) = encrypted("wx2", "1700000000");
        assert_eq!(
            push.open(&query, &body, 1_700_000_000).unwrap_err(),
            PushError::AppIdMismatch
        );
        // The genuine push replayed ten minutes later, and one dated in the future.
        let (query, body) = encrypted("wx1", "1700000000");
        assert!(matches!(
            push.open(&query, &body, 1_700_000_600),
            Err(PushError::Stale { .. })
        ));
        assert!(matches!(
            push.open(&query, &body, 1_699_999_000),
            Err(PushError::Stale { .. })
        ));
        // Garbage: no panic, a typed error.
        let garbage = PushQuery {
            timestamp: "soon".into(),
            ..PushQuery::default()
        };
        assert_eq!(
            push.open(&garbage, b"\xff\xfe<", 1_700_000_000).unwrap_err(),
            PushError::BadTimestamp
        );
    }

    #[test]
    fn compatible_mode_takes_both_and_plaintext_mode_refuses_ciphertext_it_cannot_read() {
        let push = receiver(Some(PushMode::Compatible), Some(KEY));
        let (query, body) = plaintext("1700000000");
        assert!(push.open(&query, &body, 1_700_000_000).is_ok());
        let (query, body) = encrypted("wx1", "1700000000");
        let message = push
            .open(&query, &body, 1_700_000_000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !push
                .reply(&Reply::text("ok"), &message, &query, 1_700_000_001)
                .contains("<Content>")
        );
        let plain_only = receiver(None, None);
        assert_eq!(plain_only.mode(), PushMode::Plaintext);
        assert!(plain_only.open(&query, &body, 1_700_000_000).is_err());
        assert!(!format!("{plain_only:?}").contains(TOKEN));
    }
}
