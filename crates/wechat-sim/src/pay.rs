//! WeChat Pay v2: `/pay/unifiedorder`, `/pay/orderquery`, `/pay/closeorder`, `/secapi/pay/refund`,
//! `/pay/refundquery`, and the notifier that delivers signed payment notifies and encrypted refund notifies with
//! WeChat's retry schedule (on the simulated clock).

use crate::control::bad_request;
use crate::state::{SimHandle, World, random_string};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wechat_pay::sign::{PayKey, SignType, sign_fields, verify};
use wechat_pay::xml::{self, Fields};

/// Seconds between delivery attempts after each failure (WeChat: 15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h).
pub const NOTIFY_SCHEDULE: [i64; 15] = [
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
];

/// An order in the simulator.
#[derive(Clone, Debug)]
pub(crate) struct PayOrder {
    pub mch_id: String,
    pub appid: String,
    pub out_trade_no: String,
    /// What is bought (`body`).
    pub body: String,
    pub total_fee: u64,
    /// Unix seconds after which the order takes no payment (`time_expire`).
    pub time_expire: Option<i64>,
    pub trade_type: String,
    pub openid: String,
    pub attach: String,
    pub notify_url: String,
    pub fingerprint: String,
    pub created_at: i64,
    pub prepay_id: String,
    pub code_url: String,
    pub state: &'static str,
    pub transaction_id: String,
    pub time_end: String,
    pub sign_type: SignType,
    pub refunds: Vec<PayRefund>,
    /// Placed through v3 (JSON, RSA): its notifies are v3's.
    pub v3: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct PayRefund {
    pub out_refund_no: String,
    pub refund_id: String,
    pub refund_fee: u64,
    pub success_time: String,
    /// SUCCESS, or ABNORMAL (v3 fault).
    pub status: &'static str,
}

/// A notify or server push the simulator delivers (or keeps trying to).
#[derive(Clone, Debug, Serialize)]
pub struct Notification {
    /// `payment`, `refund` (Pay notifies) or `push` (official-account server push).
    pub kind: &'static str,
    /// For pushes: the event (`user_get_card`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Where it goes.
    pub url: String,
    /// The order.
    pub out_trade_no: String,
    /// The refund, for refund notifies.
    pub out_refund_no: Option<String>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// True once the receiver answered SUCCESS.
    pub delivered: bool,
    /// True after the whole schedule failed.
    pub abandoned: bool,
    /// Simulated time of the next attempt.
    pub next_at: i64,
    /// `v2` or `v3`.
    pub api: &'static str,
    #[serde(skip)]
    pub(crate) body: String,
    #[serde(skip)]
    pub(crate) in_flight: bool,
    /// v3: the merchant whose keys sign each delivery.
    #[serde(skip)]
    pub(crate) v3_mch: Option<String>,
    /// v3: the `Wechatpay-*` headers of the last delivery (tests replay it).
    #[serde(skip)]
    pub(crate) last_headers: Vec<(&'static str, String)>,
    /// Pushes: the body the server answered the delivery that was accepted with (a passive reply, `success`…).
    #[serde(skip)]
    pub(crate) reply: Option<String>,
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/pay/unifiedorder", web::post().to(unified_order))
        .route("/pay/orderquery", web::post().to(order_query))
        .route("/pay/closeorder", web::post().to(close_order))
        .route("/secapi/pay/refund", web::post().to(refund))
        .route("/pay/refundquery", web::post().to(refund_query))
        .route("/_sim/merchants", web::post().to(add_merchant))
        .route("/_sim/pay/orders/{out_trade_no}/pay", web::post().to(control_pay))
        .route("/_sim/pay/notifications", web::get().to(list_notifications))
        .route("/_sim/pay/faults", web::post().to(pay_faults));
}

/// Formats Unix seconds as Beijing time: `yyyyMMddHHmmss`, or `yyyy-MM-dd HH:mm:ss` with `separators`.
pub(crate) fn beijing_time(ts: i64, separators: bool) -> String {
    let t = ts + 8 * 3600;
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm, ss) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if separators {
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
    } else {
        format!("{y:04}{m:02}{d:02}{hh:02}{mm:02}{ss:02}")
    }
}

/// Parses Beijing time `yyyyMMddHHmmss` into Unix seconds (`None` when empty or malformed).
pub(crate) fn parse_beijing(s: &str) -> Option<i64> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(8..10)?, n(10..12)?, n(12..14)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    // Days-from-civil (Howard Hinnant's algorithm), the inverse of `beijing_time`.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - 8 * 3600)
}

