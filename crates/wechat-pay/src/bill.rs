//! Bills (对账单): WeChat Pay's daily trade bill, as v2 `downloadbill` and v3 `tradebill` deliver it, read into rows.
//!
//! The format (WeChat Pay's "下载交易账单" documentation): a header line of column names; one line per trade, every
//! field prefixed with a backtick (`` ` ``) so spreadsheets keep long numbers as text; then a summary header
//! (`总交易单数,…`) and one summary line. Columns are found by name, so the older layout (总金额) and the current one
//! (应结订单金额 … 订单金额) both read. Amounts are yuan with two decimals; rows carry them in fen.
//!
//! ```
//! let text = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n\
//! `2026-12-04 10:00:00,`wx8888888888888888,`1900000109,`0,`,`4200000001202612040000000001,`ORDER1,`o-user,`NATIVE,`SUCCESS,`OTHERS,`CNY,`9.90,`0.00,`0,`0,`0.00,`0.00,`,`,`拿铁,`,`0.06000,`0.60%,`9.90,`0.00,`\n\
//! 总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n\
//! `1,`9.90,`0.00,`0.00,`0.06000,`9.90,`0.00\n";
//! let bill = wechat_pay::bill::TradeBill::parse(text)?;
//! assert_eq!(bill.rows[0].out_trade_no, "ORDER1");
//! assert_eq!(bill.rows[0].total_fee, 990);
//! assert_eq!(bill.count, 1);
//! # Ok::<(), wechat_pay::bill::BillError>(())
//! ```

use crate::error::{Error, Result};
use crate::request::PayRequest;
use crate::types::Merchant;
use crate::xml::Fields;
use std::collections::HashMap;
use wechat_core::transport::HttpResponse;

/// Why a bill could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BillError {
    /// No header line, or a column the bill must have is missing.
    #[error("not a WeChat Pay trade bill: {0}")]
    Format(String),
    /// A line could not be read.
    #[error("bill line {line}: {message}")]
    Line {
        /// 1-based.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One line of a trade bill: a payment (`SUCCESS`), a refund (`REFUND`), or another state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TradeBillRow {
    /// `交易时间`, Beijing time (`yyyy-MM-dd HH:mm:ss`).
    pub time: String,
    /// `公众账号ID`.
    pub appid: String,
    /// `微信订单号`.
    pub transaction_id: String,
    /// `商户订单号`.
    pub out_trade_no: String,
    /// `交易类型`: JSAPI, NATIVE, MWEB/H5, APP…
    pub trade_type: String,
    /// `交易状态`: SUCCESS, REFUND, REVOKED…
    pub trade_state: String,
    /// The order's amount in fen (`订单金额`, else `总金额` / `应结订单金额`).
    pub total_fee: u64,
    /// `微信退款单号` (refund lines).
    pub refund_id: String,
    /// `商户退款单号` (refund lines).
    pub out_refund_no: String,
    /// The refund's amount in fen (`申请退款金额`, else `退款金额`; refund lines).
    pub refund_fee: u64,
    /// `退款状态`: SUCCESS, PROCESSING… (refund lines).
    pub refund_status: String,
}

/// A trade bill: its rows and its summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TradeBill {
    /// The lines, in the bill's order.
    pub rows: Vec<TradeBillRow>,
    /// `总交易单数`, as the summary states it.
    pub count: u64,
}

/// Yuan with up to two decimals (`9.90`, `0.0`, `12`) to fen.
pub fn yuan_to_fen(s: &str) -> Option<u64> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 2 {
        return None;
    }
    let cents: u64 = format!("{frac:0<2}").parse().ok()?;
    whole.parse::<u64>().ok()?.checked_mul(100)?.checked_add(cents)
}

fn fields_of(line: &str) -> Vec<String> {
    line.split(',')
        .map(|f| f.trim().trim_start_matches('`').trim().to_owned())
        .collect()
}

