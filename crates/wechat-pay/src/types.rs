//! The v2 domain: amounts, trade types and states, orders and refunds as values, pay params, the merchant; and the
//! checks of a response. Pure: the requests (`request`) and the client (`client`) build on it.

use crate::error::{Error, Result};
use crate::sign::{PayKey, SignType, sign, verify};
use crate::xml::{self, Fields};
use serde::Serialize;
use url::Url;
use wechat_core::AppId;

/// An amount in fen (1/100 yuan). Never a float.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Fen(pub u64);

impl std::fmt::Display for Fen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How the user pays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TradeType {
    /// Inside WeChat (official-account page or mini program): needs the payer's openid.
    Jsapi {
        /// The payer's openid for `appid`.
        openid: String,
    },
    /// A QR code the user scans: needs a product id.
    Native {
        /// The merchant's product id.
        product_id: String,
    },
    /// A native app.
    App,
    /// A mobile browser outside WeChat (H5). WeChat requires `scene_info` for it: the site the payment starts from,
    /// reported as `{"h5_info": {"type": "Wap", "wap_url", "wap_name"}}`.
    Mweb {
        /// The site's address (the page's origin).
        wap_url: String,
        /// The site's name, shown to the payer.
        wap_name: String,
    },
}

impl TradeType {
    /// WeChat's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            TradeType::Jsapi { .. } => "JSAPI",
            TradeType::Native { .. } => "NATIVE",
            TradeType::App => "APP",
            TradeType::Mweb { .. } => "MWEB",
        }
    }
}

/// A notify URL as WeChat Pay takes it (payments and refunds, v2 and v3): http(s), reachable as is — no query
/// string, which WeChat Pay does not carry over.
pub(crate) fn check_notify_url(notify_url: &str) -> Result<()> {
    let url = Url::parse(notify_url).map_err(|e| Error::invalid(format!("notify_url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
        return Err(Error::invalid(
            "notify_url must be an http(s) URL without a query string",
        ));
    }
    Ok(())
}

pub(crate) fn check_out_no(name: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty()
        || value.len() > max
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*'))
    {
        return Err(Error::invalid(format!(
            "{name} must be 1 to {max} characters of [0-9A-Za-z_-|*]"
        )));
    }
    Ok(())
}

/// `POST /pay/unifiedorder`, built with [`UnifiedOrder::builder`]; per-trade-type requirements are enforced by
/// [`TradeType`]'s variants.
///
/// ```
/// use wechat_pay::{Fen, TradeType, UnifiedOrder};
/// let order = UnifiedOrder::builder()
///     .body("Coffee")
///     .out_trade_no("ORDER20261124001")
///     .total_fee(Fen(1800))
///     .client_ip("127.0.0.1")
///     .notify_url("https://shop.example.com/wechat/pay/notify")
///     .trade_type(TradeType::Jsapi { openid: "o-user".into() })
///     .build()?;
/// assert_eq!(order.out_trade_no(), "ORDER20261124001");
/// // A missing field is named, never guessed:
/// let e = UnifiedOrder::builder().body("Coffee").build().unwrap_err();
/// assert!(e.to_string().contains("out_trade_no"));
/// # Ok::<(), wechat_pay::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnifiedOrder {
    body: String,
    out_trade_no: String,
    total_fee: Fen,
    spbill_create_ip: String,
    notify_url: String,
    trade_type: TradeType,
    attach: Option<String>,
    time_expire: Option<String>,
}

/// Builds a [`UnifiedOrder`]: `body`, `out_trade_no`, `total_fee`, `client_ip`, `notify_url` and `trade_type` are
/// required; [`build`](Self::build) validates them all.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct UnifiedOrderBuilder {
    body: Option<String>,
    out_trade_no: Option<String>,
    total_fee: Option<Fen>,
    spbill_create_ip: Option<String>,
    notify_url: Option<String>,
    trade_type: Option<TradeType>,
    attach: Option<String>,
    time_expire: Option<String>,
}

impl UnifiedOrderBuilder {
    /// What is bought (`body`, 1 to 128 bytes), shown to the payer.
    pub fn body(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self
    }

    /// The merchant order number (1 to 32 of `[0-9A-Za-z_-|*]`); WeChat deduplicates on it.
    pub fn out_trade_no(mut self, out_trade_no: &str) -> Self {
        self.out_trade_no = Some(out_trade_no.to_owned());
        self
    }

    /// The amount, at least 1 fen.
    pub fn total_fee(mut self, total_fee: Fen) -> Self {
        self.total_fee = Some(total_fee);
        self
    }

