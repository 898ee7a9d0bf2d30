//! Typed card events from the official-account server push. Unknown events are kept raw, never an error.

use wechat_core::push::{PushError, open_push};
pub use wechat_core::push::{PushQuery, PushSecurity};
use wechat_core::xml::{self, Fields};

/// Who or what consumed a code (`ConsumeSource`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsumeSource {
    /// Our server called `card/code/consume`.
    Api,
    /// The official-account admin console.
    Mp,
    /// The "卡券商户助手" staff app.
    MobileHelper,
    /// Anything else.
    Other(String),
}

/// A card event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CardEvent {
    /// A user added a card to their card bag.
    UserGetCard {
        /// The card.
        card_id: String,
        /// The code the user got.
        user_card_code: String,
        /// Given by a friend.
        is_give_by_friend: bool,
        /// The friend, when given.
        friend_user_name: Option<String>,
        /// Our `outer_str` from the cardExt.
        outer_str: Option<String>,
    },
    /// A code was consumed.
    UserConsumeCard {
        /// The card.
        card_id: String,
        /// The code.
        user_card_code: String,
        /// How.
        consume_source: ConsumeSource,
        /// The staff member, when consumed by staff.
        staff_open_id: Option<String>,
        /// Our `outer_str`.
        outer_str: Option<String>,
    },
    /// A user deleted the card.
    UserDelCard {
        /// The card.
        card_id: String,
        /// The code.
        user_card_code: String,
    },
    /// The card passed review.
    CardPassCheck {
        /// The card.
        card_id: String,
    },
    /// The card failed review.
    CardNotPassCheck {
        /// The card.
        card_id: String,
        /// Why.
        refuse_reason: Option<String>,
    },
    /// Any other message or event, kept as received.
    Other {
        /// `MsgType` / `Event`.
        event: String,
    },
}

/// A parsed push: the event, the common header fields, and every field received.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Push {
    /// The typed event.
    pub event: CardEvent,
    /// `ToUserName` (our account).
    pub to_user_name: String,
    /// `FromUserName` (the user's openid).
    pub from_user_name: String,
    /// `CreateTime`, Unix seconds.
    pub create_time: i64,
    /// Every field received.
    pub fields: Fields,
}

impl Push {
    /// The key WeChat's retries share: `FromUserName` + `CreateTime` (+ event and code, to tell events of one second
    /// apart). Store it with a unique index to process each push exactly once.
    pub fn dedupe_key(&self) -> String {
        let code = self.fields.get("UserCardCode").map(String::as_str).unwrap_or("");
        let event = self.fields.get("Event").map(String::as_str).unwrap_or("");
        format!("{}:{}:{event}:{code}", self.from_user_name, self.create_time)
    }
}

fn opt(f: &Fields, k: &str) -> Option<String> {
    f.get(k).filter(|v| !v.is_empty()).cloned()
}

fn req(f: &Fields, k: &str) -> String {
    f.get(k).cloned().unwrap_or_default()
}

/// Parses a (decrypted) push body into a typed event. Bodies that are not XML are an error; unknown events are not.
pub fn parse_push(body: &[u8]) -> Result<Push, PushError> {
    let f = xml::parse_push(body).map_err(|e| PushError::Body(e.to_string()))?;
    Ok(Push::from_fields(f))
}