impl TradeBill {
    /// Reads a trade bill's text.
    pub fn parse(text: &str) -> Result<TradeBill, BillError> {
        let text = text.trim_start_matches('\u{feff}');
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header)) = lines.next() else {
            return Err(BillError::Format("the bill is empty".into()));
        };
        let columns: HashMap<String, usize> = fields_of(header)
            .into_iter()
            .enumerate()
            .map(|(i, name)| (name, i))
            .collect();
        let col = |names: &[&str]| names.iter().find_map(|n| columns.get(*n).copied());
        let need =
            |names: &[&str]| col(names).ok_or_else(|| BillError::Format(format!("no {} column", names.join(" / "))));
        let time = need(&["交易时间"])?;
        let out_trade_no = need(&["商户订单号"])?;
        let transaction_id = need(&["微信订单号"])?;
        let trade_state = need(&["交易状态"])?;
        let total = need(&["订单金额", "总金额", "应结订单金额"])?;
        let appid = col(&["公众账号ID"]);
        let trade_type = col(&["交易类型"]);
        let refund_id = col(&["微信退款单号"]);
        let out_refund_no = col(&["商户退款单号"]);
        let refund_fee = col(&["申请退款金额", "退款金额"]);
        let refund_status = col(&["退款状态"]);
        let mut bill = TradeBill::default();
        while let Some((n, line)) = lines.next() {
            if line.starts_with("总交易单数") {
                if let Some((_, summary)) = lines.next() {
                    bill.count = fields_of(summary).first().and_then(|c| c.parse().ok()).unwrap_or(0);
                }
                break;
            }
            let f = fields_of(line);
            let get = |i: Option<usize>| i.and_then(|i| f.get(i)).cloned().unwrap_or_default();
            let fen = |i: Option<usize>, what: &str| {
                let v = get(i);
                if v.is_empty() {
                    return Ok(0);
                }
                yuan_to_fen(&v).ok_or_else(|| BillError::Line {
                    line: n + 1,
                    message: format!("{what} {v:?} is not an amount"),
                })
            };
            if f.len() <= out_trade_no.max(trade_state) {
                return Err(BillError::Line {
                    line: n + 1,
                    message: "too few fields".into(),
                });
            }
            bill.rows.push(TradeBillRow {
                time: get(Some(time)),
                appid: get(appid),
                transaction_id: get(Some(transaction_id)),
                out_trade_no: get(Some(out_trade_no)),
                trade_type: get(trade_type),
                trade_state: get(Some(trade_state)),
                total_fee: fen(Some(total), "the order amount")?,
                refund_id: get(refund_id)
                    .trim_matches('0')
                    .is_empty()
                    .then(String::new)
                    .unwrap_or_else(|| get(refund_id)),
                out_refund_no: get(out_refund_no)
                    .trim_matches('0')
                    .is_empty()
                    .then(String::new)
                    .unwrap_or_else(|| get(out_refund_no)),
                refund_fee: fen(refund_fee, "the refund amount")?,
                refund_status: get(refund_status),
            });
        }
        Ok(bill)
    }
}

/// The bill types of `downloadbill` / `tradebill`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillType {
    /// Every trade of the day (payments and refunds).
    All,
    /// Payments only.
    Success,
    /// Refunds only.
    Refund,
}

impl BillType {
    /// WeChat's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BillType::All => "ALL",
            BillType::Success => "SUCCESS",
            BillType::Refund => "REFUND",
        }
    }
}

/// v2 `POST /pay/downloadbill`: the day's trade bill as text. Its answer is the bill itself (not signed, not XML), or
/// an XML `return_code` FAIL — "No Bill Exist" (`error_code` 20002) for a day without trades, which
/// [`PayClient::download_bill`](crate::PayClient::download_bill) turns into an empty bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadBill {
    /// `yyyyMMdd`, Beijing date.
    pub bill_date: String,
    /// Which trades.
    pub bill_type: BillType,
}

impl DownloadBill {
    /// The bill of `date` (`YYYY-MM-DD` or `yyyyMMdd`).
    pub fn new(date: &str, bill_type: BillType) -> Result<DownloadBill> {
        let compact: String = date.chars().filter(|c| *c != '-').collect();
        if compact.len() != 8 || !compact.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid("a bill date is YYYY-MM-DD"));
        }
        Ok(DownloadBill {
            bill_date: compact,
            bill_type,
        })
    }
}

impl PayRequest for DownloadBill {
    type Response = String;

