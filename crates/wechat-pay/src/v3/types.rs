//! The v3 domain: orders by channel, prepay answers, transactions, refunds, amounts and payment parameters, as
//! values. Pure: the requests (`v3::request`) and the client (`v3::client`) build on it.

use crate::error::{Error, Result};
use crate::types::{Fen, JsapiPayParams, OrderRef, TradeState};
use crate::v3::sign::pay_sign;
use serde::{Deserialize, Serialize};
use serde_json::json;
use wechat_core::AppId;

/// How the payer pays (and so which endpoint places the order).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Channel {
    /// Inside WeChat — an official-account page or a mini program (with the mini program's appid): the payer's
    /// openid for the order's appid.
    Jsapi {
        /// The payer's openid.
        openid: String,
    },
    /// A native app.
    App,
    /// A mobile browser outside WeChat.
    H5 {
        /// The payer's IP address.
        payer_client_ip: String,
    },
    /// A QR code to scan.
    Native,
}

impl Channel {
    pub(crate) fn path(&self) -> &'static str {
        match self {
            Channel::Jsapi { .. } => "/v3/pay/transactions/jsapi",
            Channel::App => "/v3/pay/transactions/app",
            Channel::H5 { .. } => "/v3/pay/transactions/h5",
            Channel::Native => "/v3/pay/transactions/native",
        }
    }
}

pub(crate) fn check_v3_no(name: &str, value: &str, min: usize, max: usize) -> Result<()> {
    if value.len() < min
        || value.len() > max
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'*'))
    {
        return Err(Error::invalid(format!(
            "{name} must be {min} to {max} characters of [0-9A-Za-z_-*]"
        )));
    }
    Ok(())
}

/// `time_expire` and other v3 times: RFC 3339 in Beijing time (`2026-11-27T10:00:00+08:00`).
pub fn rfc3339_beijing(unix_secs: i64) -> String {
    let secs = unix_secs + 8 * 3600;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+08:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A v3 order (`POST /v3/pay/transactions/{jsapi|app|h5|native}`).
///
/// ```
/// use wechat_core::AppId;
/// use wechat_pay::Fen;
/// use wechat_pay::v3::{Channel, Order};
/// let order = Order::new(&AppId::new("wxd678efh567hg6787"), "Coffee", "ORDER20261127001", Fen(1800),
///     "https://shop.example.com/wechat/pay/v3/notify", Channel::Jsapi { openid: "o-user".into() })?
///     .expires_at(1_800_000_000);
/// assert_eq!(order.out_trade_no(), "ORDER20261127001");
/// assert!(Order::new(&AppId::new("wx1"), "Coffee", "NO", Fen(1), "https://x.example/n", Channel::Native).is_err());
/// # Ok::<(), wechat_pay::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    app_id: AppId,
    description: String,
    out_trade_no: String,
    total: Fen,
    notify_url: String,
    channel: Channel,
    attach: Option<String>,
    time_expire: Option<i64>,
}

impl Order {
    /// The payment channel.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// An order: `description` 1–127 bytes, `out_trade_no` 6–32 of `[0-9A-Za-z_-*]`, at least 1 fen, an http(s)
    /// `notify_url` without a query string (WeChat Pay wants https; the simulator accepts http).
    pub fn new(
        app_id: &AppId,
        description: &str,
        out_trade_no: &str,
        total: Fen,
        notify_url: &str,
        channel: Channel,
    ) -> Result<Self> {
        if description.is_empty() || description.len() > 127 {
            return Err(Error::invalid("description must be 1 to 127 bytes"));
        }
        check_v3_no("out_trade_no", out_trade_no, 6, 32)?;
        if total.0 == 0 {
            return Err(Error::invalid("the amount must be at least 1 fen"));
        }
        crate::types::check_notify_url(notify_url)?;
        match &channel {
            Channel::Jsapi { openid } if openid.is_empty() => {
                return Err(Error::invalid("JSAPI orders need the payer's openid"));
            }
            Channel::H5 { payer_client_ip } if payer_client_ip.parse::<std::net::IpAddr>().is_err() => {
                return Err(Error::invalid("H5 orders need the payer's IP address"));
            }
            _ => {}
        }
        Ok(Self {
            app_id: app_id.clone(),
            description: description.to_owned(),
            out_trade_no: out_trade_no.to_owned(),
            total,
            notify_url: notify_url.to_owned(),
            channel,
            attach: None,
            time_expire: None,
        })
    }

