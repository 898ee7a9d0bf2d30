//! Payment and refund notifies: parse, verify, and the exact replies WeChat expects.

use crate::error::{Error, Result};
use crate::sign::{PayKey, SignType, verify};
use crate::types::{Fen, Merchant};
use crate::xml::{self, Fields};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use md5::{Digest, Md5};

/// The reply that stops WeChat's retries.
pub const SUCCESS_REPLY: &str =
    "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>";

/// A FAIL reply (WeChat will retry).
pub fn fail_reply(message: &str) -> String {
    let mut f = Fields::new();
    f.insert("return_code".into(), "FAIL".into());
    f.insert("return_msg".into(), message.into());
    xml::to_xml(&f)
}

/// A verified payment notify.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PaymentNotify {
    /// True when `result_code` is SUCCESS (the user paid).
    pub paid: bool,
    /// Our order number.
    pub out_trade_no: String,
    /// WeChat's transaction id.
    pub transaction_id: String,
    /// Order amount.
    pub total_fee: Fen,
    /// Amount paid in cash (coupons excluded).
    pub cash_fee: Option<Fen>,
    /// The payer.
    pub openid: String,
    /// JSAPI, NATIVE, ...
    pub trade_type: String,
    /// Paying bank.
    pub bank_type: String,
    /// `yyyyMMddHHmmss`.
    pub time_end: String,
    /// Echo of the order's `attach`.
    pub attach: Option<String>,
    /// Every field received.
    pub fields: Fields,
}

fn required(f: &Fields, name: &'static str) -> Result<String> {
    f.get(name)
        .filter(|v| !v.is_empty())
        .cloned()
        .ok_or(Error::MissingField(name))
}

fn fen(f: &Fields, name: &'static str) -> Result<Fen> {
    required(f, name)?
        .parse()
        .map(Fen)
        .map_err(|_| Error::MissingField(name))
}

/// Parses and verifies a payment notify: XML (hostile input refused), `return_code`, the signature over every
/// field (with the algorithm the message declares), and appid/mch_id. Checking `total_fee` against your order and
/// applying it exactly once is yours to do.
pub fn parse_payment_notify(merchant: &Merchant, body: &[u8]) -> Result<PaymentNotify> {
    let notify = verify_payment_notify(&merchant.key, body)?;
    if notify.fields.get("appid").map(String::as_str) != Some(merchant.app_id.as_str()) {
        return Err(Error::MerchantMismatch { field: "appid" });
    }
    if notify.fields.get("mch_id") != Some(&merchant.mch_id) {
        return Err(Error::MerchantMismatch { field: "mch_id" });
    }
    Ok(notify)
}

/// Like [`parse_payment_notify`] with the key only: XML, `return_code` and signature, no appid/mch_id check
/// (for tools such as `wxkit pay verify-notify`).
pub fn verify_payment_notify(key: &PayKey, body: &[u8]) -> Result<PaymentNotify> {
    let f = xml::parse(body)?;
    match f.get("return_code").map(String::as_str) {
        Some("SUCCESS") => {}
        // Not a notify at all (junk, or another kind of message): name what is missing, never an empty reason.
        None => return Err(Error::MissingField("return_code")),
        Some(_) => {
            return Err(Error::ReturnFail {
                return_msg: f
                    .get("return_msg")
                    .filter(|m| !m.is_empty())
                    .cloned()
                    .unwrap_or_else(|| "(no return_msg)".into()),
            });
        }
    }
    let sign_type = match f.get("sign_type").map(String::as_str) {
        None | Some("") => SignType::Md5,
        Some(s) => s.parse().map_err(Error::NotifySignature)?,
    };
    verify(&f, key, sign_type).map_err(Error::NotifySignature)?;
    let paid = f.get("result_code").map(String::as_str) == Some("SUCCESS");
    Ok(PaymentNotify {
        paid,
        out_trade_no: required(&f, "out_trade_no")?,
        transaction_id: if paid {
            required(&f, "transaction_id")?
        } else {
            f.get("transaction_id").cloned().unwrap_or_default()
        },
        total_fee: fen(&f, "total_fee")?,
        cash_fee: f.get("cash_fee").and_then(|s| s.parse().ok()).map(Fen),
        openid: f.get("openid").cloned().unwrap_or_default(),
        trade_type: f.get("trade_type").cloned().unwrap_or_default(),
        bank_type: f.get("bank_type").cloned().unwrap_or_default(),
        time_end: f.get("time_end").cloned().unwrap_or_default(),
        attach: f.get("attach").cloned(),
        fields: f,
    })
}