impl Push {
    /// Types the card event among a push's fields, as another parser (a message router, `wechat::PushReceiver`)
    /// already read them: the body is parsed once.
    ///
    /// ```
    /// use wechat_card::events::{CardEvent, Push};
    /// let fields = [("MsgType", "event"), ("Event", "user_del_card"), ("CardId", "p1"), ("UserCardCode", "c1")]
    ///     .into_iter()
    ///     .map(|(k, v)| (k.to_owned(), v.to_owned()))
    ///     .collect();
    /// let push = Push::from_fields(fields);
    /// assert!(matches!(push.event, CardEvent::UserDelCard { ref card_id, .. } if card_id == "p1"));
    /// ```
    pub fn from_fields(f: Fields) -> Push {
        let msg_type = f.get("MsgType").map(String::as_str).unwrap_or("");
        let event_name = f.get("Event").map(String::as_str).unwrap_or("");
        let event = match (msg_type, event_name) {
            ("event", "user_get_card") => CardEvent::UserGetCard {
                card_id: req(&f, "CardId"),
                user_card_code: req(&f, "UserCardCode"),
                is_give_by_friend: f.get("IsGiveByFriend").is_some_and(|v| v == "1"),
                friend_user_name: opt(&f, "FriendUserName"),
                outer_str: opt(&f, "OuterStr"),
            },
            ("event", "user_consume_card") => CardEvent::UserConsumeCard {
                card_id: req(&f, "CardId"),
                user_card_code: req(&f, "UserCardCode"),
                consume_source: match f.get("ConsumeSource").map(String::as_str) {
                    Some("FROM_API") => ConsumeSource::Api,
                    Some("FROM_MP") => ConsumeSource::Mp,
                    Some("FROM_MOBILE_HELPER") => ConsumeSource::MobileHelper,
                    other => ConsumeSource::Other(other.unwrap_or("").to_owned()),
                },
                staff_open_id: opt(&f, "StaffOpenId"),
                outer_str: opt(&f, "OuterStr"),
            },
            ("event", "user_del_card") => CardEvent::UserDelCard {
                card_id: req(&f, "CardId"),
                user_card_code: req(&f, "UserCardCode"),
            },
            ("event", "card_pass_check") => CardEvent::CardPassCheck {
                card_id: req(&f, "CardId"),
            },
            ("event", "card_not_pass_check") => CardEvent::CardNotPassCheck {
                card_id: req(&f, "CardId"),
                refuse_reason: opt(&f, "RefuseReason"),
            },
            _ => CardEvent::Other {
                event: if event_name.is_empty() {
                    msg_type.to_owned()
                } else {
                    event_name.to_owned()
                },
            },
        };
        Push {
            event,
            to_user_name: req(&f, "ToUserName"),
            from_user_name: req(&f, "FromUserName"),
            create_time: f.get("CreateTime").and_then(|v| v.parse().ok()).unwrap_or(0),
            fields: f,
        }
    }
}

/// Verifies and parses a push as WeChat sends it: the `signature` always; encrypted pushes (`encrypt_type=aes`, in
/// any letter case) also by `msg_signature`, decryption and the appid. Which pushes are accepted at all follows
/// `security`. Freshness (timestamp window, nonce memory) is the caller's: see
/// [`wechat_core::push::check_timestamp`].
///
/// ```
/// use wechat_card::events::{receive, PushQuery, PushSecurity};
/// use wechat_core::push::{server_signature, MessageCrypto, PushError};
/// let crypto = MessageCrypto::new("token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx1").unwrap();
/// let query = PushQuery {
///     signature: server_signature("token", "1700000000", "n1"),
///     timestamp: "1700000000".into(),
///     nonce: "n1".into(),
///     ..PushQuery::default()
/// };
/// let body = b"<xml><MsgType>event</MsgType><Event>user_del_card</Event></xml>";
/// assert!(receive("token", PushSecurity::Plaintext, &query, body).is_ok());
/// // With a key configured, the same plaintext push is a downgrade.
/// assert_eq!(receive("token", PushSecurity::Safe(&crypto), &query, body), Err(PushError::NotEncrypted));
/// ```
pub fn receive(token: &str, security: PushSecurity<'_>, query: &PushQuery, body: &[u8]) -> Result<Push, PushError> {
    let plain = open_push(token, security, query, body)?;
    parse_push(plain.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_events_parse_and_unknown_ones_are_kept() {
        let get = b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>\
            <CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[user_get_card]]></Event>\
            <CardId><![CDATA[pC1]]></CardId><IsGiveByFriend>0</IsGiveByFriend><UserCardCode><![CDATA[12312312]]></UserCardCode>\
            <OuterStr><![CDATA[c7]]></OuterStr></xml>";
        let p = parse_push(get).unwrap();
        assert!(
            matches!(p.event, CardEvent::UserGetCard { ref user_card_code, ref outer_str, .. } if user_card_code == "12312312" && outer_str.as_deref() == Some("c7"))
        );
        assert_eq!(p.dedupe_key(), "o1:1700000000:user_get_card:12312312");
        let consume = b"<xml><MsgType>event</MsgType><Event>user_consume_card</Event><CardId>pC1</CardId>\
            <UserCardCode>1</UserCardCode><ConsumeSource>FROM_MOBILE_HELPER</ConsumeSource><StaffOpenId>os</StaffOpenId></xml>";
        assert!(matches!(
            parse_push(consume).unwrap().event,
            CardEvent::UserConsumeCard {
                consume_source: ConsumeSource::MobileHelper,
                ..
            }
        ));
        let unknown = b"<xml><MsgType>event</MsgType><Event>something_new</Event><Nested><A>1</A></Nested></xml>";
        let p = parse_push(unknown).unwrap();
        assert_eq!(
            p.event,
            CardEvent::Other {
                event: "something_new".into()
            }
        );
        assert_eq!(p.fields["Nested/A"], "1");
        assert!(parse_push(b"not xml").is_err());
    }
}
