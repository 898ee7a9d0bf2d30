//! Bills from the order book, in WeChat Pay's format: v2 `POST /pay/downloadbill` answers the text (or an XML
//! `return_code` FAIL "No Bill Exist" for a day without trades); v3 `GET /v3/bill/tradebill` and
//! `/v3/bill/fundflowbill` answer a signed `{hash_type, hash_value, download_url}` (400 `NO_STATEMENT_EXIST` for a
//! quiet day), and the file comes from a signed `GET` of `download_url`, unsigned, gzipped with `tar_type=GZIP`.
//!
//! The text: a header line of column names, one line per trade with every field prefixed by a backtick, a summary
//! header and a summary line — WeChat Pay's "下载交易账单" / "下载资金账单" layout. Payments are listed on the Beijing day
//! they were paid, refunds on the day they succeeded.

use crate::pay::{PayOrder, authenticate, return_fail};
use crate::pay_v3::{answer, error};
use crate::state::{SimHandle, World, random_string};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use sha1::Digest as _;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/pay/downloadbill", web::post().to(download_bill_v2))
        .route("/v3/bill/tradebill", web::get().to(trade_bill_v3))
        .route("/v3/bill/fundflowbill", web::get().to(fund_flow_bill_v3))
        .route("/v3/billdownload/file", web::get().to(download_file));
}

const TRADE_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
const TRADE_SUMMARY: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";
const FUND_HEADER: &str = "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额（元）,账户结余（元）,资金变更提交申请人,备注,业务凭证号";
const FUND_SUMMARY: &str = "资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额";

/// `yyyyMMddHHmmss`, `yyyy-MM-dd HH:mm:ss` or RFC 3339 (Beijing) as `yyyy-MM-dd HH:mm:ss`.
fn bill_time(s: &str) -> Option<String> {
    let digits: String = s.chars().filter(char::is_ascii_digit).take(14).collect();
    (digits.len() == 14).then(|| {
        format!(
            "{}-{}-{} {}:{}:{}",
            &digits[..4],
            &digits[4..6],
            &digits[6..8],
            &digits[8..10],
            &digits[10..12],
            &digits[12..14]
        )
    })
}

