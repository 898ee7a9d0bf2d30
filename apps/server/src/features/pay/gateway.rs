//! One face for WeChat Pay v2 and v3 (`pay.api_version`): the routes, the reconciler and the refunds speak to a
//! [`Gateway`] and keep their exactly-once rules whatever the version; only the wire differs.

use wechat_core::AppId;
use wechat_pay::{Fen, JsapiPayParams, OrderRef, TradeState};

/// What WeChat knows of a refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundSeen {
    /// Never received: it may be sent again with the same number.
    Missing,
    /// Under way (or abnormal: the merchant must act on the merchant platform).
    Pending,
    /// Done: `succeeded` or `closed`.
    Done {
        /// `succeeded` or `closed`.
        status: &'static str,
        /// WeChat's refund id.
        refund_id: String,
        /// Fen.
        refund_fee: u64,
    },
}

impl RefundSeen {
    fn from_state(status: Option<&'static str>, refund_id: String, refund_fee: u64) -> RefundSeen {
        match status {
            Some(status) => RefundSeen::Done {
                status,
                refund_id,
                refund_fee,
            },
            None => RefundSeen::Pending,
        }
    }
}

/// Whether a refund call's error says the refund **did not happen** (a definite refusal: NOT_ENOUGH,
/// INVALID_REQUEST, a bad signature, a request never sent). Anything else — a timeout, a 5xx, SYSTEM_ERROR,
/// FREQUENCY_LIMITED, an answer that does not verify or parse — may hide an accepted refund: it stays `requested`
/// and is asked again with the same `out_refund_no` (WeChat Pay deduplicates on it).
pub fn refund_refused(e: &wechat_pay::Error) -> bool {
    use wechat_pay::Error;
    match e {
        Error::Api { status, code, .. } => *status < 500 && !code.is_retryable(),
        Error::Business { err_code, .. } => !matches!(
            err_code.as_str(),
            "SYSTEMERROR" | "BIZERR_NEED_RETRY" | "FREQUENCY_LIMITED" | "BANKERROR"
        ),
        Error::ReturnFail { .. } | Error::InvalidRequest { .. } | Error::CertificateRequired | Error::Key(_) => true,
        _ => false,
    }
}

/// The merchant's client for one appid, v2 or v3.
// Both variants are a few hundred bytes, held once in the application state; boxing would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Gateway {
    /// XML, MD5/HMAC-SHA256.
    V2(wechat_pay::PayClient),
    /// JSON, RSA, AES-GCM. One client per merchant; the appid goes into each order.
    V3 {
        /// The merchant's v3 client (shared by its appids).
        client: wechat_pay::v3::Client,
        /// The appid orders are placed with.
        app_id: AppId,
    },
}

/// An order WeChat accepted.
#[derive(Clone, Debug)]
pub struct Placed {
    /// JSAPI (and v2 NATIVE): the prepay id for the payment parameters.
    pub prepay_id: Option<String>,
    /// NATIVE: the code to scan.
    pub code_url: Option<String>,
    /// H5: WeChat's cashier page for a phone browser (`mweb_url` / `h5_url`).
    pub h5_url: Option<String>,
}

/// What WeChat says of an order.
#[derive(Clone, Debug)]
pub struct Queried {
    /// The state.
    pub trade_state: TradeState,
    /// WeChat's number, once paid.
    pub transaction_id: Option<String>,
    /// The amount, fen.
    pub total_fee: Option<u64>,
}

/// A new order, as the routes build it.
#[derive(Clone, Debug)]
pub struct NewPayment<'a> {
    /// What is bought.
    pub description: &'a str,
    /// Our number.
    pub out_trade_no: &'a str,
    /// Fen.
    pub total_fee: u64,
    /// The buyer's address (v2 wants it).
    pub client_ip: &'a str,
    /// JSAPI: the payer's openid; `None`: NATIVE or H5.
    pub openid: Option<&'a str>,
    /// H5 (v2 MWEB, v3 h5): a phone browser outside WeChat.
    pub h5: bool,
    /// Unix seconds after which it takes no payment.
    pub expires_at: i64,
    /// The server's public base URL (the notify addresses hang off it).
    pub public_base_url: &'a str,
}

/// `yyyyMMddHHmmss` in Beijing time, as v2 wants times.
fn beijing_compact(secs: i64) -> String {
    crate::platform::time::beijing_compact(secs)
}

impl Gateway {
    /// The gateway of a product handle: its v2 client when it has a v2 key, else its v3 client.
    pub fn from_pay(pay: &wechat::Pay) -> Option<Gateway> {
        if let Ok(v2) = pay.v2() {
            return Some(Gateway::V2(v2.clone()));
        }
        pay.v3().ok().map(|client| Gateway::V3 {
            client: client.clone(),
            app_id: pay.app_id().clone(),
        })
    }

    /// The appid orders are placed with.
    pub fn app_id(&self) -> &AppId {
        match self {
            Gateway::V2(c) => &c.merchant().app_id,
            Gateway::V3 { app_id, .. } => app_id,
        }
    }