/// A decrypted refund notify.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefundNotify {
    /// Our refund number.
    pub out_refund_no: String,
    /// Our order number.
    pub out_trade_no: String,
    /// WeChat's refund id.
    pub refund_id: String,
    /// WeChat's transaction id.
    pub transaction_id: String,
    /// SUCCESS, CHANGE or REFUNDCLOSE.
    pub refund_status: String,
    /// Refunded amount.
    pub refund_fee: Fen,
    /// Order amount.
    pub total_fee: Fen,
    /// When it succeeded, `yyyy-MM-dd HH:mm:ss`.
    pub success_time: Option<String>,
    /// Every decrypted field.
    pub fields: Fields,
}

fn ecb_key(key: &PayKey) -> [u8; 32] {
    let hex = wechat_core::push::hex_lower(&Md5::digest(key.secret().as_bytes()));
    let mut out = [0u8; 32];
    out.copy_from_slice(&hex.as_bytes()[..32]);
    out
}

/// Encrypts refund-notify fields into `req_info` (what WeChat does; used by the simulator and tests).
pub fn encrypt_req_info(key: &PayKey, fields: &Fields) -> String {
    use aes::cipher::{BlockEncryptMut, KeyInit, block_padding::Pkcs7};
    let inner = xml::to_xml(fields)
        .replacen("<xml>", "<root>", 1)
        .replace("</xml>", "</root>");
    let cipher = ecb::Encryptor::<aes::Aes256>::new(&ecb_key(key).into());
    B64.encode(cipher.encrypt_padded_vec_mut::<Pkcs7>(inner.as_bytes()))
}

/// Decrypts `req_info` (base64 → AES-256-ECB with key = lowercase md5 hex of the API key → PKCS#7 → `<root>` XML).
pub fn decrypt_req_info(key: &PayKey, req_info: &str) -> Result<Fields> {
    use aes::cipher::{BlockDecryptMut, KeyInit, block_padding::Pkcs7};
    let data = B64.decode(req_info.trim()).map_err(|_| Error::Decrypt)?;
    if data.is_empty() || data.len() % 16 != 0 || data.len() > xml::DEFAULT_MAX_BODY {
        return Err(Error::Decrypt);
    }
    let cipher = ecb::Decryptor::<aes::Aes256>::new(&ecb_key(key).into());
    let plain = cipher
        .decrypt_padded_vec_mut::<Pkcs7>(&data)
        .map_err(|_| Error::Decrypt)?;
    Ok(xml::parse(&plain)?)
}

