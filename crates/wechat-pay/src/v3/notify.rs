//! v3 notifies: the envelope, its sealed `resource`, and typed events.

use crate::error::{Error, Result};
use crate::v3::aead::{self, ApiV3Key, EncryptedResource};
use crate::v3::client::{RefundInfo, Transaction};
use serde::Deserialize;

/// The body to answer with (HTTP 500) to have WeChat Pay send the notify again.
pub const FAIL_BODY: &str = r#"{"code":"FAIL","message":"not processed; please resend"}"#;

/// A verified, decrypted notify.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Notify {
    /// The notify's id (the same for every resend of one event).
    pub id: String,
    /// When WeChat Pay made it.
    pub create_time: String,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`, …
    pub event_type: String,
    /// WeChat Pay's summary in words.
    pub summary: String,
    /// The event, typed.
    pub event: Event,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `TRANSACTION.SUCCESS`: the order is paid.
    TransactionSuccess(Transaction),
    /// `REFUND.SUCCESS`, `REFUND.ABNORMAL` or `REFUND.CLOSED`: a refund ended so.
    Refund(RefundInfo),
    /// `COUPON.SEND`: a user received a 商家券 coupon.
    CouponSend(crate::v3::marketing::busifavor::CouponSent),
    /// Any other event, its decrypted resource as JSON.
    Other(serde_json::Value),
}

impl Notify {
    /// The merchant the event is for, where the event says.
    pub fn mch_id(&self) -> Option<&str> {
        match &self.event {
            Event::TransactionSuccess(t) => Some(t.mchid.as_str()),
            Event::Other(v) => v.get("mchid").and_then(|m| m.as_str()),
            Event::CouponSend(c) => Some(c.send_merchant.as_str()),
            Event::Refund(_) => None,
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(default)]
    create_time: String,
    event_type: String,
    #[serde(default)]
    summary: String,
    resource: EncryptedResource,
}

/// Decrypts and types a notify body. **Verify its signature first** ([`Client::verify_notify`] does both).
///
/// [`Client::verify_notify`]: crate::v3::Client::verify_notify
pub fn decode(key: &ApiV3Key, body: &[u8]) -> Result<Notify> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|_| Error::MissingField("resource"))?;
    let plaintext = aead::decrypt(key, &envelope.resource)?;
    let event = match envelope.event_type.as_str() {
        "TRANSACTION.SUCCESS" => Event::TransactionSuccess(
            serde_json::from_slice(&plaintext).map_err(|_| Error::MissingField("transaction"))?,
        ),
        "REFUND.SUCCESS" | "REFUND.ABNORMAL" | "REFUND.CLOSED" => {
            Event::Refund(serde_json::from_slice(&plaintext).map_err(|_| Error::MissingField("refund"))?)
        }
        "COUPON.SEND" => {
            Event::CouponSend(serde_json::from_slice(&plaintext).map_err(|_| Error::MissingField("coupon_code"))?)
        }
        _ => Event::Other(serde_json::from_slice(&plaintext).map_err(|_| Error::MissingField("resource (JSON)"))?),
    };
    Ok(Notify {
        id: envelope.id,
        create_time: envelope.create_time,
        event_type: envelope.event_type,
        summary: envelope.summary,
        event,
    })
}

/// The decrypted resource of a notify body as text (what the CLI's `verify` prints), without typing it.
pub fn decrypt_resource(key: &ApiV3Key, body: &[u8]) -> Result<String> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|_| Error::MissingField("resource"))?;
    let plaintext = aead::decrypt(key, &envelope.resource)?;
    String::from_utf8(plaintext).map_err(|_| Error::MissingField("resource (UTF-8)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::TradeState;
    use crate::v3::vectors as v;

    #[test]
    fn the_documented_notify_decodes_to_a_typed_transaction() {
        let n = decode(&ApiV3Key::new(v::API_V3_KEY), v::NOTIFY_BODY.as_bytes()).expect("decodes");
        assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
        let Event::TransactionSuccess(t) = &n.event else {
            panic!("not a transaction: {n:?}");
        };
        assert_eq!(t.trade_state, TradeState::Success);
        assert_eq!(t.transaction_id.as_deref(), Some("4200000000201407033233368018"));
        assert_eq!(t.amount.as_ref().map(|a| a.total), Some(100));
        assert_eq!(n.mch_id(), Some("1900009191"));
        assert!(
            decode(
                &ApiV3Key::new("vutsrqponmlkjihgfedcba9876543210"),
                v::NOTIFY_BODY.as_bytes()
            )
            .is_err()
        );
        assert!(decode(&ApiV3Key::new(v::API_V3_KEY), b"{}").is_err());
    }

    #[test]
    fn coupon_send_events_are_typed_and_name_their_merchant() {
        let key = ApiV3Key::new(v::API_V3_KEY);
        let plain = r#"{"event_type":"EVENT_TYPE_BUSICOUPON_SEND","coupon_code":"ABCDEFGHJKMNPQRSTUVWXYZ234","stock_id":"1290000000000001","send_time":"2027-01-15T16:00:00+08:00","openid":"o-alice","send_channel":"BUSIFAVOR_CHANNEL_H5","send_merchant":"1900009191"}"#;
        let r = aead::encrypt(&key, "abcdefghijkl", "busifavor", plain.as_bytes()).expect("seal");
        let body = serde_json::json!({"id": "EV-2", "create_time": "", "event_type": "COUPON.SEND",
            "resource_type": "encrypt-resource", "summary": "商家券用户领券通知", "resource": r});
        let n = decode(&key, body.to_string().as_bytes()).expect("decodes");
        assert_eq!(n.mch_id(), Some("1900009191"));
        let Event::CouponSend(c) = n.event else {
            panic!("not a coupon send")
        };
        assert_eq!(
            (c.coupon_code.as_str(), c.openid.as_str()),
            ("ABCDEFGHJKMNPQRSTUVWXYZ234", "o-alice")
        );
        // A resource without the coupon is refused, not read as something else.
        let r = aead::encrypt(&key, "abcdefghijkl", "busifavor", br#"{"stock_id":"1"}"#).expect("seal");
        let body = serde_json::json!({"id": "EV-3", "event_type": "COUPON.SEND", "resource": r});
        assert!(decode(&key, body.to_string().as_bytes()).is_err());
    }

    #[test]
    fn refund_events_are_typed() {
        let key = ApiV3Key::new(v::API_V3_KEY);
        let plain = r#"{"mchid":"1900009191","out_trade_no":"O1","transaction_id":"T1","out_refund_no":"R1","refund_id":"50000","refund_status":"ABNORMAL","amount":{"total":100,"refund":100,"payer_total":100,"payer_refund":100}}"#;
        let r = aead::encrypt(&key, "abcdefghijkl", "refund", plain.as_bytes()).expect("seal");
        let body = serde_json::json!({"id": "EV-1", "create_time": "", "event_type": "REFUND.ABNORMAL",
            "resource_type": "encrypt-resource", "summary": "退款异常", "resource": r});
        let n = decode(&key, body.to_string().as_bytes()).expect("decodes");
        let Event::Refund(info) = n.event else {
            panic!("not a refund")
        };
        assert_eq!(info.status, crate::v3::RefundState::Abnormal);
        assert_eq!(info.out_refund_no, "R1");
    }
}
