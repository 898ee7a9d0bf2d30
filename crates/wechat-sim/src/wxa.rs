//! The rest of the mini program's server API: `getwxacode` and `createwxaqrcode` (sharing WeChat's lifetime cap of
//! 100,000 codes per mini program), `generate_urllink`, `generatescheme`, and content security — `msg_sec_check` v2
//! (a text is `risky` when it contains one of [`RISKY_WORDS`], `review` with [`REVIEW_WORDS`]) and
//! `media_check_async`, whose verdict is pushed later as a `wxa_media_check` event (risky when the URL contains
//! `risky`).

use crate::cards::queue_push;
use crate::mp::{query, wx_error};
use crate::state::{SimHandle, random_string};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use wechat_core::xml::Fields;

/// Words that make `msg_sec_check` answer `risky` (label 20001) in the simulator.
pub const RISKY_WORDS: [&str; 3] = ["赌博", "违禁", "risky-test"];
/// Words that make it answer `review` (label 20002).
pub const REVIEW_WORDS: [&str; 2] = ["待审", "review-test"];
/// WeChat's lifetime cap of `getwxacode` + `createwxaqrcode` codes per mini program.
pub const CODE_CAP: u64 = 100_000;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/wxa/getwxacode", web::post().to(path_code))
        .route("/cgi-bin/wxaapp/createwxaqrcode", web::post().to(path_code))
        .route("/wxa/generate_urllink", web::post().to(urllink))
        .route("/wxa/generatescheme", web::post().to(scheme))
        .route("/wxa/msg_sec_check", web::post().to(msg_sec_check))
        .route("/wxa/media_check_async", web::post().to(media_check_async))
        .route(
            "/wxa/sec/order/upload_shipping_info",
            web::post().to(upload_shipping_info),
        )
        .route("/wxa/sec/order/get_order", web::post().to(get_order))
        .route(
            "/_sim/wxa/shipping/{transaction_id}/remind",
            web::post().to(control_remind),
        );
}

/// `POST /_sim/wxa/shipping/{transaction_id}/remind`: WeChat's `trade_manage_remind_shipping` push for a
/// mini-program payment, to the mini program's message push URL (`POST /_sim/push` configures it).
async fn control_remind(path: web::Path<String>, sim: web::Data<SimHandle>) -> HttpResponse {
    match sim.remind_shipping(&path) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => crate::control::bad_request("cannot_remind", e),
    }
}

