//! Pay v2 calls as values (sans-IO): each builds its signed XML request and reads the checked answer without any
//! transport, so it is tested with plain bytes and sent by any client. [`PayClient`](crate::PayClient) sends them;
//! none is retried automatically (WeChat deduplicates on `out_trade_no` / `out_refund_no`, the caller decides).
//!
//! ```
//! use wechat_pay::request::{OrderQuery, PayRequest};
//! use wechat_pay::{Merchant, OrderRef, PayKey, SignType, TradeState};
//!
//! let merchant = Merchant::new("wx1", "1900000109", PayKey::new("k".repeat(32)), SignType::HmacSha256);
//! let base = url::Url::parse("https://api.mch.weixin.qq.com").unwrap();
//! let query = OrderQuery(OrderRef::OutTradeNo("ORDER1".into()));
//! let http = query.to_http(&merchant, &base, "nonce1")?;
//! assert_eq!(http.uri().path(), "/pay/orderquery");
//! let sent = wechat_pay::xml::parse(http.body())?;
//! assert_eq!((sent["out_trade_no"].as_str(), sent["nonce_str"].as_str()), ("ORDER1", "nonce1"));
//! assert!(wechat_pay::sign::verify(&sent, &merchant.key, SignType::HmacSha256).is_ok());
//! // An answer with a wrong signature is refused before it is read.
//! let forged = http::Response::new(
//!     b"<xml><return_code>SUCCESS</return_code><result_code>SUCCESS</result_code><sign>X</sign></xml>".to_vec());
//! assert!(matches!(query.parse(&merchant, &forged), Err(wechat_pay::Error::ResponseSignature(_))));
//! # Ok::<(), wechat_pay::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::sign::sign_fields;
use crate::types::{
    Fen, Merchant, OrderRef, OrderStatus, PrepayOrder, Refund, RefundAccepted, RefundStatus, TradeState, UnifiedOrder,
    check_out_no, check_response,
};
use crate::xml::{self, Fields};
use url::Url;
use wechat_core::transport::{HttpRequest, HttpResponse};

/// One Pay v2 call: its path, its fields, and how to read the (already checked) answer. The signed request and the
/// checked reading are provided.
pub trait PayRequest {
    /// What a successful answer reads as.
    type Response;

    /// The path under the Pay host (`/pay/unifiedorder`…).
    fn path(&self) -> &'static str;

    /// Whether the call needs the merchant's client certificate (refunds).
    fn needs_certificate(&self) -> bool {
        false
    }

    /// The call's own fields (appid, mch_id, nonce and sign are added by [`to_http`](Self::to_http)).
    fn fields(&self) -> Fields;

    /// Reads an answer that [`check_response`] has accepted.
    fn read(&self, fields: Fields) -> Result<Self::Response>;

    /// The signed `POST` of the call for `merchant` at `base_url`, with `nonce` as `nonce_str`.
    fn to_http(&self, merchant: &Merchant, base_url: &Url, nonce: &str) -> Result<HttpRequest> {
        let mut fields = self.fields();
        fields.insert("appid".into(), merchant.app_id.as_str().into());
        fields.insert("mch_id".into(), merchant.mch_id.clone());
        fields.insert("nonce_str".into(), nonce.to_owned());
        if merchant.sign_type == crate::SignType::HmacSha256 {
            fields.insert("sign_type".into(), merchant.sign_type.as_str().into());
        }
        let sign = sign_fields(&fields, &merchant.key, merchant.sign_type);
        fields.insert("sign".into(), sign);
        let url = wechat_core::build_url(base_url, self.path(), &[]);
        http::Request::post(url.as_str())
            .header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .body(xml::to_xml(&fields).into_bytes())
            .map_err(|e| Error::invalid(e.to_string()))
    }