fn xml_response(fields: &Fields) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(xml::to_xml(fields))
}

pub(crate) fn return_fail(message: &str) -> HttpResponse {
    let mut f = Fields::new();
    f.insert("return_code".into(), "FAIL".into());
    f.insert("return_msg".into(), message.into());
    xml_response(&f)
}

/// A checked, authenticated request.
pub(crate) struct Authed {
    pub(crate) fields: Fields,
    pub(crate) mch_id: String,
    appid: String,
    key: PayKey,
    sign_type: SignType,
}

/// Parses the XML, finds the merchant and verifies the signature; `Err` is the finished FAIL response.
pub(crate) fn authenticate(w: &World, body: &[u8]) -> Result<Authed, HttpResponse> {
    let fields = xml::parse(body).map_err(|_| return_fail("XML_FORMAT_ERROR: XML格式错误"))?;
    let mch_id = fields
        .get("mch_id")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| return_fail("mch_id 不能为空"))?;
    let key = w
        .merchants
        .get(mch_id)
        .ok_or_else(|| return_fail("mch_id 参数格式错误"))?;
    let sign_type = match fields.get("sign_type").map(String::as_str) {
        None | Some("") | Some("MD5") => SignType::Md5,
        Some("HMAC-SHA256") => SignType::HmacSha256,
        Some(_) => return Err(return_fail("sign_type 参数格式错误")),
    };
    if fields.get("nonce_str").is_none_or(String::is_empty) {
        return Err(return_fail("nonce_str 不能为空"));
    }
    let key = PayKey::new(key.clone());
    verify(&fields, &key, sign_type).map_err(|_| return_fail("SIGNERROR: 签名错误"))?;
    Ok(Authed {
        appid: fields.get("appid").cloned().unwrap_or_default(),
        mch_id: mch_id.clone(),
        fields,
        key,
        sign_type,
    })
}

/// A signed response (`return_code` SUCCESS) with `result_code` SUCCESS plus `extra`, or FAIL with `err`.
fn signed(w: &mut World, a: &Authed, err: Option<(&str, &str)>, extra: &[(&str, String)]) -> HttpResponse {
    let mut f = Fields::new();
    f.insert("return_code".into(), "SUCCESS".into());
    f.insert("return_msg".into(), "OK".into());
    f.insert("appid".into(), a.appid.clone());
    f.insert("mch_id".into(), a.mch_id.clone());
    f.insert("nonce_str".into(), random_string(32));
    match err {
        None => {
            f.insert("result_code".into(), "SUCCESS".into());
        }
        Some((code, des)) => {
            f.insert("result_code".into(), "FAIL".into());
            f.insert("err_code".into(), code.into());
            f.insert("err_code_des".into(), des.into());
        }
    }
    for (k, v) in extra {
        f.insert((*k).into(), v.clone());
    }
    if a.sign_type == SignType::HmacSha256 {
        f.insert("sign_type".into(), "HMAC-SHA256".into());
    }
    let mut sign = sign_fields(&f, &a.key, a.sign_type);
    if w.pay_bad_sign > 0 {
        w.pay_bad_sign -= 1;
        // A forged response: flip the first character of the sign.
        sign = format!("{}{}", if sign.starts_with('0') { '1' } else { '0' }, &sign[1..]);
    }
    f.insert("sign".into(), sign);
    xml_response(&f)
}

fn get<'a>(f: &'a Fields, k: &str) -> &'a str {
    f.get(k).map(String::as_str).unwrap_or("")
}

fn valid_out_no(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*'))
}