fn yuan(fen: u64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// A line's fields, each behind a backtick.
fn line(fields: &[String]) -> String {
    fields.iter().map(|f| format!("`{f}")).collect::<Vec<_>>().join(",")
}

/// What happened on `date` (`YYYY-MM-DD`) for the merchant: (time, order, Some(refund index)) in time order.
fn events<'a>(w: &'a World, mch_id: &str, date: &str) -> Vec<(String, &'a PayOrder, Option<usize>)> {
    let mut out = Vec::new();
    for o in w.pay_orders.values().filter(|o| o.mch_id == mch_id) {
        if !o.transaction_id.is_empty()
            && let Some(t) = bill_time(&o.time_end)
            && t.starts_with(date)
        {
            out.push((t, o, None));
        }
        for (i, r) in o.refunds.iter().enumerate() {
            if r.status == "SUCCESS"
                && let Some(t) = bill_time(&r.success_time)
                && t.starts_with(date)
            {
                out.push((t, o, Some(i)));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The trade bill of `date`, or `None` when nothing happened.
pub(crate) fn trade_bill(w: &World, mch_id: &str, date: &str) -> Option<String> {
    let events = events(w, mch_id, date);
    if events.is_empty() {
        return None;
    }
    let mut text = format!("{TRADE_HEADER}\n");
    let (mut paid, mut refunded, mut fees) = (0u64, 0u64, 0i64);
    for (time, o, refund) in &events {
        // 0.6 % fee, in units of 0.00001 yuan as the bill writes it.
        let fee = i64::try_from(o.total_fee * 600).unwrap_or(0);
        let (state, refund_id, out_refund_no, refund_fee, refund_status, fee) = match refund {
            None => {
                paid += o.total_fee;
                ("SUCCESS", "0".to_owned(), "0".to_owned(), 0, String::new(), fee)
            }
            Some(i) => {
                let r = &o.refunds[*i];
                refunded += r.refund_fee;
                let back = -i64::try_from(r.refund_fee * 600).unwrap_or(0);
                (
                    "REFUND",
                    r.refund_id.clone(),
                    r.out_refund_no.clone(),
                    r.refund_fee,
                    "SUCCESS".to_owned(),
                    back,
                )
            }
        };
        fees += fee;
        let fields = [
            time.clone(),
            o.appid.clone(),
            o.mch_id.clone(),
            "0".into(),
            String::new(),
            o.transaction_id.clone(),
            o.out_trade_no.clone(),
            o.openid.clone(),
            o.trade_type.clone(),
            state.into(),
            "OTHERS".into(),
            "CNY".into(),
            yuan(o.total_fee),
            "0.00".into(),
            refund_id,
            out_refund_no,
            yuan(refund_fee),
            "0.00".into(),
            if refund.is_some() {
                "ORIGINAL".into()
            } else {
                String::new()
            },
            refund_status,
            o.body.clone(),
            o.attach.clone(),
            format!(
                "{}{}.{:05}",
                if fee < 0 { "-" } else { "" },
                fee.unsigned_abs() / 100_000,
                fee.unsigned_abs() % 100_000
            ),
            "0.60%".into(),
            yuan(o.total_fee),
            yuan(refund_fee),
            String::new(),
        ];
        text.push_str(&line(&fields));
        text.push('\n');
    }
    let fee_total = format!(
        "{}{}.{:05}",
        if fees < 0 { "-" } else { "" },
        fees.unsigned_abs() / 100_000,
        fees.unsigned_abs() % 100_000
    );
    text.push_str(TRADE_SUMMARY);
    text.push('\n');
    text.push_str(&line(&[
        events.len().to_string(),
        yuan(paid),
        yuan(refunded),
        "0.00".into(),
        fee_total,
        yuan(paid),
        yuan(refunded),
    ]));
    text.push('\n');
    Some(text)
}

/// The fund-flow bill of `date` (the basic account: payments in, refunds out), or `None`.
pub(crate) fn fund_flow_bill(w: &World, mch_id: &str, date: &str) -> Option<String> {
    let events = events(w, mch_id, date);
    if events.is_empty() {
        return None;
    }
    let mut text = format!("{FUND_HEADER}\n");
    let (mut balance, mut ins, mut in_fen, mut outs, mut out_fen) = (0i64, 0u32, 0u64, 0u32, 0u64);
    for (time, o, refund) in &events {
        let (no, name, kind, dir, fen) = match refund {
            None => (o.transaction_id.clone(), "交易", "交易", "收入", o.total_fee),
            Some(i) => (
                o.refunds[*i].refund_id.clone(),
                "退款",
                "退款",
                "支出",
                o.refunds[*i].refund_fee,
            ),
        };
        let signed = i64::try_from(fen).unwrap_or(0);
        if dir == "收入" {
            balance += signed;
            (ins, in_fen) = (ins + 1, in_fen + fen);
        } else {
            balance -= signed;
            (outs, out_fen) = (outs + 1, out_fen + fen);
        }
        let fields = [
            time.clone(),
            no,
            format!(
                "{}{}",
                time.replace(['-', ' ', ':'], ""),
                random_string(8).to_ascii_lowercase()
            ),
            name.into(),
            kind.into(),
            dir.into(),
            yuan(fen),
            format!("{}{}", if balance < 0 { "-" } else { "" }, yuan(balance.unsigned_abs())),
            "system".into(),
            String::new(),
            o.out_trade_no.clone(),
        ];
        text.push_str(&line(&fields));
        text.push('\n');
    }
    text.push_str(FUND_SUMMARY);
    text.push('\n');
    text.push_str(&line(&[
        (ins + outs).to_string(),
        ins.to_string(),
        yuan(in_fen),
        outs.to_string(),
        yuan(out_fen),
    ]));
    text.push('\n');
    Some(text)
}

/// `yyyyMMdd` as `yyyy-MM-dd`.
fn dashed(compact: &str) -> Option<String> {
    (compact.len() == 8 && compact.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{}-{}-{}", &compact[..4], &compact[4..6], &compact[6..]))
}

async fn download_bill_v2(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let w = sim.world();
    let a = match authenticate(&w, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(date) = a.fields.get("bill_date").and_then(|d| dashed(d)) else {
        return return_fail("invalid bill_date");
    };
    match trade_bill(&w, &a.mch_id, &date) {
        Some(text) => HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(text),
        None => {
            let mut f = wechat_core::xml::Fields::new();
            f.insert("return_code".into(), "FAIL".into());
            f.insert("return_msg".into(), "No Bill Exist".into());
            f.insert("error_code".into(), "20002".into());
            HttpResponse::Ok()
                .content_type("text/xml; charset=utf-8")
                .body(wechat_core::xml::to_xml(&f))
        }
    }
}

async fn trade_bill_v3(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    bill_v3(req, body, sim, true).await
}

async fn fund_flow_bill_v3(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    bill_v3(req, body, sim, false).await
}

async fn bill_v3(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>, trade: bool) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = match crate::pay_v3::authenticate(&mut w, &req, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let q: std::collections::HashMap<String, String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let date = q.get("bill_date").cloned().unwrap_or_default();
    if date.len() != 10 || bill_time(&format!("{date} 00:00:00")).is_none() {
        return error(400, "PARAM_ERROR", "bill_date 格式错误，应为 yyyy-MM-dd");
    }
    let text = if trade {
        trade_bill(&w, &mch_id, &date)
    } else {
        fund_flow_bill(&w, &mch_id, &date)
    };
    let Some(text) = text else {
        return error(400, "NO_STATEMENT_EXIST", "账单文件不存在");
    };
    let bytes = if q.get("tar_type").map(String::as_str) == Some("GZIP") {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        if gz.write_all(text.as_bytes()).is_err() {
            return error(500, "SYSTEM_ERROR", "gzip failed");
        }
        match gz.finish() {
            Ok(b) => b,
            Err(_) => return error(500, "SYSTEM_ERROR", "gzip failed"),
        }
    } else {
        text.into_bytes()
    };
    let hash = wechat_core::encoding::hex_lower(&sha1::Sha1::digest(&bytes));
    let token = random_string(32);
    w.bill_files.insert(token.clone(), (mch_id.clone(), bytes));
    let info = req.connection_info().clone();
    let url = format!("{}://{}/v3/billdownload/file?token={token}", info.scheme(), info.host());
    answer(
        &mut w,
        &mch_id,
        200,
        Some(&json!({"hash_type": "SHA1", "hash_value": hash, "download_url": url})),
    )
}

async fn download_file(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = match crate::pay_v3::authenticate(&mut w, &req, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let token = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    match w.bill_files.get(&token) {
        // The file itself is not signed: its hash came in the signed answer.
        Some((owner, bytes)) if *owner == mch_id => {
            let mut bytes = bytes.clone();
            if w.bill_tamper > 0 {
                // A fault: the file changed on its way (what the hash check is for).
                w.bill_tamper -= 1;
                if let Some(b) = bytes.last_mut() {
                    *b ^= 0x01;
                }
            }
            HttpResponse::Ok().content_type("application/octet-stream").body(bytes)
        }
        _ => error(404, "RESOURCE_NOT_EXISTS", "账单文件不存在或已过期"),
    }
}

impl SimHandle {
    /// The next `n` bill downloads arrive with one byte changed (their hash no longer matches).
    pub fn tamper_bill_downloads(&self, n: u32) {
        self.world().bill_tamper = n;
    }
}