    /// The payer's IP address (`spbill_create_ip`).
    pub fn client_ip(mut self, ip: &str) -> Self {
        self.spbill_create_ip = Some(ip.to_owned());
        self
    }

    /// Where WeChat sends the payment notify: an http(s) URL without a query string.
    pub fn notify_url(mut self, notify_url: &str) -> Self {
        self.notify_url = Some(notify_url.to_owned());
        self
    }

    /// JSAPI (with the payer's openid), NATIVE, APP or MWEB.
    pub fn trade_type(mut self, trade_type: TradeType) -> Self {
        self.trade_type = Some(trade_type);
        self
    }

    /// Merchant data echoed back in the notify (≤ 127 bytes).
    pub fn attach(mut self, attach: &str) -> Self {
        self.attach = Some(attach.to_owned());
        self
    }

    /// Order expiry, `yyyyMMddHHmmss` (Beijing time).
    pub fn time_expire(mut self, yyyymmddhhmmss: &str) -> Self {
        self.time_expire = Some(yyyymmddhhmmss.to_owned());
        self
    }

    /// The order, or [`Error::InvalidRequest`](crate::Error) naming the missing or invalid field.
    pub fn build(self) -> Result<UnifiedOrder> {
        fn required<T>(value: Option<T>, name: &str) -> Result<T> {
            value.ok_or_else(|| Error::invalid(format!("UnifiedOrder: {name} is required")))
        }
        let body = required(self.body, "body")?;
        let out_trade_no = required(self.out_trade_no, "out_trade_no")?;
        let total_fee = required(self.total_fee, "total_fee")?;
        let spbill_create_ip = required(self.spbill_create_ip, "client_ip (spbill_create_ip)")?;
        let notify_url = required(self.notify_url, "notify_url")?;
        let trade_type = required(self.trade_type, "trade_type")?;
        let mut order = UnifiedOrder::validated(
            &body,
            &out_trade_no,
            total_fee,
            &spbill_create_ip,
            &notify_url,
            trade_type,
        )?;
        if let Some(a) = self.attach {
            order = order.attach(&a)?;
        }
        if let Some(t) = self.time_expire {
            order = order.time_expire(&t)?;
        }
        Ok(order)
    }
}

impl UnifiedOrder {
    /// Starts building an order.
    pub fn builder() -> UnifiedOrderBuilder {
        UnifiedOrderBuilder::default()
    }

    pub(crate) fn validated(
        body: &str,
        out_trade_no: &str,
        total_fee: Fen,
        spbill_create_ip: &str,
        notify_url: &str,
        trade_type: TradeType,
    ) -> Result<Self> {
        if body.is_empty() || body.len() > 128 {
            return Err(Error::invalid("body must be 1 to 128 bytes"));
        }
        check_out_no("out_trade_no", out_trade_no, 32)?;
        if total_fee.0 == 0 {
            return Err(Error::invalid("total_fee must be at least 1 fen"));
        }
        if spbill_create_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::invalid("spbill_create_ip must be an IP address"));
        }
        check_notify_url(notify_url)?;
        match &trade_type {
            TradeType::Jsapi { openid } if openid.is_empty() => {
                return Err(Error::invalid("JSAPI orders need the payer's openid"));
            }
            TradeType::Native { product_id } if product_id.is_empty() || product_id.len() > 32 => {
                return Err(Error::invalid("NATIVE orders need a product_id of 1 to 32 characters"));
            }
            TradeType::Mweb { wap_url, wap_name } if wap_url.is_empty() || wap_name.is_empty() => {
                return Err(Error::invalid("MWEB (H5) orders need the site's wap_url and wap_name"));
            }
            _ => {}
        }
        Ok(Self {
            body: body.to_owned(),
            out_trade_no: out_trade_no.to_owned(),
            total_fee,
            spbill_create_ip: spbill_create_ip.to_owned(),
            notify_url: notify_url.to_owned(),
            trade_type,
            attach: None,
            time_expire: None,
        })
    }

    /// Merchant data echoed back in the notify (≤ 127 bytes).
    pub fn attach(mut self, attach: &str) -> Result<Self> {
        if attach.len() > 127 {
            return Err(Error::invalid("attach must be at most 127 bytes"));
        }
        self.attach = Some(attach.to_owned());
        Ok(self)
    }

    /// Order expiry, `yyyyMMddHHmmss` (Beijing time).
    pub fn time_expire(mut self, yyyymmddhhmmss: &str) -> Result<Self> {
        if yyyymmddhhmmss.len() != 14 || !yyyymmddhhmmss.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid("time_expire must be yyyyMMddHHmmss"));
        }
        self.time_expire = Some(yyyymmddhhmmss.to_owned());
        Ok(self)
    }

    /// The merchant order number.
    pub fn out_trade_no(&self) -> &str {
        &self.out_trade_no
    }

    pub(crate) fn fields(&self) -> Fields {
        let mut f = Fields::new();
        f.insert("body".into(), self.body.clone());
        f.insert("out_trade_no".into(), self.out_trade_no.clone());
        f.insert("total_fee".into(), self.total_fee.to_string());
        f.insert("spbill_create_ip".into(), self.spbill_create_ip.clone());
        f.insert("notify_url".into(), self.notify_url.clone());
        f.insert("trade_type".into(), self.trade_type.as_str().into());
        match &self.trade_type {
            TradeType::Jsapi { openid } => {
                f.insert("openid".into(), openid.clone());
            }
            TradeType::Native { product_id } => {
                f.insert("product_id".into(), product_id.clone());
            }
            TradeType::Mweb { wap_url, wap_name } => {
                let scene = serde_json::json!({"h5_info": {"type": "Wap", "wap_url": wap_url, "wap_name": wap_name}});
                f.insert("scene_info".into(), scene.to_string());
            }
            TradeType::App => {}
        }
        if let Some(a) = &self.attach {
            f.insert("attach".into(), a.clone());
        }
        if let Some(t) = &self.time_expire {
            f.insert("time_expire".into(), t.clone());
        }
        f
    }
}