async fn unified_order(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut w = sim.world();
    let a = match authenticate(&w, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let f = &a.fields;
    if !w.apps.contains_key(&a.appid) {
        return signed(&mut w, &a, Some(("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")), &[]);
    }
    let trade_type = get(f, "trade_type");
    let mut required = vec![
        "body",
        "out_trade_no",
        "total_fee",
        "spbill_create_ip",
        "notify_url",
        "trade_type",
    ];
    match trade_type {
        "JSAPI" => required.push("openid"),
        "NATIVE" => required.push("product_id"),
        // H5: the site the payment starts from (WeChat checks it against the registered H5 domain).
        "MWEB" => required.push("scene_info"),
        _ => {}
    }
    if let Some(missing) = required.iter().find(|k| get(f, k).is_empty()) {
        let des = format!("缺少参数 {missing}");
        return signed(&mut w, &a, Some(("LACK_PARAMS", &des)), &[]);
    }
    if !matches!(trade_type, "JSAPI" | "NATIVE" | "APP" | "MWEB") {
        return signed(&mut w, &a, Some(("PARAM_ERROR", "trade_type 参数错误")), &[]);
    }
    let Some(total_fee) = get(f, "total_fee").parse::<u64>().ok().filter(|t| *t > 0) else {
        return signed(
            &mut w,
            &a,
            Some(("PARAM_ERROR", "total_fee 必须为正整数（单位：分）")),
            &[],
        );
    };
    let out_trade_no = get(f, "out_trade_no").to_owned();
    if !valid_out_no(&out_trade_no, 32) {
        return signed(&mut w, &a, Some(("PARAM_ERROR", "out_trade_no 参数格式错误")), &[]);
    }
    let fingerprint = [
        "body",
        "total_fee",
        "trade_type",
        "openid",
        "product_id",
        "notify_url",
        "attach",
    ]
    .iter()
    .map(|k| get(f, k))
    .collect::<Vec<_>>()
    .join("\u{1f}");
    let key = (a.mch_id.clone(), out_trade_no.clone());
    if let Some(existing) = w.pay_orders.get(&key) {
        let err = match existing.state {
            "SUCCESS" | "REFUND" => Some(("ORDERPAID", "该订单已支付")),
            "CLOSED" => Some(("ORDERCLOSED", "该订单已关闭")),
            _ if existing.fingerprint != fingerprint => Some(("OUT_TRADE_NO_USED", "商户订单号重复")),
            _ => None,
        };
        let (prepay_id, code_url, trade_type) = (
            existing.prepay_id.clone(),
            existing.code_url.clone(),
            existing.trade_type.clone(),
        );
        return match err {
            Some(e) => signed(&mut w, &a, Some(e), &[]),
            // Same order again: WeChat answers with the same prepay_id.
            None => signed(
                &mut w,
                &a,
                None,
                &order_created_fields(&trade_type, prepay_id, code_url),
            ),
        };
    }
    let now = w.now();
    let prepay_id = format!("wx{}{}", beijing_time(now, false), random_string(18));
    let code_url = if trade_type == "NATIVE" {
        format!("weixin://wxpay/bizpayurl?pr={}", random_string(7))
    } else {
        String::new()
    };
    let order = PayOrder {
        mch_id: a.mch_id.clone(),
        appid: a.appid.clone(),
        out_trade_no,
        body: get(f, "body").to_owned(),
        total_fee,
        time_expire: parse_beijing(get(f, "time_expire")),
        trade_type: trade_type.to_owned(),
        openid: get(f, "openid").to_owned(),
        attach: get(f, "attach").to_owned(),
        notify_url: get(f, "notify_url").to_owned(),
        fingerprint,
        created_at: now,
        prepay_id: prepay_id.clone(),
        code_url: code_url.clone(),
        state: "NOTPAY",
        transaction_id: String::new(),
        time_end: String::new(),
        sign_type: a.sign_type,
        refunds: Vec::new(),
        v3: false,
    };
    w.pay_orders.insert(key, order);
    signed(&mut w, &a, None, &order_created_fields(trade_type, prepay_id, code_url))
}

fn order_created_fields(trade_type: &str, prepay_id: String, code_url: String) -> Vec<(&'static str, String)> {
    let mut extra = vec![("trade_type", trade_type.to_owned())];
    if trade_type == "MWEB" {
        extra.push((
            "mweb_url",
            format!("https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id={prepay_id}"),
        ));
    }
    extra.push(("prepay_id", prepay_id));
    if !code_url.is_empty() {
        extra.push(("code_url", code_url));
    }
    extra
}

/// Finds the order a request names (`out_trade_no` or `transaction_id`), or the err_code to answer.
fn find_order(w: &World, a: &Authed) -> Result<(String, String), (&'static str, &'static str)> {
    let out_trade_no = get(&a.fields, "out_trade_no");
    let transaction_id = get(&a.fields, "transaction_id");
    if out_trade_no.is_empty() && transaction_id.is_empty() {
        return Err(("LACK_PARAMS", "缺少参数 out_trade_no 或 transaction_id"));
    }
    w.pay_orders
        .values()
        .find(|o| {
            // An order belongs to the appid it was placed with: asked about through another appid of the same
            // merchant, it does not exist.
            o.mch_id == a.mch_id
                && o.appid == a.appid
                && ((!transaction_id.is_empty() && o.transaction_id == transaction_id)
                    || (!out_trade_no.is_empty() && o.out_trade_no == out_trade_no))
        })
        .map(|o| (o.mch_id.clone(), o.out_trade_no.clone()))
        .ok_or(("ORDERNOTEXIST", "此交易订单号不存在"))
}

async fn order_query(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut w = sim.world();
    let a = match authenticate(&w, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let key = match find_order(&w, &a) {
        Ok(k) => k,
        Err(e) => return signed(&mut w, &a, Some(e), &[]),
    };
    let Some(o) = w.pay_orders.get(&key).cloned() else {
        return signed(&mut w, &a, Some(("ORDERNOTEXIST", "此交易订单号不存在")), &[]);
    };
    let desc = match o.state {
        "SUCCESS" => "支付成功",
        "REFUND" => "转入退款",
        "CLOSED" => "已关闭",
        _ => "订单未支付",
    };
    let mut extra = vec![
        ("trade_state", o.state.to_owned()),
        ("trade_state_desc", desc.to_owned()),
        ("out_trade_no", o.out_trade_no.clone()),
        ("total_fee", o.total_fee.to_string()),
        ("trade_type", o.trade_type.clone()),
        ("attach", o.attach.clone()),
    ];
    if !o.transaction_id.is_empty() {
        extra.extend([
            ("transaction_id", o.transaction_id.clone()),
            ("openid", o.openid.clone()),
            ("time_end", o.time_end.clone()),
            ("bank_type", "CMC".to_owned()),
            ("cash_fee", o.total_fee.to_string()),
            ("fee_type", "CNY".to_owned()),
        ]);
    }
    signed(&mut w, &a, None, &extra)
}

async fn close_order(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut w = sim.world();
    let a = match authenticate(&w, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if get(&a.fields, "out_trade_no").is_empty() {
        return signed(&mut w, &a, Some(("LACK_PARAMS", "缺少参数 out_trade_no")), &[]);
    }
    let key = match find_order(&w, &a) {
        Ok(k) => k,
        Err(e) => return signed(&mut w, &a, Some(e), &[]),
    };
    let now = w.now();
    let err = match w.pay_orders.get(&key) {
        None => Some(("ORDERNOTEXIST", "此交易订单号不存在")),
        Some(o) if matches!(o.state, "SUCCESS" | "REFUND") => Some(("ORDERPAID", "订单已支付，不能发起关单")),
        Some(o) if o.state == "CLOSED" => Some(("ORDERCLOSED", "订单已关闭，无法重复关闭")),
        Some(o) if now - o.created_at < 300 => Some((
            "SYSTEMERROR",
            "订单生成后不能马上调用关单接口，最短调用时间间隔为 5 分钟",
        )),
        Some(_) => None,
    };
    if err.is_none()
        && let Some(o) = w.pay_orders.get_mut(&key)
    {
        o.state = "CLOSED";
    }
    signed(&mut w, &a, err, &[])
}

async fn refund(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut w = sim.world();
    let a = match authenticate(&w, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let f = a.fields.clone();
    if let Some(missing) = ["out_refund_no", "total_fee", "refund_fee"]
        .iter()
        .find(|k| get(&f, k).is_empty())
    {
        let des = format!("缺少参数 {missing}");
        return signed(&mut w, &a, Some(("LACK_PARAMS", &des)), &[]);
    }
    let out_refund_no = get(&f, "out_refund_no").to_owned();
    if !valid_out_no(&out_refund_no, 64) {
        return signed(&mut w, &a, Some(("PARAM_ERROR", "out_refund_no 参数格式错误")), &[]);
    }
    let (Ok(total_fee), Ok(refund_fee)) = (
        get(&f, "total_fee").parse::<u64>(),
        get(&f, "refund_fee").parse::<u64>(),
    ) else {
        return signed(&mut w, &a, Some(("PARAM_ERROR", "金额必须为正整数（单位：分）")), &[]);
    };
    let key = match find_order(&w, &a) {
        Ok(k) => k,
        Err(e) => return signed(&mut w, &a, Some(e), &[]),
    };
    let now = w.now();
    let Some(order) = w.pay_orders.get(&key).cloned() else {
        return signed(&mut w, &a, Some(("ORDERNOTEXIST", "此交易订单号不存在")), &[]);
    };
    if !matches!(order.state, "SUCCESS" | "REFUND") {
        return signed(&mut w, &a, Some(("TRADE_STATE_ERROR", "订单状态错误")), &[]);
    }
    if total_fee != order.total_fee || refund_fee == 0 {
        return signed(
            &mut w,
            &a,
            Some(("INVALID_REQUEST", "订单金额或退款金额与之前请求不一致")),
            &[],
        );
    }
    let accepted = |r: &PayRefund, o: &PayOrder| {
        vec![
            ("transaction_id", o.transaction_id.clone()),
            ("out_trade_no", o.out_trade_no.clone()),
            ("out_refund_no", r.out_refund_no.clone()),
            ("refund_id", r.refund_id.clone()),
            ("refund_fee", r.refund_fee.to_string()),
            ("total_fee", o.total_fee.to_string()),
            ("cash_fee", o.total_fee.to_string()),
        ]
    };
    if let Some(existing) = order.refunds.iter().find(|r| r.out_refund_no == out_refund_no) {
        if existing.refund_fee != refund_fee {
            return signed(&mut w, &a, Some(("INVALID_REQUEST", "退款金额与之前请求不一致")), &[]);
        }
        let extra = accepted(existing, &order);
        return signed(&mut w, &a, None, &extra);
    }
    if order.refunds.len() >= 50 {
        return signed(&mut w, &a, Some(("INVALID_REQUEST", "一笔订单最多退款 50 次")), &[]);
    }
    let refunded: u64 = order.refunds.iter().map(|r| r.refund_fee).sum();
    if refunded + refund_fee > order.total_fee {
        return signed(&mut w, &a, Some(("NOTENOUGH", "可退金额不足")), &[]);
    }
    let r = PayRefund {
        out_refund_no: out_refund_no.clone(),
        refund_id: format!("5030{}", random_string(24).to_ascii_lowercase()),
        refund_fee,
        success_time: beijing_time(now, true),
        status: "SUCCESS",
    };
    if let Some(o) = w.pay_orders.get_mut(&key) {
        o.state = "REFUND";
        o.refunds.push(r.clone());
    }
    let notify_url = get(&f, "notify_url");
    if !notify_url.is_empty() {
        let mut inner = Fields::new();
        for (k, v) in accepted(&r, &order) {
            inner.insert(k.into(), v);
        }
        inner.insert("settlement_refund_fee".into(), r.refund_fee.to_string());
        inner.insert("refund_status".into(), "SUCCESS".into());
        inner.insert("success_time".into(), r.success_time.clone());
        inner.insert("refund_recv_accout".into(), "支付用户零钱".into());
        inner.insert("refund_account".into(), "REFUND_SOURCE_RECHARGE_FUNDS".into());
        inner.insert("refund_request_source".into(), "API".into());
        let mut outer = Fields::new();
        outer.insert("return_code".into(), "SUCCESS".into());
        outer.insert("appid".into(), order.appid.clone());
        outer.insert("mch_id".into(), order.mch_id.clone());
        outer.insert("nonce_str".into(), random_string(32));
        outer.insert("req_info".into(), wechat_pay::notify::encrypt_req_info(&a.key, &inner));
        w.notifications.push(Notification {
            kind: "refund",
            event: None,
            url: notify_url.to_owned(),
            out_trade_no: order.out_trade_no.clone(),
            out_refund_no: Some(out_refund_no),
            attempts: 0,
            delivered: false,
            abandoned: false,
            next_at: now,
            api: "v2",
            body: xml::to_xml(&outer),
            in_flight: false,
            v3_mch: None,
            last_headers: Vec::new(),
            reply: None,
        });
    }
    let extra = accepted(&r, &order);
    signed(&mut w, &a, None, &extra)
}

async fn refund_query(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut w = sim.world();
    let a = match authenticate(&w, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let out_refund_no = get(&a.fields, "out_refund_no").to_owned();
    let order = if out_refund_no.is_empty() {
        match find_order(&w, &a) {
            Ok(k) => w.pay_orders.get(&k).cloned(),
            Err(e) => return signed(&mut w, &a, Some(e), &[]),
        }
    } else {
        w.pay_orders
            .values()
            .find(|o| o.mch_id == a.mch_id && o.refunds.iter().any(|r| r.out_refund_no == out_refund_no))
            .cloned()
    };
    let Some(order) = order.filter(|o| !o.refunds.is_empty()) else {
        return signed(&mut w, &a, Some(("REFUNDNOTEXIST", "退款订单查询失败")), &[]);
    };
    let mut extra = vec![
        ("out_trade_no", order.out_trade_no.clone()),
        ("transaction_id", order.transaction_id.clone()),
        ("total_fee", order.total_fee.to_string()),
        ("refund_count", order.refunds.len().to_string()),
    ];
    let mut numbered: BTreeMap<String, String> = BTreeMap::new();
    for (i, r) in order.refunds.iter().enumerate() {
        numbered.insert(format!("out_refund_no_{i}"), r.out_refund_no.clone());
        numbered.insert(format!("refund_id_{i}"), r.refund_id.clone());
        numbered.insert(format!("refund_fee_{i}"), r.refund_fee.to_string());
        numbered.insert(format!("refund_status_{i}"), "SUCCESS".into());
        numbered.insert(format!("refund_success_time_{i}"), r.success_time.clone());
    }
    extra.extend(numbered.iter().map(|(k, v)| (k.as_str(), v.clone())));
    signed(&mut w, &a, None, &extra)
}

#[derive(Deserialize)]
struct NewMerchant {
    mch_id: String,
    key: String,
}

async fn add_merchant(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let Ok(m) = serde_json::from_slice::<NewMerchant>(&body) else {
        return bad_request("invalid_json", "expected {\"mch_id\", \"key\"}");
    };
    if m.mch_id.is_empty() || m.key.is_empty() {
        return bad_request("invalid_merchant", "mch_id and key must not be empty");
    }
    // WeChat Pay's v2 API key is exactly 32 characters (set on the merchant platform, which refuses other lengths).
    if m.key.chars().count() != 32 || !m.key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return bad_request(
            "invalid_merchant",
            "key must be 32 letters or digits, as WeChat Pay's API key is",
        );
    }
    sim.add_merchant(&m.mch_id, &m.key);
    HttpResponse::Created().json(serde_json::json!({"mch_id": m.mch_id}))
}

#[derive(Deserialize, Default)]
struct PayRequest {
    #[serde(default)]
    mch_id: Option<String>,
    #[serde(default)]
    openid: Option<String>,
}

/// `POST /_sim/pay/orders/{out_trade_no}/pay`: the user pays. Queues the signed payment notify.
async fn control_pay(path: web::Path<String>, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let request: PayRequest = if body.is_empty() {
        PayRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return bad_request("invalid_json", format!("invalid JSON body: {e}")),
        }
    };
    match sim.pay_order(&path, request.mch_id.as_deref(), request.openid.as_deref()) {
        Ok(transaction_id) => HttpResponse::Ok().json(serde_json::json!({"transaction_id": transaction_id})),
        Err(PayOrderError::NotFound) => HttpResponse::NotFound()
            .json(serde_json::json!({"error": {"code": "not_found", "message": "no such order"}})),
        Err(PayOrderError::Ambiguous) => {
            bad_request("ambiguous", "several merchants have this out_trade_no: give mch_id")
        }
        Err(PayOrderError::NotPayable(state)) => HttpResponse::Conflict().json(serde_json::json!({
            "error": {"code": "not_payable", "message": format!("the order is {state}")}
        })),
    }
}

async fn list_notifications(sim: web::Data<SimHandle>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"notifications": sim.notifications()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayFaults {
    #[serde(default)]
    bad_sign_responses: Option<u32>,
    /// The next N payments are made without a notify (WeChat's notify lost): only `orderquery` tells.
    #[serde(default)]
    drop_notifies: Option<u32>,
    /// The next N payments' notifies are delivered twice, at the same moment (as WeChat does when an answer is slow).
    #[serde(default)]
    duplicate_notifies: Option<u32>,
}

async fn pay_faults(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let Ok(f) = serde_json::from_slice::<PayFaults>(&body) else {
        return bad_request(
            "invalid_json",
            "expected {\"bad_sign_responses\"?: N, \"drop_notifies\"?: N, \"duplicate_notifies\"?: N}",
        );
    };
    let mut w = sim.world();
    if let Some(n) = f.bad_sign_responses {
        w.pay_bad_sign = n;
    }
    if let Some(n) = f.drop_notifies {
        w.pay_drop_notifies = n;
    }
    if let Some(n) = f.duplicate_notifies {
        w.pay_duplicate_notifies = n;
    }
    HttpResponse::NoContent().finish()
}

/// Why `pay_order` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayOrderError {
    /// No such order.
    NotFound,
    /// Several merchants use this out_trade_no.
    Ambiguous,
    /// Not in NOTPAY (the state it is in).
    NotPayable(&'static str),
}

impl SimHandle {
    /// Registers a merchant and its API key.
    pub fn add_merchant(&self, mch_id: &str, key: &str) {
        self.world().merchants.insert(mch_id.to_owned(), key.to_owned());
    }

    /// Marks an order paid, as the user would, and queues the signed payment notify. Returns the transaction id.
    pub fn pay_order(
        &self,
        out_trade_no: &str,
        mch_id: Option<&str>,
        openid: Option<&str>,
    ) -> Result<String, PayOrderError> {
        let mut w = self.world();
        let keys: Vec<(String, String)> = w
            .pay_orders
            .keys()
            .filter(|(m, o)| o == out_trade_no && mch_id.is_none_or(|x| x == m))
            .cloned()
            .collect();
        let key = match keys.as_slice() {
            [] => return Err(PayOrderError::NotFound),
            [k] => k.clone(),
            _ => return Err(PayOrderError::Ambiguous),
        };
        let now = w.now();
        let merchant_key = w.merchants.get(&key.0).cloned().unwrap_or_default();
        let Some(o) = w.pay_orders.get_mut(&key) else {
            return Err(PayOrderError::NotFound);
        };
        if o.state != "NOTPAY" {
            return Err(PayOrderError::NotPayable(o.state));
        }
        // Past its time_expire WeChat takes no payment for an order.
        if o.time_expire.is_some_and(|t| now >= t) {
            return Err(PayOrderError::NotPayable("EXPIRED"));
        }
        o.state = "SUCCESS";
        o.transaction_id = format!(
            "4200{}{}",
            beijing_time(now, false),
            &random_string(14).to_ascii_lowercase()
        );
        o.time_end = beijing_time(now, false);
        if o.openid.is_empty() {
            o.openid = openid
                .map(str::to_owned)
                .unwrap_or_else(|| format!("o{}", random_string(27)));
        }
        let o = o.clone();
        if o.v3 {
            if w.pay_drop_notifies > 0 {
                w.pay_drop_notifies -= 1;
                return Ok(o.transaction_id);
            }
            let copies = if w.pay_duplicate_notifies > 0 {
                w.pay_duplicate_notifies -= 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                if let Some(n) = crate::pay_v3::payment_notification(&w, &o) {
                    w.notifications.push(n);
                }
            }
            return Ok(o.transaction_id);
        }
        let mut f = Fields::new();
        for (k, v) in [
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("appid", &o.appid),
            ("mch_id", &o.mch_id),
            ("openid", &o.openid),
            ("is_subscribe", "N"),
            ("trade_type", &o.trade_type),
            ("bank_type", "CMC"),
            ("fee_type", "CNY"),
            ("transaction_id", &o.transaction_id),
            ("out_trade_no", &o.out_trade_no),
            ("attach", &o.attach),
            ("time_end", &o.time_end),
        ] {
            f.insert(k.into(), v.into());
        }
        f.insert("total_fee".into(), o.total_fee.to_string());
        f.insert("cash_fee".into(), o.total_fee.to_string());
        f.insert("nonce_str".into(), random_string(32));
        if o.sign_type == SignType::HmacSha256 {
            f.insert("sign_type".into(), "HMAC-SHA256".into());
        }
        let sign = sign_fields(&f, &PayKey::new(merchant_key), o.sign_type);
        f.insert("sign".into(), sign);
        if w.pay_drop_notifies > 0 {
            w.pay_drop_notifies -= 1;
            return Ok(o.transaction_id);
        }
        let copies = if w.pay_duplicate_notifies > 0 {
            w.pay_duplicate_notifies -= 1;
            2
        } else {
            1
        };
        for _ in 1..copies {
            w.notifications.push(Notification {
                kind: "payment",
                event: None,
                url: o.notify_url.clone(),
                out_trade_no: o.out_trade_no.clone(),
                out_refund_no: None,
                attempts: 0,
                delivered: false,
                abandoned: false,
                next_at: now,
                api: "v2",
                body: xml::to_xml(&f),
                in_flight: false,
                v3_mch: None,
                last_headers: Vec::new(),
                reply: None,
            });
        }
        w.notifications.push(Notification {
            kind: "payment",
            event: None,
            url: o.notify_url.clone(),
            out_trade_no: o.out_trade_no.clone(),
            out_refund_no: None,
            attempts: 0,
            delivered: false,
            abandoned: false,
            next_at: now,
            api: "v2",
            body: xml::to_xml(&f),
            in_flight: false,
            v3_mch: None,
            last_headers: Vec::new(),
            reply: None,
        });
        Ok(o.transaction_id)
    }

    /// The next `n` payments send no notify (as when WeChat's notify is lost).
    pub fn drop_next_notifies(&self, n: u32) {
        self.world().pay_drop_notifies = n;
    }

    /// All notifies, delivered or pending.
    pub fn notifications(&self) -> Vec<Notification> {
        self.world().notifications.clone()
    }
}

impl Notification {
    /// The body as sent (tests replay it).
    pub fn body(&self) -> &str {
        &self.body
    }

    /// v3: the `Wechatpay-*` headers of the last delivery (tests replay it with the body).
    pub fn last_headers(&self) -> &[(&'static str, String)] {
        &self.last_headers
    }

    /// Pushes: what the server answered the accepted delivery with, as sent (encrypted in safe mode).
    pub fn reply(&self) -> Option<&str> {
        self.reply.as_deref()
    }

    pub(crate) fn push(event: String, url: String, body: String, now: i64) -> Self {
        Notification {
            kind: "push",
            event: Some(event),
            url,
            out_trade_no: String::new(),
            out_refund_no: None,
            attempts: 0,
            delivered: false,
            abandoned: false,
            next_at: now,
            api: "v2",
            body,
            in_flight: false,
            v3_mch: None,
            last_headers: Vec::new(),
            reply: None,
        }
    }

    pub(crate) fn v3(kind: &'static str, url: String, body: String, mch_id: String, now: i64) -> Self {
        Notification {
            kind,
            event: None,
            url,
            out_trade_no: String::new(),
            out_refund_no: None,
            attempts: 0,
            delivered: false,
            abandoned: false,
            next_at: now,
            api: "v3",
            body,
            in_flight: false,
            v3_mch: Some(mch_id),
            last_headers: Vec::new(),
            reply: None,
        }
    }
}

/// Server pushes are retried 3 times when the server does not answer (WeChat waits 5 s for each).
const PUSH_ATTEMPTS: u32 = 4;

/// Delivers due notifies until the task is aborted. One attempt per due notify per tick; the schedule runs on the
/// simulated clock, so advancing the clock fast-forwards retries.
pub(crate) async fn run_notifier(sim: SimHandle) {
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "simulator notifier cannot start");
            return;
        }
    };
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let due: Vec<(usize, String, String, bool, Option<String>)> = {
            let mut w = sim.world();
            let now = w.now();
            w.notifications
                .iter_mut()
                .enumerate()
                .filter(|(_, n)| !n.delivered && !n.abandoned && !n.in_flight && n.next_at <= now)
                .map(|(i, n)| {
                    n.in_flight = true;
                    (i, n.url.clone(), n.body.clone(), n.kind == "push", n.v3_mch.clone())
                })
                .collect()
        };
        for (i, url, body, is_push, v3_mch) in due {
            let mut request = client.post(&url);
            let is_v3 = v3_mch.is_some();
            if let Some(mch_id) = &v3_mch {
                // v3: signed as it is sent, so every retry carries a fresh timestamp.
                let headers = {
                    let mut w = sim.world();
                    let headers = crate::pay_v3::sign_for(&mut w, mch_id, body.as_bytes(), true);
                    if let Some(n) = w.notifications.get_mut(i) {
                        n.last_headers = headers.clone();
                    }
                    headers
                };
                request = request.header("content-type", "application/json");
                for (k, v) in headers {
                    request = request.header(k, v);
                }
            } else {
                request = request.header("content-type", "text/xml");
            }
            let mut reply = None;
            let ok = match request.body(body).send().await {
                // A push is delivered when the server answers at all (WeChat accepts "success" or an empty body).
                Ok(response) if response.status().is_success() && is_push => {
                    reply = response.text().await.ok();
                    true
                }
                // v3: any 2xx is an acknowledgement.
                Ok(response) if is_v3 => response.status().is_success(),
                Ok(response) if response.status().is_success() => match response.bytes().await {
                    Ok(bytes) => xml::parse(&bytes).is_ok_and(|f| get(&f, "return_code") == "SUCCESS"),
                    Err(_) => false,
                },
                _ => false,
            };
            let mut w = sim.world();
            let now = w.now();
            if let Some(n) = w.notifications.get_mut(i) {
                n.in_flight = false;
                n.attempts += 1;
                if ok {
                    n.delivered = true;
                    n.reply = reply;
                } else if is_push {
                    n.abandoned = n.attempts >= PUSH_ATTEMPTS;
                } else if let Some(wait) = NOTIFY_SCHEDULE.get(n.attempts as usize - 1) {
                    n.next_at = now + wait;
                } else {
                    n.abandoned = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::beijing_time;

    #[test]
    fn beijing_time_parses_back() {
        for ts in [0i64, 1_795_000_000, 1_800_000_000, 951_782_400] {
            assert_eq!(super::parse_beijing(&beijing_time(ts, false)), Some(ts));
        }
        assert_eq!(super::parse_beijing("2026-11-24"), None);
        assert_eq!(super::parse_beijing("20261324000000"), None);
    }

    #[test]
    fn beijing_time_formats() {
        // 2026-11-24 02:00:00 UTC is 10:00 in Beijing.
        assert_eq!(beijing_time(1_795_485_600, false), "20261124100000");
        assert_eq!(beijing_time(1_795_485_600, true), "2026-11-24 10:00:00");
    }
}
