//! Cards (卡券): uploads, `card/create`, colours, code decrypt / get / consume, and event pushes to the official
//! account's server URL (signed; encrypted in safe mode).

use crate::control::bad_request;
use crate::mp::{query, wx_error};
use crate::pay::Notification;
use crate::state::{SimHandle, World, random_string};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use wechat_core::push::MessageCrypto;
use wechat_core::xml::{self, Fields};

/// A field of [`queue_push`] that carries raw XML to place inside the push as is (nested elements).
pub(crate) const RAW_XML_FIELD: &str = "__raw_xml";

/// Where an app's server pushes go.
#[derive(Clone, Debug)]
pub(crate) struct PushConfig {
    /// The server URL.
    pub url: String,
    pub token: String,
    pub aes_key: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct SimCard {
    pub appid: String,
    pub remaining: u64,
    pub get_limit: Option<u64>,
    pub use_custom_code: bool,
    /// Validity: fixed window (begin, end), or `fixed_term` days from receipt.
    pub window: Option<(i64, i64)>,
    pub fixed_term_days: Option<i64>,
}

#[derive(Clone, Debug)]
pub(crate) struct SimCode {
    pub card_id: String,
    pub appid: String,
    pub openid: String,
    pub status: &'static str,
    pub outer_str: String,
    pub begin: i64,
    pub end: i64,
}

/// WeChat's card colours.
const COLORS: [(&str, &str); 14] = [
    ("Color010", "#55bd47"),
    ("Color020", "#10ad61"),
    ("Color030", "#35a4de"),
    ("Color040", "#3d78da"),
    ("Color050", "#9058cb"),
    ("Color060", "#de9c33"),
    ("Color070", "#ebac16"),
    ("Color080", "#f9861f"),
    ("Color081", "#f08500"),
    ("Color082", "#a9d92d"),
    ("Color090", "#e75735"),
    ("Color100", "#d54036"),
    ("Color101", "#cf3e36"),
    ("Color102", "#5e6671"),
];

const MAX_LOGO: usize = 1024 * 1024;
const MAX_IMAGE: usize = 10 * 1024 * 1024;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(MAX_IMAGE + 64 * 1024))
        .route("/cgi-bin/media/uploadimg", web::post().to(upload_img))
        .route("/cgi-bin/media/upload", web::post().to(upload_media))
        .route("/card/create", web::post().to(create))
        .route("/card/getcolors", web::get().to(colors))
        .route("/card/code/decrypt", web::post().to(decrypt))
        .route("/card/code/get", web::post().to(get_code))
        .route("/card/code/consume", web::post().to(consume))
        .route("/_sim/push", web::post().to(control_push))
        .route("/_sim/cards/{card_id}/add", web::post().to(control_add))
        .route("/_sim/js/add_card", web::post().to(page_add_card))
        .route(
            "/_sim/cards/{card_id}/codes/{code}/consume",
            web::post().to(control_consume),
        )
        .route(
            "/_sim/cards/{card_id}/codes/{code}/delete",
            web::post().to(control_delete),
        )
        .route("/_sim/pushes", web::get().to(list_pushes));
}

fn authed(sim: &SimHandle, req: &HttpRequest) -> Result<String, HttpResponse> {
    let q = query(req);
    sim.world()
        .check_token(q.get("access_token").map(String::as_str))
        .map_err(|rejection| {
            let (code, msg) = rejection.errcode();
            wx_error(code, msg)
        })
}

/// Finds one file part of a multipart body: `(field name, bytes)`.
///
/// A `Content-Type: multipart/form-data` without its `boundary` parameter (what the wechatpayv3 package sends for
/// uploads, and WeChat Pay takes) is read with the boundary the body opens with.
pub(crate) fn multipart_file<'a>(req: &HttpRequest, body: &'a [u8], field: &str) -> Option<&'a [u8]> {
    let content_type = req.headers().get("content-type")?.to_str().ok()?;
    if !content_type.starts_with("multipart/form-data") {
        return None;
    }
    let delimiter = match content_type.split("boundary=").nth(1) {
        Some(b) => format!("--{}", b.trim_matches('"')),
        None => {
            let first = body.split(|b| *b == b'\r').next()?;
            let line = std::str::from_utf8(first).ok()?;
            if !line.starts_with("--") || line.len() < 3 {
                return None;
            }
            line.to_owned()
        }
    };
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            return None;
        }
        let header_end = find(rest, b"\r\n\r\n")?;
        let headers = std::str::from_utf8(&rest[..header_end]).ok()?;
        let content = &rest[header_end + 4..];
        let end = find(content, format!("\r\n{delimiter}").as_bytes())?;
        if headers.contains(&format!("name=\"{field}\"")) {
            return Some(&content[..end]);
        }
        rest = &content[end..];
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn image_kind(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("jpg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("gif")
    } else {
        None
    }
}