    /// `v2` or `v3`.
    pub fn version(&self) -> &'static str {
        match self {
            Gateway::V2(_) => "v2",
            Gateway::V3 { .. } => "v3",
        }
    }

    /// The v3 client, when this is v3.
    pub fn v3(&self) -> Option<&wechat_pay::v3::Client> {
        match self {
            Gateway::V3 { client, .. } => Some(client),
            Gateway::V2(_) => None,
        }
    }

    /// The v2 client, when this is v2.
    pub fn v2(&self) -> Option<&wechat_pay::PayClient> {
        match self {
            Gateway::V2(c) => Some(c),
            Gateway::V3 { .. } => None,
        }
    }

    /// Checks the order before anything is stored (`Err`: the message for a 400).
    pub fn check(&self, p: &NewPayment<'_>) -> Result<(), String> {
        self.build_v2(p).map(|_| ()).map_err(|e| e.to_string())?;
        if matches!(self, Gateway::V3 { .. }) {
            self.build_v3(p).map(|_| ()).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn build_v2(&self, p: &NewPayment<'_>) -> wechat_pay::Result<wechat_pay::UnifiedOrder> {
        let trade_type = match (p.openid, p.h5) {
            (Some(openid), _) => wechat_pay::TradeType::Jsapi {
                openid: openid.to_owned(),
            },
            (None, true) => wechat_pay::TradeType::Mweb {
                wap_url: p.public_base_url.to_owned(),
                wap_name: url::Url::parse(p.public_base_url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| "wxkit".to_owned()),
            },
            (None, false) => wechat_pay::TradeType::Native {
                product_id: p.out_trade_no.to_owned(),
            },
        };
        wechat_pay::UnifiedOrder::builder()
            .body(p.description)
            .out_trade_no(p.out_trade_no)
            .total_fee(Fen(p.total_fee))
            .client_ip(p.client_ip)
            .notify_url(&format!("{}/wechat/pay/notify", p.public_base_url))
            .trade_type(trade_type)
            .time_expire(&beijing_compact(p.expires_at))
            .build()
    }

    fn build_v3(&self, p: &NewPayment<'_>) -> wechat_pay::Result<wechat_pay::v3::Order> {
        let channel = match (p.openid, p.h5) {
            (Some(openid), _) => wechat_pay::v3::Channel::Jsapi {
                openid: openid.to_owned(),
            },
            (None, true) => wechat_pay::v3::Channel::H5 {
                payer_client_ip: p.client_ip.to_owned(),
            },
            (None, false) => wechat_pay::v3::Channel::Native,
        };
        // v3 allows 127 bytes of description.
        let mut end = p.description.len().min(127);
        while !p.description.is_char_boundary(end) {
            end -= 1;
        }
        Ok(wechat_pay::v3::Order::new(
            self.app_id(),
            &p.description[..end],
            p.out_trade_no,
            Fen(p.total_fee),
            &format!("{}/wechat/pay/v3/notify", p.public_base_url),
            channel,
        )?
        .expires_at(p.expires_at))
    }

    /// Places the order at WeChat.
    pub async fn place(&self, p: &NewPayment<'_>) -> wechat_pay::Result<Placed> {
        match self {
            Gateway::V2(c) => {
                let prepay = c.unified_order(&self.build_v2(p)?).await?;
                Ok(Placed {
                    prepay_id: Some(prepay.prepay_id),
                    code_url: prepay.code_url,
                    h5_url: prepay.mweb_url,
                })
            }
            Gateway::V3 { client, .. } => match client.prepay(&self.build_v3(p)?).await? {
                wechat_pay::v3::Prepay::PrepayId(id) => Ok(Placed {
                    prepay_id: Some(id),
                    code_url: None,
                    h5_url: None,
                }),
                // NATIVE orders have no prepay id in v3: the code stands for the order.
                wechat_pay::v3::Prepay::CodeUrl(url) => Ok(Placed {
                    prepay_id: None,
                    code_url: Some(url),
                    h5_url: None,
                }),
                wechat_pay::v3::Prepay::H5Url(url) => Ok(Placed {
                    prepay_id: None,
                    code_url: None,
                    h5_url: Some(url),
                }),
                _ => Err(wechat_pay::Error::MissingField("prepay_id")),
            },
        }
    }

    /// `wx.requestPayment` parameters (v2: HMAC-SHA256; v3: RSA).
    pub fn pay_params(&self, prepay_id: &str, timestamp: i64) -> JsapiPayParams {
        match self {
            Gateway::V2(c) => c.jsapi_params(prepay_id, timestamp),
            Gateway::V3 { client, app_id } => client.jsapi_params(app_id, prepay_id, timestamp),
        }
    }

    /// Asks WeChat about an order.
    pub async fn query(&self, out_trade_no: &str) -> wechat_pay::Result<Queried> {
        let order = OrderRef::OutTradeNo(out_trade_no.to_owned());
        match self {
            Gateway::V2(c) => {
                let s = c.order_query(&order).await?;
                Ok(Queried {
                    trade_state: s.trade_state,
                    transaction_id: s.transaction_id,
                    total_fee: s.total_fee.map(|f| f.0),
                })
            }
            Gateway::V3 { client, .. } => {
                let t = client.query(&order).await?;
                Ok(Queried {
                    trade_state: t.trade_state,
                    transaction_id: t.transaction_id,
                    total_fee: t.amount.map(|a| a.total),
                })
            }
        }
    }

    /// Closes an unpaid order at WeChat.
    pub async fn close(&self, out_trade_no: &str) -> wechat_pay::Result<()> {
        match self {
            Gateway::V2(c) => c.close_order(out_trade_no).await,
            Gateway::V3 { client, .. } => client.close(out_trade_no).await,
        }
    }

    /// A Beijing day's trade bill (`YYYY-MM-DD`); a day without trades is an empty bill.
    pub async fn trade_bill(&self, date: &str) -> wechat_pay::Result<wechat_pay::bill::TradeBill> {
        match self {
            Gateway::V2(c) => c.download_bill(date).await,
            Gateway::V3 { client, .. } => client.trade_bill(date).await,
        }
    }

    /// A day's bill as WeChat serves it (trade or fund flow; v2 has the trade bill only).
    pub async fn raw_bill(&self, date: &str, fund_flow: bool) -> wechat_pay::Result<String> {
        match (self, fund_flow) {
            (Gateway::V2(c), false) => {
                c.send(&wechat_pay::bill::DownloadBill::new(
                    date,
                    wechat_pay::bill::BillType::All,
                )?)
                .await
            }
            (Gateway::V2(_), true) => Err(wechat_pay::Error::InvalidRequest {
                message: "the fund-flow bill is a v3 call: set pay.api_version = \"v3\"".into(),
            }),
            (Gateway::V3 { client, .. }, fund_flow) => {
                let kind = if fund_flow {
                    wechat_pay::v3::request::BillKind::FundFlow
                } else {
                    wechat_pay::v3::request::BillKind::Trade
                };
                client.bill(date, kind, true).await
            }
        }
    }

    /// What WeChat knows of a refund (v3: by our refund number; v2: among the order's refunds).
    pub async fn refund_lookup(&self, out_trade_no: &str, out_refund_no: &str) -> wechat_pay::Result<RefundSeen> {
        let missing = |e: &wechat_pay::Error| matches!(e.err_code(), Some("RESOURCE_NOT_EXISTS" | "REFUNDNOTEXIST"));
        match self {
            Gateway::V2(c) => match c.refund_query(&OrderRef::OutTradeNo(out_trade_no.to_owned())).await {
                Ok(refunds) => Ok(refunds.into_iter().find(|r| r.out_refund_no == out_refund_no).map_or(
                    RefundSeen::Missing,
                    |r| {
                        let status = match r.refund_status.as_str() {
                            "SUCCESS" => Some("succeeded"),
                            "REFUNDCLOSE" => Some("closed"),
                            _ => None,
                        };
                        RefundSeen::from_state(status, r.refund_id, r.refund_fee.0)
                    },
                )),
                Err(e) if missing(&e) => Ok(RefundSeen::Missing),
                Err(e) => Err(e),
            },
            Gateway::V3 { client, .. } => match client.refund_query(out_refund_no).await {
                Ok(r) => {
                    let status = match r.status {
                        wechat_pay::v3::RefundState::Success => Some("succeeded"),
                        wechat_pay::v3::RefundState::Closed => Some("closed"),
                        _ => None,
                    };
                    Ok(RefundSeen::from_state(status, r.refund_id, r.amount.refund))
                }
                Err(e) if missing(&e) => Ok(RefundSeen::Missing),
                Err(e) => Err(e),
            },
        }
    }

    /// Asks WeChat to refund; returns WeChat's refund id. The notify settles it.
    pub async fn refund(
        &self,
        out_trade_no: &str,
        out_refund_no: &str,
        total_fee: u64,
        refund_fee: u64,
        reason: Option<&str>,
        public_base_url: &str,
    ) -> wechat_pay::Result<String> {
        let order = OrderRef::OutTradeNo(out_trade_no.to_owned());
        match self {
            Gateway::V2(c) => {
                let mut r = wechat_pay::Refund::new(order, out_refund_no, Fen(total_fee), Fen(refund_fee))?
                    .notify_url(&format!("{public_base_url}/wechat/pay/refund-notify"))?;
                if let Some(reason) = reason {
                    r = r.refund_desc(reason);
                }
                Ok(c.refund(&r).await?.refund_id)
            }
            Gateway::V3 { client, .. } => {
                let mut r = wechat_pay::v3::RefundRequest::new(order, out_refund_no, Fen(refund_fee), Fen(total_fee))?
                    .notify_url(&format!("{public_base_url}/wechat/pay/v3/notify"))?;
                if let Some(reason) = reason {
                    r = r.reason(reason)?;
                }
                Ok(client.refund(&r).await?.refund_id)
            }
        }
    }
}