/// A created order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrepayOrder {
    /// `prepay_id` (valid 2 hours).
    pub prepay_id: String,
    /// NATIVE: the URL to render as a QR code.
    pub code_url: Option<String>,
    /// MWEB: where to send the browser.
    pub mweb_url: Option<String>,
    /// The trade type WeChat confirmed.
    pub trade_type: String,
}

/// Which order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderRef {
    /// By our number.
    OutTradeNo(String),
    /// By WeChat's number.
    TransactionId(String),
}

/// `trade_state` of an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TradeState {
    /// Paid.
    Success,
    /// (Partly) refunded.
    Refund,
    /// Not paid yet.
    NotPay,
    /// Closed.
    Closed,
    /// Revoked (micropay).
    Revoked,
    /// The user is paying.
    UserPaying,
    /// Payment failed.
    PayError,
    /// Anything WeChat adds later.
    Other(String),
}

impl TradeState {
    /// From WeChat's string (v2 `trade_state`, v3 `trade_state`).
    pub fn parse(s: &str) -> Self {
        match s {
            "SUCCESS" => TradeState::Success,
            "REFUND" => TradeState::Refund,
            "NOTPAY" => TradeState::NotPay,
            "CLOSED" => TradeState::Closed,
            "REVOKED" => TradeState::Revoked,
            "USERPAYING" => TradeState::UserPaying,
            "PAYERROR" => TradeState::PayError,
            other => TradeState::Other(other.to_owned()),
        }
    }
}

/// `orderquery` result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OrderStatus {
    /// The state.
    pub trade_state: TradeState,
    /// Our number.
    pub out_trade_no: String,
    /// WeChat's number, once paid.
    pub transaction_id: Option<String>,
    /// Order amount.
    pub total_fee: Option<Fen>,
    /// Payer, once paid.
    pub openid: Option<String>,
    /// Payment time `yyyyMMddHHmmss`.
    pub time_end: Option<String>,
    /// Every field, for anything not modelled.
    pub fields: Fields,
}

/// `POST /secapi/pay/refund`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub(crate) order: OrderRef,
    pub(crate) out_refund_no: String,
    pub(crate) total_fee: Fen,
    pub(crate) refund_fee: Fen,
    pub(crate) notify_url: Option<String>,
    pub(crate) refund_desc: Option<String>,
}

impl Refund {
    /// Refunds `refund_fee` of an order of `total_fee`.
    pub fn new(order: OrderRef, out_refund_no: &str, total_fee: Fen, refund_fee: Fen) -> Result<Self> {
        check_out_no("out_refund_no", out_refund_no, 64)?;
        if refund_fee.0 == 0 || refund_fee > total_fee {
            return Err(Error::invalid("refund_fee must be between 1 fen and total_fee"));
        }
        Ok(Self {
            order,
            out_refund_no: out_refund_no.to_owned(),
            total_fee,
            refund_fee,
            notify_url: None,
            refund_desc: None,
        })
    }

    /// Where the refund notify goes (overrides the merchant platform setting).
    pub fn notify_url(mut self, url: &str) -> Result<Self> {
        check_notify_url(url)?;
        self.notify_url = Some(url.to_owned());
        Ok(self)
    }