async fn upload_img(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    if let Err(r) = authed(&sim, &req) {
        return r;
    }
    let Some(file) = multipart_file(&req, &body, "buffer") else {
        return wx_error(41005, "media data missing");
    };
    match image_kind(file) {
        Some("png" | "jpg") => {}
        _ => return wx_error(40005, "invalid file type"),
    }
    if file.len() > MAX_LOGO {
        return wx_error(40009, "invalid image size");
    }
    HttpResponse::Ok().json(json!({"url": format!("http://mmbiz.qpic.cn/mmbiz_png/{}/0", random_string(40))}))
}

async fn upload_media(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    if let Err(r) = authed(&sim, &req) {
        return r;
    }
    let q = query(&req);
    if q.get("type").map(String::as_str) != Some("image") {
        return wx_error(40004, "invalid media type");
    }
    let Some(file) = multipart_file(&req, &body, "media") else {
        return wx_error(41005, "media data missing");
    };
    if image_kind(file).is_none() {
        return wx_error(40005, "invalid file type");
    }
    if file.len() > MAX_IMAGE {
        return wx_error(40009, "invalid image size");
    }
    HttpResponse::Ok().json(json!({"type": "image", "media_id": random_string(64), "created_at": sim.now()}))
}

fn width(s: &str) -> usize {
    s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

/// Validates a `card/create` body the way WeChat does; `Err` is (errcode, errmsg).
fn validate_card(body: &Value) -> Result<(String, SimCard), (i64, String)> {
    let bad = |m: &str| (47001, format!("data format error: {m}"));
    let card = body.get("card").ok_or_else(|| bad("missing card"))?;
    let card_type = card
        .get("card_type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing card_type"))?;
    if !matches!(card_type, "GROUPON" | "CASH" | "DISCOUNT" | "GIFT" | "GENERAL_COUPON") {
        return Err(bad("invalid card_type"));
    }
    let inner = card
        .get(card_type.to_ascii_lowercase())
        .ok_or_else(|| bad("missing the card type's object"))?;
    let detail_ok = match card_type {
        "GROUPON" => inner
            .get("deal_detail")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty()),
        "CASH" => inner.get("reduce_cost").and_then(Value::as_u64).is_some_and(|v| v > 0),
        "DISCOUNT" => inner
            .get("discount")
            .and_then(Value::as_u64)
            .is_some_and(|v| (1..=99).contains(&v)),
        "GIFT" => inner.get("gift").and_then(Value::as_str).is_some_and(|s| !s.is_empty()),
        _ => inner
            .get("default_detail")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty()),
    };
    if !detail_ok {
        return Err(bad("missing or invalid detail field for the card type"));
    }
    let base = inner.get("base_info").ok_or_else(|| bad("missing base_info"))?;
    let text = |k: &str| base.get(k).and_then(Value::as_str).unwrap_or("");
    for (k, max_width) in [("brand_name", 24), ("title", 18), ("notice", 32)] {
        let v = text(k);
        if v.is_empty() || width(v) > max_width {
            return Err(bad(&format!("invalid {k}")));
        }
    }
    let description = text("description");
    if description.is_empty() || description.chars().count() > 1024 {
        return Err(bad("invalid description"));
    }
    if !text("logo_url").starts_with("http://mmbiz.qpic.cn/") {
        return Err(bad("logo_url must come from media/uploadimg"));
    }
    if !COLORS.iter().any(|(n, _)| *n == text("color")) {
        return Err(bad("invalid color"));
    }
    if !matches!(
        text("code_type"),
        "CODE_TYPE_TEXT"
            | "CODE_TYPE_BARCODE"
            | "CODE_TYPE_QRCODE"
            | "CODE_TYPE_ONLY_QRCODE"
            | "CODE_TYPE_ONLY_BARCODE"
            | "CODE_TYPE_NONE"
    ) {
        return Err(bad("invalid code_type"));
    }
    let quantity = base
        .get("sku")
        .and_then(|s| s.get("quantity"))
        .and_then(Value::as_u64)
        .filter(|q| *q <= 100_000_000)
        .ok_or_else(|| bad("invalid sku quantity"))?;
    let date = base.get("date_info").ok_or_else(|| bad("missing date_info"))?;
    let (window, fixed_term_days) = match date.get("type").and_then(Value::as_str) {
        Some("DATE_TYPE_FIX_TIME_RANGE") | Some("1") => {
            let begin = date.get("begin_timestamp").and_then(Value::as_i64).unwrap_or(0);
            let end = date.get("end_timestamp").and_then(Value::as_i64).unwrap_or(0);
            // Seconds, not milliseconds.
            if !(1_000_000_000..10_000_000_000).contains(&begin)
                || !(1_000_000_000..10_000_000_000).contains(&end)
                || end <= begin
            {
                return Err(bad("invalid date_info timestamps (Unix seconds)"));
            }
            (Some((begin, end)), None)
        }
        Some("DATE_TYPE_FIX_TERM") | Some("2") => {
            let term = date
                .get("fixed_term")
                .and_then(Value::as_i64)
                .filter(|t| *t > 0)
                .ok_or_else(|| bad("invalid fixed_term"))?;
            (None, Some(term))
        }
        _ => return Err(bad("invalid date_info type")),
    };
    Ok((
        card_type.to_owned(),
        SimCard {
            appid: String::new(),
            remaining: quantity,
            get_limit: base.get("get_limit").and_then(Value::as_u64),
            use_custom_code: base.get("use_custom_code").and_then(Value::as_bool).unwrap_or(false),
            window,
            fixed_term_days,
        },
    ))
}