    /// Checks the answer in order — HTTP status, transport FAIL, signature, merchant, business FAIL — then reads it.
    fn parse(&self, merchant: &Merchant, response: &HttpResponse) -> Result<Self::Response> {
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(wechat_core::Error::HttpStatus { status }.into());
        }
        self.read(check_response(merchant, response.body())?)
    }
}

pub(crate) fn order_ref_fields(order: &OrderRef) -> Fields {
    let mut f = Fields::new();
    match order {
        OrderRef::OutTradeNo(n) => f.insert("out_trade_no".into(), n.clone()),
        OrderRef::TransactionId(t) => f.insert("transaction_id".into(), t.clone()),
    };
    f
}

/// `POST /pay/unifiedorder`: the order is its own request value.
impl PayRequest for UnifiedOrder {
    type Response = PrepayOrder;

    fn path(&self) -> &'static str {
        "/pay/unifiedorder"
    }

    fn fields(&self) -> Fields {
        UnifiedOrder::fields(self)
    }

    fn read(&self, f: Fields) -> Result<PrepayOrder> {
        let prepay_id = f
            .get("prepay_id")
            .filter(|p| !p.is_empty())
            .cloned()
            .ok_or(Error::MissingField("prepay_id"))?;
        Ok(PrepayOrder {
            prepay_id,
            code_url: f.get("code_url").cloned(),
            mweb_url: f.get("mweb_url").cloned(),
            trade_type: f.get("trade_type").cloned().unwrap_or_default(),
        })
    }
}

/// `POST /pay/orderquery` by our number or WeChat's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderQuery(pub OrderRef);

impl PayRequest for OrderQuery {
    type Response = OrderStatus;

    fn path(&self) -> &'static str {
        "/pay/orderquery"
    }

    fn fields(&self) -> Fields {
        order_ref_fields(&self.0)
    }

    fn read(&self, f: Fields) -> Result<OrderStatus> {
        Ok(OrderStatus {
            trade_state: TradeState::parse(f.get("trade_state").map(String::as_str).unwrap_or("")),
            out_trade_no: f.get("out_trade_no").cloned().unwrap_or_default(),
            transaction_id: f.get("transaction_id").filter(|s| !s.is_empty()).cloned(),
            total_fee: f.get("total_fee").and_then(|s| s.parse().ok()).map(Fen),
            openid: f.get("openid").cloned(),
            time_end: f.get("time_end").cloned(),
            fields: f,
        })
    }
}

/// `POST /pay/closeorder` of an unpaid order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseOrder {
    out_trade_no: String,
}

impl CloseOrder {
    /// Closes `out_trade_no` (checked: 1 to 32 of `[0-9A-Za-z_-|*]`).
    pub fn new(out_trade_no: &str) -> Result<Self> {
        check_out_no("out_trade_no", out_trade_no, 32)?;
        Ok(Self {
            out_trade_no: out_trade_no.to_owned(),
        })
    }
}

impl PayRequest for CloseOrder {
    type Response = ();

    fn path(&self) -> &'static str {
        "/pay/closeorder"
    }

    fn fields(&self) -> Fields {
        let mut f = Fields::new();
        f.insert("out_trade_no".into(), self.out_trade_no.clone());
        f
    }

    fn read(&self, _: Fields) -> Result<()> {
        Ok(())
    }
}

/// `POST /secapi/pay/refund`: the refund is its own request value (over the certificate transport).
impl PayRequest for Refund {
    type Response = RefundAccepted;