/// Parses a refund notify (which carries no sign: authenticity comes from decrypting `req_info` with our key) and
/// checks appid/mch_id.
pub fn parse_refund_notify(merchant: &Merchant, body: &[u8]) -> Result<RefundNotify> {
    let outer = xml::parse(body)?;
    if outer.get("return_code").map(String::as_str) != Some("SUCCESS") {
        return Err(Error::ReturnFail {
            return_msg: outer.get("return_msg").cloned().unwrap_or_default(),
        });
    }
    if outer.get("appid").map(String::as_str) != Some(merchant.app_id.as_str()) {
        return Err(Error::MerchantMismatch { field: "appid" });
    }
    if outer.get("mch_id") != Some(&merchant.mch_id) {
        return Err(Error::MerchantMismatch { field: "mch_id" });
    }
    let f = decrypt_req_info(&merchant.key, &required(&outer, "req_info")?)?;
    Ok(RefundNotify {
        out_refund_no: required(&f, "out_refund_no")?,
        out_trade_no: required(&f, "out_trade_no")?,
        refund_id: required(&f, "refund_id")?,
        transaction_id: f.get("transaction_id").cloned().unwrap_or_default(),
        refund_status: required(&f, "refund_status")?,
        refund_fee: fen(&f, "refund_fee")?,
        total_fee: fen(&f, "total_fee")?,
        success_time: f.get("success_time").cloned(),
        fields: f,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::seal;
    use proptest::prelude::*;
    use wechat_core::AppId;

    #[test]
    fn a_malformed_notify_says_what_is_wrong() {
        let key = PayKey::new("0123456789abcdef0123456789abcdef");
        let e = verify_payment_notify(&key, b"<xml><a>1</a></xml>")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "missing or invalid field return_code");
        let e = verify_payment_notify(&key, b"<xml><return_code>FAIL</return_code></xml>")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("(no return_msg)"), "{e}");
        assert!(!verify_payment_notify(&key, b"<xml").unwrap_err().to_string().is_empty());
    }

    fn merchant() -> Merchant {
        Merchant {
            app_id: AppId::new("wx1"),
            mch_id: "100".into(),
            key: PayKey::new("0123456789abcdef0123456789abcdef"),
            sign_type: SignType::Md5,
        }
    }

    fn notify_fields(m: &Merchant) -> Fields {
        let mut f = Fields::new();
        for (k, v) in [
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("appid", "wx1"),
            ("mch_id", "100"),
            ("openid", "o1"),
            ("trade_type", "JSAPI"),
            ("bank_type", "CMC"),
            ("total_fee", "100"),
            ("cash_fee", "100"),
            ("fee_type", "CNY"),
            ("transaction_id", "4200001"),
            ("out_trade_no", "NO1"),
            ("time_end", "20261124101010"),
            ("coupon_fee_0", "1"),
            ("unknown_future_field", "x"),
        ] {
            f.insert(k.into(), v.into());
        }
        seal(&mut f, &m.key, SignType::HmacSha256);
        f
    }

    #[test]
    fn a_valid_notify_parses_and_a_tampered_one_does_not() {
        let m = merchant();
        let f = notify_fields(&m);
        let n = parse_payment_notify(&m, xml::to_xml(&f).as_bytes()).unwrap();
        assert!(n.paid);
        assert_eq!(n.total_fee, Fen(100));
        let mut t = f.clone();
        t.insert("total_fee".into(), "1".into());
        assert!(matches!(
            parse_payment_notify(&m, xml::to_xml(&t).as_bytes()),
            Err(Error::NotifySignature(_))
        ));
        let mut t = f.clone();
        t.insert("unknown_future_field".into(), "y".into());
        assert!(matches!(
            parse_payment_notify(&m, xml::to_xml(&t).as_bytes()),
            Err(Error::NotifySignature(_))
        ));
        let mut t = f;
        t.remove("sign");
        assert!(parse_payment_notify(&m, xml::to_xml(&t).as_bytes()).is_err());
    }

    #[test]
    fn refund_notify_round_trip_and_wrong_key() {
        let m = merchant();
        let mut inner = Fields::new();
        for (k, v) in [
            ("out_refund_no", "R1"),
            ("out_trade_no", "NO1"),
            ("refund_id", "50001"),
            ("transaction_id", "4200001"),
            ("refund_status", "SUCCESS"),
            ("refund_fee", "40"),
            ("total_fee", "100"),
            ("success_time", "2026-11-24 10:10:10"),
        ] {
            inner.insert(k.into(), v.into());
        }
        let mut outer = Fields::new();
        for (k, v) in [
            ("return_code", "SUCCESS"),
            ("appid", "wx1"),
            ("mch_id", "100"),
            ("nonce_str", "n"),
        ] {
            outer.insert(k.into(), v.into());
        }
        outer.insert("req_info".into(), encrypt_req_info(&m.key, &inner));
        let n = parse_refund_notify(&m, xml::to_xml(&outer).as_bytes()).unwrap();
        assert_eq!(n.refund_fee, Fen(40));
        assert_eq!(n.out_refund_no, "R1");
        let other = Merchant {
            key: PayKey::new("ffffffffffffffffffffffffffffffff"),
            ..m
        };
        assert!(matches!(
            parse_refund_notify(&other, xml::to_xml(&outer).as_bytes()),
            Err(Error::Decrypt | Error::Xml(_))
        ));
    }

    #[test]
    fn the_success_reply_is_exact() {
        assert_eq!(
            SUCCESS_REPLY,
            "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
        );
        assert_eq!(
            xml::parse(fail_reply("签名失败").as_bytes()).unwrap()["return_code"],
            "FAIL"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        // The notify parser takes untrusted bytes: it must never panic, whatever it is fed.
        #[test]
        fn notify_parsing_never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_payment_notify(&merchant(), &body);
            let _ = parse_refund_notify(&merchant(), &body);
        }

        #[test]
        fn notify_parsing_never_panics_on_mutated_valid_notifies(
            cut in 0usize..2000, insert in proptest::collection::vec(any::<u8>(), 0..16), at in 0usize..2000,
        ) {
            let m = merchant();
            let mut body = xml::to_xml(&notify_fields(&m)).into_bytes();
            let at = at % (body.len() + 1);
            for (i, b) in insert.into_iter().enumerate() {
                body.insert((at + i).min(body.len()), b);
            }
            body.truncate(cut.max(1).min(body.len()));
            let _ = parse_payment_notify(&m, &body);
        }
    }
}
