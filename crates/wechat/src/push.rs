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