async fn create(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let appid = match authed(&sim, &req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return wx_error(47001, "data format error");
    };
    let (_, mut card) = match validate_card(&value) {
        Ok(c) => c,
        Err((code, msg)) => return wx_error(code, &msg),
    };
    card.appid = appid.clone();
    let card_id = format!("p{}", random_string(27));
    let mut w = sim.world();
    w.cards.insert(card_id.clone(), card);
    let mut f = Fields::new();
    f.insert("Event".into(), "card_pass_check".into());
    f.insert("CardId".into(), card_id.clone());
    queue_push(&mut w, &appid, "", f);
    HttpResponse::Ok().json(json!({"errcode": 0, "errmsg": "ok", "card_id": card_id}))
}

async fn colors(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    if let Err(r) = authed(&sim, &req) {
        return r;
    }
    let colors: Vec<Value> = COLORS.iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
    HttpResponse::Ok().json(json!({"errcode": 0, "errmsg": "ok", "colors": colors}))
}

/// The token check and JSON body every code endpoint starts with; `Err` is WeChat's answer.
fn authed_json(sim: &SimHandle, req: &HttpRequest, body: &[u8]) -> Result<(String, Value), HttpResponse> {
    let appid = authed(sim, req)?;
    let value = serde_json::from_slice::<Value>(body).map_err(|_| wx_error(47001, "data format error"))?;
    Ok((appid, value))
}