    /// Reason shown to the user.
    pub fn refund_desc(mut self, desc: &str) -> Self {
        self.refund_desc = Some(desc.to_owned());
        self
    }
}

/// A refund WeChat accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefundAccepted {
    /// WeChat's refund id.
    pub refund_id: String,
    /// Our refund number.
    pub out_refund_no: String,
    /// Amount.
    pub refund_fee: Fen,
}

/// One refund of an order, from `refundquery`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefundStatus {
    /// Our refund number.
    pub out_refund_no: String,
    /// WeChat's refund id.
    pub refund_id: String,
    /// Amount.
    pub refund_fee: Fen,
    /// SUCCESS, REFUNDCLOSE, PROCESSING, CHANGE.
    pub refund_status: String,
}

/// What the page passes to `wx.requestPayment`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct JsapiPayParams {
    /// App id.
    #[serde(rename = "appId")]
    pub app_id: String,
    /// Unix seconds as a string.
    #[serde(rename = "timeStamp")]
    pub time_stamp: String,
    /// Nonce.
    #[serde(rename = "nonceStr")]
    pub nonce_str: String,
    /// `prepay_id=...`.
    pub package: String,
    /// MD5 or HMAC-SHA256.
    #[serde(rename = "signType")]
    pub sign_type: String,
    /// The signature.
    #[serde(rename = "paySign")]
    pub pay_sign: String,
}

/// Builds `wx.requestPayment` parameters for a `prepay_id`.
pub fn jsapi_pay_params(
    app_id: &AppId,
    prepay_id: &str,
    key: &PayKey,
    sign_type: SignType,
    timestamp: i64,
    nonce: &str,
) -> JsapiPayParams {
    let time_stamp = timestamp.to_string();
    let package = format!("prepay_id={prepay_id}");
    let pay_sign = sign(
        [
            ("appId", app_id.as_str()),
            ("timeStamp", time_stamp.as_str()),
            ("nonceStr", nonce),
            ("package", package.as_str()),
            ("signType", sign_type.as_str()),
        ],
        key,
        sign_type,
    );
    JsapiPayParams {
        app_id: app_id.as_str().to_owned(),
        time_stamp,
        nonce_str: nonce.to_owned(),
        package,
        sign_type: sign_type.as_str().to_owned(),
        pay_sign,
    }
}

/// A merchant's identity and key, made with [`Merchant::new`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Merchant {
    /// The app the payments belong to.
    pub app_id: AppId,
    /// Merchant id.
    pub mch_id: String,
    /// API key.
    pub key: PayKey,
    /// Algorithm for requests and for verifying responses.
    pub sign_type: SignType,
}

impl Merchant {
    /// The merchant `mch_id` of app `app_id`, signing with `key` by `sign_type`.
    ///
    /// ```
    /// use wechat_pay::{Merchant, PayKey, SignType};
    /// let m = Merchant::new("wxd930ea5d5a258f4f", "10000100", PayKey::new("192006250b4c09247ec02edce69f6a2d"), SignType::Md5);
    /// assert_eq!(m.mch_id, "10000100");
    /// assert!(!format!("{m:?}").contains("192006250b4c"));
    /// ```
    pub fn new(app_id: impl Into<AppId>, mch_id: impl Into<String>, key: PayKey, sign_type: SignType) -> Self {
        Self {
            app_id: app_id.into(),
            mch_id: mch_id.into(),
            key,
            sign_type,
        }
    }
}

/// Checks a response: transport-level FAIL, then the signature (over every field), then appid/mch_id, then
/// business-level FAIL. Pure.
pub fn check_response(merchant: &Merchant, body: &[u8]) -> Result<Fields> {
    let fields = xml::parse(body)?;
    if fields.get("return_code").map(String::as_str) != Some("SUCCESS") {
        return Err(Error::ReturnFail {
            return_msg: fields.get("return_msg").cloned().unwrap_or_default(),
        });
    }
    verify(&fields, &merchant.key, merchant.sign_type).map_err(Error::ResponseSignature)?;
    for (field, ours) in [
        ("appid", merchant.app_id.as_str()),
        ("mch_id", merchant.mch_id.as_str()),
    ] {
        if let Some(theirs) = fields.get(field)
            && theirs != ours
        {
            return Err(Error::MerchantMismatch { field });
        }
    }
    if fields.get("result_code").map(String::as_str) != Some("SUCCESS") {
        return Err(Error::Business {
            err_code: fields.get("err_code").cloned().unwrap_or_default(),
            err_code_des: fields.get("err_code_des").cloned().unwrap_or_default(),
        });
    }
    Ok(fields)
}