/// 小程序发货信息管理: a mini-program payment's funds are held (order_state 1, 待发货) until its shipping is uploaded
/// (2, 已发货). Only the mini program the order was paid in may upload it; the payer must match.
async fn upload_shipping_info(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let appid = match authed(&sim, &req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let b = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let txn = b
        .pointer("/order_key/transaction_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let payer = b.pointer("/payer/openid").and_then(Value::as_str).unwrap_or("");
    if !(1..=4).contains(&b.get("logistics_type").and_then(Value::as_u64).unwrap_or(0))
        || !(1..=2).contains(&b.get("delivery_mode").and_then(Value::as_u64).unwrap_or(0))
        || b.get("shipping_list")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    {
        return wx_error(10060023, "发货信息参数错误 · invalid shipping information");
    }
    let mut w = sim.world();
    let Some(order) = w
        .pay_orders
        .values()
        .find(|o| !txn.is_empty() && o.transaction_id == txn && o.appid == appid)
    else {
        return wx_error(10060001, "支付单不存在 · no such payment of this mini program");
    };
    if order.openid != payer {
        return wx_error(10060002, "支付单与用户不匹配 · the payer does not match");
    }
    *w.shipments.entry(txn.to_owned()).or_default() += 1;
    HttpResponse::Ok().json(serde_json::json!({"errcode": 0, "errmsg": "ok"}))
}

async fn get_order(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let appid = match authed(&sim, &req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let b = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let txn = b.get("transaction_id").and_then(Value::as_str).unwrap_or("");
    let w = sim.world();
    let Some(order) = w
        .pay_orders
        .values()
        .find(|o| !txn.is_empty() && o.transaction_id == txn && o.appid == appid)
    else {
        return wx_error(10060001, "支付单不存在");
    };
    let state = if w.shipments.contains_key(txn) { 2 } else { 1 };
    HttpResponse::Ok().json(serde_json::json!({"errcode": 0, "errmsg": "ok", "order": {
        "transaction_id": txn, "merchant_trade_no": order.out_trade_no, "appid": appid,
        "openid": order.openid, "order_state": state,
    }}))
}

fn authed(sim: &SimHandle, req: &HttpRequest) -> Result<String, HttpResponse> {
    let q = query(req);
    sim.world()
        .check_token(q.get("access_token").map(String::as_str))
        .map_err(|r| {
            let (code, msg) = r.errcode();
            wx_error(code, msg)
        })
}

fn json_body(body: &[u8]) -> Result<Value, HttpResponse> {
    serde_json::from_slice::<Value>(body).map_err(|_| wx_error(47001, "data format error"))
}

/// A page path as these APIs take it: no leading `/`, ≤ 128 bytes (query allowed for path codes).
fn check_path(path: &str) -> Result<(), HttpResponse> {
    if path.is_empty() || path.len() > 128 || path.starts_with('/') {
        return Err(wx_error(
            40159,
            "invalid length for path, or the data is not json string",
        ));
    }
    Ok(())
}

fn code_image(sim: &SimHandle, req: &HttpRequest, appid: &str, path: &str, width: u64) -> HttpResponse {
    {
        let mut w = sim.world();
        let used = w.wxa_codes_made.entry(appid.to_owned()).or_insert(0);
        if *used >= CODE_CAP {
            return wx_error(45029, "qrcode count out of limit");
        }
        *used += 1;
    }
    let conn = req.connection_info();
    let url = format!(
        "{}://{}/_sim/wxa/open?appid={appid}&path={}",
        conn.scheme(),
        conn.host(),
        url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>()
    );
    let opts = qr_render::RenderOptions {
        size_px: u32::try_from(width.clamp(280, 1280)).unwrap_or(430),
        ecc: qr_render::Ecc::Medium,
        ..Default::default()
    };
    match qr_render::render_png(&url, &opts) {
        Ok(png) => HttpResponse::Ok().content_type("image/png").body(png),
        Err(_) => wx_error(-1, "system error"),
    }
}

/// `getwxacode` and `createwxaqrcode`: the same checks, the same shared cap; only WeChat's image style differs.
async fn path_code(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let appid = match authed(&sim, &req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let b = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let path = b.get("path").and_then(Value::as_str).unwrap_or("");
    if let Err(r) = check_path(path) {
        return r;
    }
    let width = b.get("width").and_then(Value::as_u64).unwrap_or(430);
    code_image(&sim, &req, &appid, path, width)
}

fn check_env(b: &Value, pointer: &str) -> Result<(), HttpResponse> {
    match b.pointer(pointer).and_then(Value::as_str) {
        None | Some("release" | "trial" | "develop") => Ok(()),
        Some(_) => Err(wx_error(40097, "invalid args: env_version")),
    }
}

async fn urllink(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    if let Err(r) = authed(&sim, &req) {
        return r;
    }
    let b = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(path) = b.get("path").and_then(Value::as_str)
        && (path.starts_with('/') || path.len() > 1024)
    {
        return wx_error(40165, "invalid weapp pagepath");
    }
    if let Err(r) = check_env(&b, "/env_version") {
        return r;
    }
    if let Some(days) = b.get("expire_interval").and_then(Value::as_u64)
        && !(1..=30).contains(&days)
    {
        return wx_error(40097, "invalid args: expire_interval is 1 to 30 days");
    }
    HttpResponse::Ok()
        .json(json!({"errcode": 0, "errmsg": "ok", "url_link": format!("https://wxaurl.cn/{}", random_string(12))}))
}

async fn scheme(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    if let Err(r) = authed(&sim, &req) {
        return r;
    }
    let b = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(path) = b.pointer("/jump_wxa/path").and_then(Value::as_str)
        && path.starts_with('/')
    {
        return wx_error(40165, "invalid weapp pagepath");
    }
    if let Err(r) = check_env(&b, "/jump_wxa/env_version") {
        return r;
    }
    HttpResponse::Ok().json(
        json!({"errcode": 0, "errmsg": "ok", "openlink": format!("weixin://dl/business/?t={}", random_string(11))}),
    )
}

async fn msg_sec_check(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    if let Err(r) = authed(&sim, &req) {
        return r;
    }
    let b = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let content = b.get("content").and_then(Value::as_str).unwrap_or("");
    if b.get("version").and_then(Value::as_u64) != Some(2) {
        return wx_error(40097, "invalid args: version must be 2");
    }
    if !(1..=4).contains(&b.get("scene").and_then(Value::as_u64).unwrap_or(0)) {
        return wx_error(40097, "invalid args: scene is 1 to 4");
    }
    if b.get("openid").and_then(Value::as_str).unwrap_or("").is_empty() {
        return wx_error(40003, "invalid openid");
    }
    if content.is_empty() || content.len() > 2500 * 4 {
        return wx_error(40097, "invalid args: content");
    }
    let (suggest, label) = if RISKY_WORDS.iter().any(|w| content.contains(w)) {
        ("risky", 20001)
    } else if REVIEW_WORDS.iter().any(|w| content.contains(w)) {
        ("review", 20002)
    } else {
        ("pass", 100)
    };
    HttpResponse::Ok().json(json!({
        "errcode": 0, "errmsg": "ok", "trace_id": random_string(24),
        "result": {"suggest": suggest, "label": label},
        "detail": [{"strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label}],
    }))
}

async fn media_check_async(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let appid = match authed(&sim, &req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let b = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let url = b.get("media_url").and_then(Value::as_str).unwrap_or("").to_owned();
    let openid = b.get("openid").and_then(Value::as_str).unwrap_or("").to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return wx_error(40097, "invalid args: media_url");
    }
    if !matches!(b.get("media_type").and_then(Value::as_u64), Some(1 | 2)) {
        return wx_error(40097, "invalid args: media_type is 1 (image) or 2 (audio)");
    }
    if b.get("version").and_then(Value::as_u64) != Some(2) || openid.is_empty() {
        return wx_error(40097, "invalid args: version 2 and openid are required");
    }
    let trace_id = random_string(24);
    let (suggest, label) = if url.contains("risky") {
        ("risky", "20002")
    } else {
        ("pass", "100")
    };
    let mut f = Fields::new();
    f.insert("Event".into(), "wxa_media_check".into());
    f.insert("appid".into(), appid.clone());
    f.insert("trace_id".into(), trace_id.clone());
    f.insert("version".into(), "2".into());
    f.insert("result/suggest".into(), suggest.into());
    f.insert("result/label".into(), label.into());
    queue_nested_push(&sim, &appid, &openid, f);
    HttpResponse::Ok().json(json!({"errcode": 0, "errmsg": "ok", "trace_id": trace_id}))
}

/// Queues a push whose `a/b` fields become nested elements (`<result><suggest>…</suggest></result>`).
fn queue_nested_push(sim: &SimHandle, appid: &str, openid: &str, fields: Fields) {
    let mut flat = Fields::new();
    let mut nested: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    for (k, v) in fields {
        match k.split_once('/') {
            Some((parent, child)) => nested.entry(parent.to_owned()).or_default().push((child.to_owned(), v)),
            None => {
                flat.insert(k, v);
            }
        }
    }
    // The flat codec writes fields; nested ones ride as raw XML in a marker field the push writer expands.
    let mut w = sim.world();
    let raw: String = nested
        .iter()
        .map(|(parent, kids)| {
            let inner: String = kids.iter().map(|(k, v)| format!("<{k}>{v}</{k}>")).collect();
            format!("<{parent}>{inner}</{parent}>")
        })
        .collect();
    flat.insert(crate::cards::RAW_XML_FIELD.into(), raw);
    queue_push(&mut w, appid, openid, flat);
}

impl SimHandle {
    /// Pushes `trade_manage_remind_shipping` for a mini-program payment whose shipping is not uploaded yet (WeChat
    /// reminds merchants whose funds it holds) to the mini program's push URL.
    pub fn remind_shipping(&self, transaction_id: &str) -> Result<(), &'static str> {
        let mut w = self.world();
        if w.shipments.contains_key(transaction_id) {
            return Err("its shipping was uploaded already");
        }
        let Some(o) = w
            .pay_orders
            .values()
            .find(|o| !transaction_id.is_empty() && o.transaction_id == transaction_id)
            .cloned()
        else {
            return Err("no such payment");
        };
        if !w.push_configs.contains_key(&o.appid) {
            return Err("the mini program has no message push URL: POST /_sim/push first");
        }
        let mut f = wechat_core::xml::Fields::new();
        f.insert("MsgType".into(), "event".into());
        f.insert("Event".into(), "trade_manage_remind_shipping".into());
        f.insert("transaction_id".into(), o.transaction_id.clone());
        f.insert("merchant_id".into(), o.mch_id.clone());
        f.insert("merchant_trade_no".into(), o.out_trade_no.clone());
        f.insert("msg".into(), "你的订单尚未发货，请尽快录入发货信息".into());
        crate::cards::queue_push(&mut w, &o.appid, "o-wechat-system", f);
        Ok(())
    }

    /// How often a mini-program payment's shipping was uploaded (0: its funds are still held).
    pub fn shipping_uploads(&self, transaction_id: &str) -> u32 {
        self.world().shipments.get(transaction_id).copied().unwrap_or(0)
    }
}