async fn decrypt(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let (appid, v) = match authed_json(&sim, &req, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(encrypt_code) = v.get("encrypt_code").and_then(Value::as_str) else {
        return wx_error(47001, "data format error");
    };
    let w = sim.world();
    match w
        .encrypt_codes
        .get(encrypt_code)
        .filter(|code| w.codes.get(*code).is_some_and(|c| c.appid == appid))
    {
        Some(code) => HttpResponse::Ok().json(json!({"errcode": 0, "errmsg": "ok", "code": code})),
        None => wx_error(40075, "invalid encrypt code"),
    }
}

/// Finds a code of the app (and of `card_id` if given); `Err` is WeChat's 40056.
fn lookup(w: &World, appid: &str, v: &Value) -> Result<(String, SimCode), HttpResponse> {
    let code = v
        .get("code")
        .and_then(Value::as_str)
        .ok_or_else(|| wx_error(47001, "data format error"))?;
    let card_id = v.get("card_id").and_then(Value::as_str);
    match w.codes.get(code) {
        Some(c) if c.appid == appid && card_id.is_none_or(|id| id == c.card_id) => Ok((code.to_owned(), c.clone())),
        _ => Err(wx_error(40056, "invalid serial code")),
    }
}

fn effective_status(c: &SimCode, now: i64) -> &'static str {
    if c.status == "NORMAL" && now > c.end {
        "EXPIRE"
    } else {
        c.status
    }
}