    fn path(&self) -> &'static str {
        "/secapi/pay/refund"
    }

    fn needs_certificate(&self) -> bool {
        true
    }

    fn fields(&self) -> Fields {
        let mut f = order_ref_fields(&self.order);
        f.insert("out_refund_no".into(), self.out_refund_no.clone());
        f.insert("total_fee".into(), self.total_fee.to_string());
        f.insert("refund_fee".into(), self.refund_fee.to_string());
        if let Some(u) = &self.notify_url {
            f.insert("notify_url".into(), u.clone());
        }
        if let Some(d) = &self.refund_desc {
            f.insert("refund_desc".into(), d.clone());
        }
        f
    }

    fn read(&self, r: Fields) -> Result<RefundAccepted> {
        Ok(RefundAccepted {
            refund_id: r.get("refund_id").cloned().ok_or(Error::MissingField("refund_id"))?,
            out_refund_no: r.get("out_refund_no").cloned().unwrap_or_default(),
            refund_fee: Fen(r
                .get("refund_fee")
                .and_then(|s| s.parse().ok())
                .ok_or(Error::MissingField("refund_fee"))?),
        })
    }
}

/// `POST /pay/refundquery`: the refunds of an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundQuery(pub OrderRef);

impl PayRequest for RefundQuery {
    type Response = Vec<RefundStatus>;

    fn path(&self) -> &'static str {
        "/pay/refundquery"
    }

    fn fields(&self) -> Fields {
        order_ref_fields(&self.0)
    }

    fn read(&self, r: Fields) -> Result<Vec<RefundStatus>> {
        let count: usize = r.get("refund_count").and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut out = Vec::with_capacity(count.min(50));
        for i in 0..count.min(50) {
            let get = |name: &str| r.get(&format!("{name}_{i}")).cloned().unwrap_or_default();
            out.push(RefundStatus {
                out_refund_no: get("out_refund_no"),
                refund_id: get("refund_id"),
                refund_fee: Fen(get("refund_fee").parse().unwrap_or(0)),
                refund_status: get("refund_status"),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PayKey, SignType, TradeType};

    fn merchant() -> Merchant {
        Merchant::new("wx1", "100", PayKey::new("k".repeat(32)), SignType::HmacSha256)
    }

    #[test]
    fn a_signed_request_verifies_and_a_signed_answer_reads() {
        let m = merchant();
        let order = UnifiedOrder::builder()
            .body("b")
            .out_trade_no("NO1")
            .total_fee(Fen(1))
            .client_ip("127.0.0.1")
            .notify_url("https://x.example/n")
            .trade_type(TradeType::Native { product_id: "p".into() })
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let base = Url::parse("http://sim.local").unwrap_or_else(|e| panic!("{e}"));
        let http = order.to_http(&m, &base, "n1").unwrap_or_else(|e| panic!("{e}"));
        let sent = xml::parse(http.body()).unwrap_or_else(|e| panic!("{e}"));
        assert!(crate::sign::verify(&sent, &m.key, SignType::HmacSha256).is_ok());
        assert_eq!(sent["nonce_str"], "n1");
        assert!(!order.needs_certificate());
        // What WeChat answers, signed with the same key.
        let mut answer = Fields::new();
        for (k, v) in [
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("appid", "wx1"),
            ("mch_id", "100"),
            ("prepay_id", "wx20261127"),
            ("trade_type", "NATIVE"),
            ("code_url", "weixin://wxpay/bizpayurl?pr=abc"),
        ] {
            answer.insert(k.into(), v.into());
        }
        let sign = sign_fields(&answer, &m.key, SignType::HmacSha256);
        answer.insert("sign".into(), sign);
        let response = http::Response::new(xml::to_xml(&answer).into_bytes());
        let prepay = order.parse(&m, &response).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(prepay.prepay_id, "wx20261127");
        assert_eq!(prepay.code_url.as_deref(), Some("weixin://wxpay/bizpayurl?pr=abc"));
        // Another merchant's answer is refused.
        answer.insert("mch_id".into(), "999".into());
        answer.remove("sign");
        let sign = sign_fields(&answer, &m.key, SignType::HmacSha256);
        answer.insert("sign".into(), sign);
        let response = http::Response::new(xml::to_xml(&answer).into_bytes());
        assert!(matches!(
            order.parse(&m, &response),
            Err(Error::MerchantMismatch { .. })
        ));
        assert!(CloseOrder::new("bad no").is_err());
    }
}