    /// Merchant data echoed back in the notify (≤ 128 bytes).
    pub fn attach(mut self, attach: &str) -> Result<Self> {
        if attach.len() > 128 {
            return Err(Error::invalid("attach must be at most 128 bytes"));
        }
        self.attach = Some(attach.to_owned());
        Ok(self)
    }

    /// When the order stops being payable (Unix seconds; sent as RFC 3339, Beijing time).
    pub fn expires_at(mut self, unix_secs: i64) -> Self {
        self.time_expire = Some(unix_secs);
        self
    }

    /// The merchant order number.
    pub fn out_trade_no(&self) -> &str {
        &self.out_trade_no
    }

    /// The request body for merchant `mch_id`.
    pub fn body(&self, mch_id: &str) -> serde_json::Value {
        let mut b = json!({
            "appid": self.app_id.as_str(),
            "mchid": mch_id,
            "description": self.description,
            "out_trade_no": self.out_trade_no,
            "notify_url": self.notify_url,
            "amount": {"total": self.total.0, "currency": "CNY"},
        });
        if let Some(a) = &self.attach {
            b["attach"] = json!(a);
        }
        if let Some(t) = self.time_expire {
            b["time_expire"] = json!(rfc3339_beijing(t));
        }
        match &self.channel {
            Channel::Jsapi { openid } => b["payer"] = json!({"openid": openid}),
            Channel::H5 { payer_client_ip } => {
                b["scene_info"] = json!({"payer_client_ip": payer_client_ip, "h5_info": {"type": "Wap"}});
            }
            Channel::App | Channel::Native => {}
        }
        b
    }
}

/// What placing an order returns.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Prepay {
    /// JSAPI, mini program and APP: the `prepay_id` to build payment parameters from.
    PrepayId(String),
    /// NATIVE: the URL to render as a QR code.
    CodeUrl(String),
    /// H5: where to send the browser.
    H5Url(String),
}

/// The payer of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Payer {
    /// The payer's openid for the order's appid.
    pub openid: String,
}

/// A transaction's amounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Amount {
    /// The order amount, fen.
    pub total: u64,
    /// What the payer paid (after discounts), fen.
    #[serde(default)]
    pub payer_total: Option<u64>,
    /// `CNY`.
    #[serde(default)]
    pub currency: Option<String>,
}

fn trade_state<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<TradeState, D::Error> {
    String::deserialize(d).map(|s| TradeState::parse(&s))
}

/// An order as WeChat Pay reports it (query, and the `TRANSACTION.SUCCESS` notify).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Transaction {
    /// The order's appid.
    #[serde(default)]
    pub appid: String,
    /// The merchant.
    #[serde(default)]
    pub mchid: String,
    /// Our number.
    pub out_trade_no: String,
    /// WeChat's number, once paid.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// JSAPI, NATIVE, APP, MWEB, …
    #[serde(default)]
    pub trade_type: Option<String>,
    /// The state.
    #[serde(deserialize_with = "trade_state")]
    pub trade_state: TradeState,
    /// The state in words.
    #[serde(default)]
    pub trade_state_desc: Option<String>,
    /// When it was paid (RFC 3339).
    #[serde(default)]
    pub success_time: Option<String>,
    /// The payer, once paid.
    #[serde(default)]
    pub payer: Option<Payer>,
    /// Amounts.
    #[serde(default)]
    pub amount: Option<Amount>,
    /// Merchant data from the order.
    #[serde(default)]
    pub attach: Option<String>,
}

/// A refund's state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefundState {
    /// Refunded.
    Success,
    /// Closed without refunding.
    Closed,
    /// Under way.
    Processing,
    /// Failed (the payer's account cannot receive it): needs the merchant's action.
    Abnormal,
    /// Anything WeChat adds later.
    Other(String),
}

impl RefundState {
    fn parse(s: &str) -> Self {
        match s {
            "SUCCESS" => Self::Success,
            "CLOSED" => Self::Closed,
            "PROCESSING" => Self::Processing,
            "ABNORMAL" => Self::Abnormal,
            other => Self::Other(other.to_owned()),
        }
    }
}

