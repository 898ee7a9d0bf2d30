//! The v2 client: unified order, query, close, refund, refund query over a transport. The domain types it speaks
//! live in [`crate::types`] (re-exported here).

use crate::error::{Error, Result};
#[cfg(feature = "client")]
use crate::request::{CloseOrder, OrderQuery, PayRequest, RefundQuery};
#[cfg(feature = "client")]
use std::sync::Arc;
use url::Url;
#[cfg(feature = "client")]
use wechat_core::{Transport, WechatClient};

pub use crate::types::{
    Fen, JsapiPayParams, Merchant, OrderRef, OrderStatus, PrepayOrder, Refund, RefundAccepted, RefundStatus,
    TradeState, TradeType, UnifiedOrder, UnifiedOrderBuilder, check_response, jsapi_pay_params,
};

/// The Pay v2 client.
///
/// ```no_run
/// use wechat_core::AppId;
/// use wechat_pay::{Fen, Merchant, PayClient, PayKey, SignType, TradeType, UnifiedOrder};
/// # async fn demo() -> wechat_pay::Result<()> {
/// let merchant = Merchant::new("wxd930ea5d5a258f4f", "10000100", PayKey::new("192006250b4c09247ec02edce69f6a2d"), SignType::HmacSha256);
/// let pay = PayClient::new(merchant, "http://127.0.0.1:9000")?; // the simulator
/// let order = UnifiedOrder::builder()
///     .body("Coffee")
///     .out_trade_no("ORDER20261124001")
///     .total_fee(Fen(1800))
///     .client_ip("127.0.0.1")
///     .notify_url("https://shop.example.com/wechat/pay/notify")
///     .trade_type(TradeType::Jsapi { openid: "o-user".into() })
///     .build()?;
/// let prepay = pay.unified_order(&order).await?;
/// let params = pay.jsapi_params(&prepay.prepay_id, 1_700_000_000); // → wx.requestPayment(params)
/// # let _ = params;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
#[cfg(feature = "client")]
pub struct PayClient {
    merchant: Merchant,
    base_url: Url,
    client: WechatClient,
    cert_client: Option<WechatClient>,
}

#[cfg(feature = "client")]
impl PayClient {
    /// A client on the default transport against `base_url` (`https://api.mch.weixin.qq.com` or the simulator).
    /// Needs the `reqwest` feature; without it, use [`with_transport`](Self::with_transport).
    #[cfg(feature = "reqwest")]
    pub fn new(merchant: Merchant, base_url: &str) -> Result<Self> {
        let client = WechatClient::with_default_transport()?.with_retry(wechat_core::RetryPolicy::none());
        Self::with_transport(merchant, base_url, client.transport().clone())
    }

    /// A client on a given transport. Pay calls are not retried automatically: the caller decides, with the same
    /// `out_trade_no` (WeChat deduplicates on it).
    pub fn with_transport(merchant: Merchant, base_url: &str, transport: Arc<dyn Transport>) -> Result<Self> {
        let base_url = wechat_core::parse_base_url(base_url)?;
        let client = WechatClient::new(transport).with_retry(wechat_core::RetryPolicy::none());
        Ok(Self {
            merchant,
            base_url,
            client,
            cert_client: None,
        })
    }

