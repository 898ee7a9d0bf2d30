//! Identifier and secret newtypes.
//!
//! Identifiers (`AppId`, `OpenId`) print as themselves. Secrets (`AppSecret`, `AccessToken`, ...) never print their
//! value: `Debug` and `Display` show `[redacted]`, and the value is read only through `.secret()`, so a secret cannot
//! reach a log line by accident. Secrets deliberately have no `PartialEq`; compare them with [`constant_time_eq`].

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an identifier.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Unwraps the identifier.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

/// Declares a secret string type: `new`, `secret()` (every read goes through it, easy to audit), `is_empty`,
/// serde-transparent deserialization, and `Debug`/`Display` that print `[redacted]` — never the value. No
/// `PartialEq`: compare secrets with [`constant_time_eq`]. Other crates use it for their own secrets.
///
/// ```
/// wechat_core::secret_type!(
///     /// A merchant's API key.
///     MerchantKey
/// );
/// let key = MerchantKey::new("k3y");
/// assert_eq!(key.secret(), "k3y");
/// assert_eq!(format!("{key:?} {key}"), "MerchantKey([redacted]) [redacted]");
/// let parsed: MerchantKey = serde_json::from_str("\"k3y\"").unwrap();
/// assert_eq!(parsed.secret(), "k3y");
/// ```
#[macro_export]
macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret value. Every read of a secret goes through this method, which makes reads easy to audit.
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// True when the secret is the empty string (an unset configuration value).
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl ::std::convert::From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl ::std::convert::From<::std::string::String> for $name {
            fn from(value: ::std::string::String) -> Self {
                Self(value)
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <String as $crate::__private::serde::Deserialize>::deserialize(d).map(Self)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str("[redacted]")
            }
        }
    };
}

id_type!(
    /// An official-account or mini-program app id (`appid`, e.g. `wx4f4bc4dec97d474b`).
    AppId
);
id_type!(
    /// A user's openid: unique per user and per app.
    OpenId
);
id_type!(
    /// A user's unionid: unique per user across the apps of one WeChat Open Platform account.
    UnionId
);

crate::secret_type!(
    /// The app secret (`secret` / `appsecret`) that goes with an [`AppId`].
    AppSecret
);
crate::secret_type!(
    /// A basic `access_token` from `/cgi-bin/token` or `/cgi-bin/stable_token`.
    AccessToken
);
crate::secret_type!(
    /// A `jsapi` or `wx_card` ticket from `/cgi-bin/ticket/getticket`.
    Ticket
);
crate::secret_type!(
    /// Any other secret string (server token, EncodingAESKey, admin token...).
    SecretString
);

/// Compares two byte strings in time that depends only on their lengths, never on where they differ.
///
/// ```
/// assert!(wechat_core::constant_time_eq(b"abc", b"abc"));
/// assert!(!wechat_core::constant_time_eq(b"abc", b"abd"));
/// assert!(!wechat_core::constant_time_eq(b"abc", b"ab"));
/// ```
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // `subtle` compares the lengths first (a length is not secret), then every byte in constant time, with the
    // optimisation barriers that a hand-written fold would have to get right itself.
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let secret = AppSecret::new("s3cr3t-value");
        assert_eq!(format!("{secret:?}"), "AppSecret([redacted])");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(secret.secret(), "s3cr3t-value");
        let token = AccessToken::new("tok");
        assert!(!format!("{token:?}").contains("tok\""));
    }

    #[test]
    fn ids_print_their_value() {
        let id = AppId::new("wx123");
        assert_eq!(format!("{id}"), "wx123");
        assert_eq!(format!("{id:?}"), "AppId(\"wx123\")");
    }
}