fn refund_state<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<RefundState, D::Error> {
    String::deserialize(d).map(|s| RefundState::parse(&s))
}

/// A refund's amounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RefundAmount {
    /// Refunded, fen.
    pub refund: u64,
    /// The order's amount, fen.
    pub total: u64,
}

/// A refund as WeChat Pay reports it (create, query, and the `REFUND.*` notifies).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct RefundInfo {
    /// WeChat's refund id.
    pub refund_id: String,
    /// Our refund number.
    pub out_refund_no: String,
    /// WeChat's order number.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// Our order number.
    #[serde(default)]
    pub out_trade_no: Option<String>,
    /// The state (`status` in responses, `refund_status` in notifies).
    #[serde(alias = "refund_status", deserialize_with = "refund_state")]
    pub status: RefundState,
    /// When it succeeded.
    #[serde(default)]
    pub success_time: Option<String>,
    /// Amounts.
    pub amount: RefundAmount,
}

/// `POST /v3/refund/domestic/refunds`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundRequest {
    order: OrderRef,
    out_refund_no: String,
    refund: Fen,
    total: Fen,
    reason: Option<String>,
    notify_url: Option<String>,
}

impl RefundRequest {
    /// Refunds `refund` of an order of `total`; `out_refund_no` 1–64 of `[0-9A-Za-z_-*]`.
    pub fn new(order: OrderRef, out_refund_no: &str, refund: Fen, total: Fen) -> Result<Self> {
        check_v3_no("out_refund_no", out_refund_no, 1, 64)?;
        if refund.0 == 0 || refund > total {
            return Err(Error::invalid("the refund must be between 1 fen and the order's total"));
        }
        Ok(Self {
            order,
            out_refund_no: out_refund_no.to_owned(),
            refund,
            total,
            reason: None,
            notify_url: None,
        })
    }

    /// The reason shown to the payer (≤ 80 bytes).
    pub fn reason(mut self, reason: &str) -> Result<Self> {
        if reason.len() > 80 {
            return Err(Error::invalid("reason must be at most 80 bytes"));
        }
        self.reason = Some(reason.to_owned());
        Ok(self)
    }

    /// Where the `REFUND.*` notify goes.
    pub fn notify_url(mut self, url: &str) -> Result<Self> {
        crate::types::check_notify_url(url)?;
        self.notify_url = Some(url.to_owned());
        Ok(self)
    }

    /// The request body.
    pub fn body(&self) -> serde_json::Value {
        let mut b = json!({
            "out_refund_no": self.out_refund_no,
            "amount": {"refund": self.refund.0, "total": self.total.0, "currency": "CNY"},
        });
        match &self.order {
            OrderRef::OutTradeNo(n) => b["out_trade_no"] = json!(n),
            OrderRef::TransactionId(t) => b["transaction_id"] = json!(t),
        }
        if let Some(r) = &self.reason {
            b["reason"] = json!(r);
        }
        if let Some(u) = &self.notify_url {
            b["notify_url"] = json!(u);
        }
        b
    }
}

/// What a native app passes to the WeChat SDK's `PayReq` (signType RSA).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AppPayParams {
    /// The app's appid.
    pub appid: String,
    /// The merchant.
    pub partnerid: String,
    /// The prepay id.
    pub prepayid: String,
    /// Always `Sign=WXPay`.
    pub package: String,
    /// Nonce.
    pub noncestr: String,
    /// Unix seconds.
    pub timestamp: String,
    /// SHA256withRSA over `appid\ntimestamp\nnoncestr\nprepayid\n`.
    pub sign: String,
}

/// `wx.requestPayment` parameters with signType `RSA`: paySign over `appId\ntimeStamp\nnonceStr\npackage\n`.
pub fn jsapi_pay_params(
    key: &crate::v3::MerchantPrivateKey,
    app_id: &AppId,
    prepay_id: &str,
    timestamp: i64,
    nonce: &str,
) -> JsapiPayParams {
    let time_stamp = timestamp.to_string();
    let package = format!("prepay_id={prepay_id}");
    let sign = pay_sign(key, app_id.as_str(), &time_stamp, nonce, &package);
    JsapiPayParams {
        app_id: app_id.as_str().to_owned(),
        time_stamp,
        nonce_str: nonce.to_owned(),
        package,
        sign_type: "RSA".into(),
        pay_sign: sign,
    }
}