    /// The transport carrying the merchant's client certificate, required by refunds (mutual TLS). Build it with
    /// `ReqwestTransport::from_client(reqwest::Client::builder().identity(...).build()?)`.
    pub fn with_certificate_transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.cert_client = Some(WechatClient::new(transport).with_retry(wechat_core::RetryPolicy::none()));
        self
    }

    /// The merchant.
    pub fn merchant(&self) -> &Merchant {
        &self.merchant
    }

    /// Sends a [request value](crate::request): signed with a fresh nonce, over the certificate transport when it
    /// needs one, the answer checked (transport FAIL, signature, merchant, business FAIL) and read. Never retried.
    pub async fn send<R: PayRequest + ?Sized>(&self, request: &R) -> Result<R::Response> {
        let client = if request.needs_certificate() {
            self.cert_client.as_ref().ok_or(Error::CertificateRequired)?
        } else {
            &self.client
        };
        let http = request.to_http(&self.merchant, &self.base_url, &crate::sign::nonce())?;
        let response = client.execute(http).await?;
        request.parse(&self.merchant, &response)
    }

    /// The trade bill of a Beijing day (`YYYY-MM-DD`), read into rows; a day without trades ("No Bill Exist") is
    /// an empty bill.
    pub async fn download_bill(&self, date: &str) -> Result<crate::bill::TradeBill> {
        let request = crate::bill::DownloadBill::new(date, crate::bill::BillType::All)?;
        match self.send(&request).await {
            Ok(text) => crate::bill::TradeBill::parse(&text).map_err(|e| Error::invalid(e.to_string())),
            Err(Error::ReturnFail { return_msg }) if return_msg.contains("No Bill Exist") => {
                Ok(crate::bill::TradeBill::default())
            }
            Err(e) => Err(e),
        }
    }

    /// Creates an order.
    pub async fn unified_order(&self, order: &UnifiedOrder) -> Result<PrepayOrder> {
        self.send(order).await
    }

    /// Queries an order.
    pub async fn order_query(&self, order: &OrderRef) -> Result<OrderStatus> {
        self.send(&OrderQuery(order.clone())).await
    }

    /// Closes an unpaid order (not within 5 minutes of its creation).
    pub async fn close_order(&self, out_trade_no: &str) -> Result<()> {
        self.send(&CloseOrder::new(out_trade_no)?).await
    }

    /// Refunds (part of) a paid order, over the certificate transport.
    pub async fn refund(&self, refund: &Refund) -> Result<RefundAccepted> {
        self.send(refund).await
    }

    /// The refunds of an order.
    pub async fn refund_query(&self, order: &OrderRef) -> Result<Vec<RefundStatus>> {
        self.send(&RefundQuery(order.clone())).await
    }

    /// `wx.requestPayment` parameters for a prepay id, with a fresh nonce.
    pub fn jsapi_params(&self, prepay_id: &str, timestamp: i64) -> JsapiPayParams {
        jsapi_pay_params(
            &self.merchant.app_id,
            prepay_id,
            &self.merchant.key,
            self.merchant.sign_type,
            timestamp,
            &crate::sign::nonce(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::{PayKey, SignType, seal, sign};
    use crate::xml::{self, Fields};
    use wechat_core::AppId;

    #[test]
    fn notify_urls_are_checked_alike_for_payments_and_refunds() {
        for bad in ["not a url", "ftp://x.example/n", "https://x.example/n?order=1"] {
            let refund = Refund::new(OrderRef::OutTradeNo("NO1".into()), "R1", Fen(2), Fen(1));
            assert!(refund.and_then(|r| r.notify_url(bad)).is_err(), "{bad}");
            let v3 = crate::v3::RefundRequest::new(OrderRef::OutTradeNo("NO1".into()), "R1", Fen(1), Fen(2));
            assert!(v3.and_then(|r| r.notify_url(bad)).is_err(), "{bad}");
        }
        let refund = Refund::new(OrderRef::OutTradeNo("NO1".into()), "R1", Fen(2), Fen(1));
        assert!(refund.and_then(|r| r.notify_url("https://x.example/refund")).is_ok());
    }

    fn merchant() -> Merchant {
        Merchant {
            app_id: AppId::new("wx1"),
            mch_id: "100".into(),
            key: PayKey::new("k".repeat(32)),
            sign_type: SignType::Md5,
        }
    }

    #[test]
    fn per_trade_type_requirements_are_enforced() {
        let new = |t| UnifiedOrder::validated("b", "NO1", Fen(1), "127.0.0.1", "https://x.example/n", t);
        assert!(new(TradeType::Jsapi { openid: String::new() }).is_err());
        assert!(
            new(TradeType::Native {
                product_id: String::new()
            })
            .is_err()
        );
        assert!(new(TradeType::App).is_ok());
        assert!(UnifiedOrder::validated("b", "NO 1", Fen(1), "127.0.0.1", "https://x/n", TradeType::App).is_err());
        assert!(UnifiedOrder::validated("b", "NO1", Fen(0), "127.0.0.1", "https://x/n", TradeType::App).is_err());
        assert!(UnifiedOrder::validated("b", "NO1", Fen(1), "nope", "https://x/n", TradeType::App).is_err());
        assert!(UnifiedOrder::validated("b", "NO1", Fen(1), "::1", "https://x/n?a=1", TradeType::App).is_err());
        assert!(UnifiedOrder::validated("b", &"N".repeat(33), Fen(1), "::1", "https://x/n", TradeType::App).is_err());
    }

    #[test]
    fn responses_separate_transport_and_business_failures_and_check_signatures() {
        let m = merchant();
        let e = check_response(
            &m,
            b"<xml><return_code>FAIL</return_code><return_msg>bad</return_msg></xml>",
        );
        assert!(matches!(e, Err(Error::ReturnFail { ref return_msg }) if return_msg == "bad"));

        let mut f = Fields::new();
        for (k, v) in [
            ("return_code", "SUCCESS"),
            ("result_code", "FAIL"),
            ("err_code", "ORDERPAID"),
            ("appid", "wx1"),
            ("mch_id", "100"),
        ] {
            f.insert(k.into(), v.into());
        }
        seal(&mut f, &m.key, SignType::Md5);
        let e = check_response(&m, xml::to_xml(&f).as_bytes());
        assert!(matches!(e, Err(Error::Business { ref err_code, .. }) if err_code == "ORDERPAID"));

        f.insert("err_code".into(), "TAMPERED".into());
        let e = check_response(&m, xml::to_xml(&f).as_bytes());
        assert!(matches!(e, Err(Error::ResponseSignature(_))));

        let mut other = f.clone();
        other.insert("mch_id".into(), "999".into());
        seal(&mut other, &m.key, SignType::Md5);
        assert!(matches!(
            check_response(&m, xml::to_xml(&other).as_bytes()),
            Err(Error::MerchantMismatch { field: "mch_id" })
        ));
    }

    #[test]
    fn jsapi_params_are_signed_over_the_camel_case_fields() {
        let m = merchant();
        let p = jsapi_pay_params(
            &m.app_id,
            "wx2017",
            &m.key,
            SignType::Md5,
            1_490_840_662,
            "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        );
        assert_eq!(p.package, "prepay_id=wx2017");
        let expected = sign(
            [
                ("appId", "wx1"),
                ("timeStamp", "1490840662"),
                ("nonceStr", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
                ("package", "prepay_id=wx2017"),
                ("signType", "MD5"),
            ],
            &m.key,
            SignType::Md5,
        );
        assert_eq!(p.pay_sign, expected);
        let json = serde_json::to_value(&p).unwrap();
        assert!(json.get("paySign").is_some() && json.get("timeStamp").is_some());
    }
}