async fn get_code(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let (appid, v) = match authed_json(&sim, &req, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = sim.world();
    let (_, c) = match lookup(&w, &appid, &v) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let status = effective_status(&c, w.now());
    let can_consume = status == "NORMAL" && w.now() >= c.begin;
    if v.get("check_consume").and_then(Value::as_bool).unwrap_or(true) && !can_consume {
        return match status {
            "CONSUMED" => wx_error(40099, "invalid code, this code has consumed."),
            _ => wx_error(
                40127,
                "invalid user-card status! Hint: the card was given to user, but may be deleted or set unavailable",
            ),
        };
    }
    HttpResponse::Ok().json(json!({
        "errcode": 0, "errmsg": "ok",
        "card": {"card_id": c.card_id, "begin_time": c.begin, "end_time": c.end},
        "openid": c.openid,
        "can_consume": can_consume,
        "user_card_status": status,
    }))
}

/// Marks a code consumed and queues `user_consume_card`; `Err` is WeChat's errcode answer.
fn consume_code(
    w: &mut World,
    appid: &str,
    v: &Value,
    source: &str,
    staff: Option<&str>,
) -> Result<SimCode, HttpResponse> {
    let (code, c) = lookup(w, appid, v)?;
    match effective_status(&c, w.now()) {
        "NORMAL" => {}
        "CONSUMED" => return Err(wx_error(40099, "invalid code, this code has consumed.")),
        _ => return Err(wx_error(40127, "invalid user-card status!")),
    }
    if let Some(entry) = w.codes.get_mut(&code) {
        entry.status = "CONSUMED";
    }
    let mut f = Fields::new();
    f.insert("Event".into(), "user_consume_card".into());
    f.insert("CardId".into(), c.card_id.clone());
    f.insert("UserCardCode".into(), code);
    f.insert("ConsumeSource".into(), source.into());
    f.insert("OuterStr".into(), c.outer_str.clone());
    if let Some(s) = staff {
        f.insert("StaffOpenId".into(), s.into());
    }
    queue_push(w, appid, &c.openid, f);
    Ok(c)
}

async fn consume(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let (appid, v) = match authed_json(&sim, &req, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut w = sim.world();
    match consume_code(&mut w, &appid, &v, "FROM_API", None) {
        Ok(c) => HttpResponse::Ok()
            .json(json!({"errcode": 0, "errmsg": "ok", "card": {"card_id": c.card_id}, "openid": c.openid})),
        Err(r) => r,
    }
}

/// Queues a push to the app's server URL (if configured): signed, encrypted in safe mode. An event unless `fields`
/// say another `MsgType`.
pub(crate) fn queue_push(w: &mut World, appid: &str, openid: &str, mut fields: Fields) {
    let Some(cfg) = w.push_configs.get(appid).cloned() else {
        return;
    };
    let now = w.now();
    let to_user = format!("gh_{}", crate::state::tail(appid, 12));
    fields.insert("ToUserName".into(), to_user.clone());
    fields.insert(
        "FromUserName".into(),
        if openid.is_empty() {
            "weixin".into()
        } else {
            openid.to_owned()
        },
    );
    fields.insert("CreateTime".into(), now.to_string());
    fields.entry("MsgType".into()).or_insert_with(|| "event".into());
    // Nested elements (a few events have them) ride as raw XML the simulator wrote itself.
    let raw = fields.remove(RAW_XML_FIELD);
    let mut plain = xml::to_xml(&fields);
    if let Some(raw) = raw
        && let Some(end) = plain.rfind("</xml>")
    {
        plain.insert_str(end, &raw);
    }
    let timestamp = now.to_string();
    let nonce = format!("{}", rand::random::<u32>());
    let signature = wechat_core::push::server_signature(&cfg.token, &timestamp, &nonce);
    let mut url = format!(
        "{}{}signature={signature}&timestamp={timestamp}&nonce={nonce}&openid={}",
        cfg.url,
        if cfg.url.contains('?') { '&' } else { '?' },
        fields.get("FromUserName").map(String::as_str).unwrap_or("")
    );
    let body = match cfg
        .aes_key
        .as_deref()
        .and_then(|k| MessageCrypto::new(&cfg.token, k, appid).ok())
    {
        Some(crypto) => {
            let encrypt = crypto.encrypt(&plain);
            let msg_signature = wechat_core::push::msg_signature(&cfg.token, &timestamp, &nonce, &encrypt);
            url.push_str(&format!("&encrypt_type=aes&msg_signature={msg_signature}"));
            let mut envelope = Fields::new();
            envelope.insert("ToUserName".into(), to_user);
            envelope.insert("Encrypt".into(), encrypt);
            xml::to_xml(&envelope)
        }
        None => plain,
    };
    w.notifications.push(Notification::push(
        fields
            .get("Event")
            .or_else(|| fields.get("MsgType"))
            .cloned()
            .unwrap_or_default(),
        url,
        body,
        now,
    ));
}

#[derive(Deserialize)]
struct PushSetup {
    appid: String,
    url: String,
    token: String,
    #[serde(default)]
    encoding_aes_key: Option<String>,
}

async fn control_push(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let Ok(p) = serde_json::from_slice::<PushSetup>(&body) else {
        return bad_request("invalid_json", "expected {appid, url, token, encoding_aes_key?}");
    };
    if !(p.url.starts_with("http://") || p.url.starts_with("https://")) || p.token.is_empty() {
        return bad_request("invalid_push", "url must be http(s) and token non-empty");
    }
    if let Some(k) = &p.encoding_aes_key
        && MessageCrypto::new(&p.token, k, &p.appid).is_err()
    {
        return bad_request("invalid_push", "encoding_aes_key must be 43 characters");
    }
    let mut w = sim.world();
    if !w.apps.contains_key(&p.appid) {
        return bad_request("unknown_app", "unknown appid");
    }
    w.push_configs.insert(
        p.appid,
        PushConfig {
            url: p.url,
            token: p.token,
            aes_key: p.encoding_aes_key,
        },
    );
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct AddRequest {
    openid: String,
    #[serde(default)]
    outer_str: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// What tapping "add to card bag" does: mints a code, returns the `encrypt_code` the page would get, pushes
/// `user_get_card`.
async fn control_add(path: web::Path<String>, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let Ok(r) = serde_json::from_slice::<AddRequest>(&body) else {
        return bad_request("invalid_json", "expected {openid, outer_str?, code?}");
    };
    if r.openid.is_empty() {
        return bad_request("invalid_openid", "openid must not be empty");
    }
    let card_id = path.into_inner();
    let mut w = sim.world();
    match add_code(&mut w, &card_id, &r.openid, r.outer_str, r.code) {
        Ok((code, encrypt_code)) => {
            HttpResponse::Ok().json(json!({"card_id": card_id, "code": code, "encrypt_code": encrypt_code}))
        }
        Err(refusal) => refusal,
    }
}

/// Mints a code of `card_id` for `openid` and queues the `user_get_card` push: `(code, encrypt_code)`.
fn add_code(
    w: &mut World,
    card_id: &str,
    openid: &str,
    outer_str: Option<String>,
    code: Option<String>,
) -> Result<(String, String), HttpResponse> {
    let now = w.now();
    let Some(card) = w.cards.get(card_id).cloned() else {
        return Err(HttpResponse::NotFound().json(json!({"error": {"code": "not_found", "message": "no such card"}})));
    };
    if card.remaining == 0 {
        return Err(HttpResponse::Conflict().json(json!({"error": {"code": "sold_out", "message": "no cards left"}})));
    }
    let held = w
        .codes
        .values()
        .filter(|c| c.card_id == card_id && c.openid == openid)
        .count() as u64;
    if card.get_limit.is_some_and(|limit| held >= limit) {
        return Err(HttpResponse::Conflict()
            .json(json!({"error": {"code": "get_limit", "message": "the user reached get_limit"}})));
    }
    let code = match (&code, card.use_custom_code) {
        (Some(c), true) if !c.is_empty() && c.len() <= 20 && !w.codes.contains_key(c) => c.clone(),
        (Some(_), _) => {
            return Err(bad_request(
                "invalid_code",
                "a code may only be given for use_custom_code cards, unused, ≤ 20 chars",
            ));
        }
        (None, _) => loop {
            let c = format!("{:012}", rand::random::<u64>() % 1_000_000_000_000);
            if !w.codes.contains_key(&c) {
                break c;
            }
        },
    };
    let (begin, end) = match (card.window, card.fixed_term_days) {
        (Some(window), _) => window,
        (None, Some(days)) => (now, now + days * 86_400),
        (None, None) => (now, now + 30 * 86_400),
    };
    let encrypt_code = random_string(44);
    w.codes.insert(
        code.clone(),
        SimCode {
            card_id: card_id.to_owned(),
            appid: card.appid.clone(),
            openid: openid.to_owned(),
            status: "NORMAL",
            outer_str: outer_str.clone().unwrap_or_default(),
            begin,
            end,
        },
    );
    w.encrypt_codes.insert(encrypt_code.clone(), code.clone());
    if let Some(c) = w.cards.get_mut(card_id) {
        c.remaining -= 1;
    }
    let mut f = Fields::new();
    f.insert("Event".into(), "user_get_card".into());
    f.insert("CardId".into(), card_id.to_owned());
    f.insert("UserCardCode".into(), code.clone());
    f.insert("IsGiveByFriend".into(), "0".into());
    f.insert("OuterStr".into(), outer_str.unwrap_or_default());
    queue_push(w, &card.appid, openid, f);
    Ok((code, encrypt_code))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageCard {
    card_id: String,
    card_ext: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageAddCard {
    app_id: String,
    card_list: Vec<PageCard>,
}

#[derive(Deserialize)]
struct CardExtJson {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    openid: Option<String>,
    timestamp: String,
    nonce_str: String,
    signature: String,
    #[serde(default)]
    outer_str: Option<String>,
}

/// `POST /_sim/js/add_card` (from the `jweixin` stand-in's `wx.addCard`): WeChat's check of each `cardExt` — the
/// signature is sha1 over the sorted api_ticket (the app's current `wx_card` ticket), timestamp, card_id, code,
/// openid and nonce — then the card is added for the cardExt's openid (the person at the phone) and `user_get_card`
/// is pushed with its `outer_str`. Answers `{"errMsg": "addCard:ok", "cardList": [...]}` or WeChat's failure.
async fn page_add_card(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let answer = |v: serde_json::Value| {
        HttpResponse::Ok()
            .insert_header(("Access-Control-Allow-Origin", "*"))
            .json(v)
    };
    let Ok(req) = serde_json::from_slice::<PageAddCard>(&body) else {
        return answer(json!({"errMsg": "addCard:fail invalid parameter"}));
    };
    let mut w = sim.world();
    let now = w.now();
    let Some(ticket) = w
        .apps
        .get(&req.app_id)
        .and_then(|a| a.tickets.get("wx_card"))
        .filter(|t| t.expires_at > now)
        .map(|t| t.value.clone())
    else {
        return answer(json!({"errMsg": "addCard:fail invalid signature"}));
    };
    let mut added = Vec::new();
    for card in &req.card_list {
        let Ok(ext) = serde_json::from_str::<CardExtJson>(&card.card_ext) else {
            return answer(json!({"errMsg": "addCard:fail invalid cardExt"}));
        };
        let expected = wechat_core::push::sorted_sha1(&[
            &ticket,
            &ext.timestamp,
            &card.card_id,
            ext.code.as_deref().unwrap_or(""),
            ext.openid.as_deref().unwrap_or(""),
            &ext.nonce_str,
        ]);
        if !wechat_core::constant_time_eq(expected.as_bytes(), ext.signature.as_bytes()) {
            return answer(json!({"errMsg": "addCard:fail invalid signature"}));
        }
        let Some(openid) = ext.openid.clone().filter(|o| !o.is_empty()) else {
            return answer(
                json!({"errMsg": "addCard:fail the simulator needs the cardExt's openid to know who adds it"}),
            );
        };
        match add_code(&mut w, &card.card_id, &openid, ext.outer_str.clone(), ext.code.clone()) {
            Ok((_, encrypt_code)) => added.push(
                json!({"cardId": card.card_id, "cardExt": card.card_ext, "code": encrypt_code, "isSuccess": true}),
            ),
            Err(_) => return answer(json!({"errMsg": "addCard:fail the card cannot be added"})),
        }
    }
    answer(json!({"errMsg": "addCard:ok", "cardList": added}))
}

#[derive(Deserialize, Default)]
struct ConsumeRequest {
    #[serde(default)]
    staff_openid: Option<String>,
}

/// A staff member consumes the code with WeChat's own tools (FROM_MOBILE_HELPER).
async fn control_consume(
    path: web::Path<(String, String)>,
    body: web::Bytes,
    sim: web::Data<SimHandle>,
) -> HttpResponse {
    let r: ConsumeRequest = if body.is_empty() {
        ConsumeRequest::default()
    } else {
        serde_json::from_slice(&body).unwrap_or_default()
    };
    let (card_id, code) = path.into_inner();
    let mut w = sim.world();
    let Some(appid) = w.codes.get(&code).map(|c| c.appid.clone()) else {
        return HttpResponse::NotFound().json(json!({"error": {"code": "not_found", "message": "no such code"}}));
    };
    let v = json!({"code": code, "card_id": card_id});
    match consume_code(&mut w, &appid, &v, "FROM_MOBILE_HELPER", r.staff_openid.as_deref()) {
        Ok(_) => HttpResponse::NoContent().finish(),
        Err(_) => HttpResponse::Conflict()
            .json(json!({"error": {"code": "not_consumable", "message": "the code cannot be consumed"}})),
    }
}

async fn control_delete(path: web::Path<(String, String)>, sim: web::Data<SimHandle>) -> HttpResponse {
    let (card_id, code) = path.into_inner();
    let mut w = sim.world();
    let Some(c) = w.codes.get_mut(&code).filter(|c| c.card_id == card_id) else {
        return HttpResponse::NotFound().json(json!({"error": {"code": "not_found", "message": "no such code"}}));
    };
    c.status = "DELETE";
    let (appid, openid) = (c.appid.clone(), c.openid.clone());
    let mut f = Fields::new();
    f.insert("Event".into(), "user_del_card".into());
    f.insert("CardId".into(), card_id);
    f.insert("UserCardCode".into(), code);
    queue_push(&mut w, &appid, &openid, f);
    HttpResponse::NoContent().finish()
}

impl SimHandle {
    /// Sends the app's server pushes to `url` (signed with `token`; encrypted when `encoding_aes_key` is given).
    /// False when the app is unknown or the key is invalid.
    pub fn set_push(&self, appid: &str, url: &str, token: &str, encoding_aes_key: Option<&str>) -> bool {
        if let Some(k) = encoding_aes_key
            && MessageCrypto::new(token, k, appid).is_err()
        {
            return false;
        }
        let mut w = self.world();
        if !w.apps.contains_key(appid) {
            return false;
        }
        w.push_configs.insert(
            appid.to_owned(),
            PushConfig {
                url: url.to_owned(),
                token: token.to_owned(),
                aes_key: encoding_aes_key.map(str::to_owned),
            },
        );
        true
    }
}

async fn list_pushes(sim: web::Data<SimHandle>) -> HttpResponse {
    let pushes: Vec<Notification> = sim.notifications().into_iter().filter(|n| n.kind == "push").collect();
    HttpResponse::Ok().json(json!({"pushes": pushes}))
}