    fn path(&self) -> &'static str {
        "/pay/downloadbill"
    }

    fn fields(&self) -> Fields {
        let mut f = Fields::new();
        f.insert("bill_date".into(), self.bill_date.clone());
        f.insert("bill_type".into(), self.bill_type.as_str().into());
        f
    }

    fn read(&self, _fields: Fields) -> Result<String> {
        Err(Error::MissingField("bill text"))
    }

    /// The bill text, or the XML refusal as [`Error::ReturnFail`] (`return_msg` "No Bill Exist" for a quiet day).
    fn parse(&self, _merchant: &Merchant, response: &HttpResponse) -> Result<String> {
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(wechat_core::Error::HttpStatus { status }.into());
        }
        let body = response.body();
        if body.trim_ascii_start().starts_with(b"<xml") {
            let f = crate::xml::parse(body)?;
            return Err(Error::ReturnFail {
                return_msg: f.get("return_msg").cloned().unwrap_or_default(),
            });
        }
        String::from_utf8(body.clone()).map_err(|_| Error::MissingField("a UTF-8 bill"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample of WeChat Pay's v2 `downloadbill` documentation (older layout: 总金额, no 订单金额 column).
    const DOC_SAMPLE: &str = "交易时间,公众账号ID,商户号,子商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,总金额,代金券或立减优惠金额,微信退款单号,商户退款单号,退款金额,代金券或立减优惠退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率
`2014-11-10 16:33:45,`wx2421b1c4370ec43b,`10000100,`0,`1000,`1001690740201411100005734289,`1415640626,`085e9858e3ba5186aafcbaed1,`MICROPAY,`SUCCESS,`CFT,`CNY,`0.01,`0.0,`0,`0,`0,`0,`,`,`被扫支付测试,`订单额外描述,`0,`0.60%
`2014-11-10 16:46:14,`wx2421b1c4370ec43b,`10000100,`0,`1000,`1002780740201411100005729794,`1415635270,`085e9858e90ca40c0b5aee463,`MICROPAY,`SUCCESS,`CFT,`CNY,`0.01,`0.0,`0,`0,`0,`0,`,`,`被扫支付测试,`订单额外描述,`0,`0.60%
总交易单数,总交易额,总退款金额,总代金券或立减优惠退款金额,手续费总金额
`2,`0.02,`0.0,`0.0,`0
";

    #[test]
    fn the_documented_sample_reads() {
        let bill = TradeBill::parse(DOC_SAMPLE).unwrap();
        assert_eq!(bill.count, 2);
        assert_eq!(bill.rows.len(), 2);
        let r = &bill.rows[0];
        assert_eq!(
            (
                r.out_trade_no.as_str(),
                r.transaction_id.as_str(),
                r.trade_state.as_str(),
                r.total_fee
            ),
            ("1415640626", "1001690740201411100005734289", "SUCCESS", 1)
        );
        assert_eq!((r.out_refund_no.as_str(), r.refund_fee), ("", 0));
    }

    #[test]
    fn refund_lines_and_bad_input() {
        let text = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注
`2026-12-04 11:00:00,`wx1,`1900000109,`0,`,`4200,`O1,`o-u,`NATIVE,`REFUND,`OTHERS,`CNY,`9.90,`0.00,`5030,`R1,`9.90,`0.00,`ORIGINAL,`SUCCESS,`拿铁,`,`-0.06000,`0.60%,`9.90,`9.90,`
总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额
`1,`0.00,`9.90,`0.00,`-0.06000,`0.00,`9.90
";
        let bill = TradeBill::parse(text).unwrap();
        let r = &bill.rows[0];
        assert_eq!(
            (
                r.trade_state.as_str(),
                r.out_refund_no.as_str(),
                r.refund_fee,
                r.refund_status.as_str()
            ),
            ("REFUND", "R1", 990, "SUCCESS")
        );
        assert!(matches!(TradeBill::parse(""), Err(BillError::Format(_))));
        assert!(matches!(TradeBill::parse("a,b\n`1,`2\n"), Err(BillError::Format(_))));
        let bad = text.replace("`9.90,`9.90,`\n", "`9.9x,`9.90,`\n");
        assert_ne!(bad, text);
        assert!(matches!(TradeBill::parse(&bad), Err(BillError::Line { line: 2, .. })));
        assert_eq!(yuan_to_fen("9.90"), Some(990));
        assert_eq!(yuan_to_fen("0.0"), Some(0));
        assert_eq!(yuan_to_fen("12"), Some(1200));
        assert_eq!(yuan_to_fen("1.005"), None);
        assert_eq!(yuan_to_fen("-1"), None);
    }
}
