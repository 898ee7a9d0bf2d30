//! The official account's messaging side: parametric QR codes (`qrcode/create`, `showqrcode`), a user scanning one
//! (a `subscribe` push with `qrscene_…` for a new follower, `SCAN` for a follower), a user sending a text message, and
//! what the server answered each push with (`GET /_sim/messages`, safe-mode replies decrypted and their signature
//! checked).

use crate::cards::queue_push;
use crate::control::bad_request;
use crate::mp::{query, wx_error};
use crate::state::{SimHandle, random_string};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use wechat_core::push::{MessageCrypto, msg_signature};
use wechat_core::xml::Fields;

/// A parametric QR code the simulator issued.
#[derive(Clone, Debug)]
pub(crate) struct QrTicket {
    pub appid: String,
    pub scene: String,
    /// Unix seconds; `None` for a permanent code.
    pub expires_at: Option<i64>,
    pub url: String,
}

/// A message the account sent (template, subscribe, customer service), as WeChat accepted it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SentMessage {
    /// The sending app.
    pub appid: String,
    /// `template`, `subscribe`, `bizsend` or `custom`.
    pub kind: &'static str,
    /// The recipient.
    pub touser: String,
    /// The template, for template and subscribe messages.
    pub template_id: Option<String>,
    /// The request body as received.
    pub body: Value,
    /// WeChat's msgid.
    pub msgid: i64,
}

/// How long after a user's last message or scan customer-service messages may be sent.
const CUSTOM_WINDOW_SECS: i64 = 48 * 3600;

/// Most permanent codes an account may hold (WeChat's cap).
const MAX_PERMANENT: usize = 100_000;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/cgi-bin/message/template/send", web::post().to(send_template))
        .route("/cgi-bin/message/subscribe/send", web::post().to(send_subscribe))
        .route("/cgi-bin/message/subscribe/bizsend", web::post().to(send_subscribe))
        .route("/cgi-bin/message/custom/send", web::post().to(send_custom))
        .route("/_sim/templates", web::post().to(control_template))
        .route("/_sim/subscriptions", web::post().to(control_subscription))
        .route("/cgi-bin/qrcode/create", web::post().to(create))
        .route("/cgi-bin/showqrcode", web::get().to(show))
        .route("/_sim/qrcode/scan", web::post().to(control_scan))
        .route("/_sim/qrcode/open", web::get().to(scan_page))
        .route("/_sim/qrcode/scan/page", web::post().to(scan_from_page))
        .route("/_sim/messages/send", web::post().to(control_send))
        .route("/_sim/messages", web::get().to(list_messages));
}

async fn create(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let mut w = sim.world();
    let appid = match w.check_token(q.get("access_token").map(String::as_str)) {
        Ok(a) => a,
        Err(r) => {
            let (code, msg) = r.errcode();
            return wx_error(code, msg);
        }
    };
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return wx_error(47001, "data format error");
    };
    let action = b.get("action_name").and_then(Value::as_str).unwrap_or("");
    let scene_id = b.pointer("/action_info/scene/scene_id").and_then(Value::as_u64);
    let scene_str = b.pointer("/action_info/scene/scene_str").and_then(Value::as_str);
    let scene = match (action, scene_id, scene_str) {
        ("QR_SCENE", Some(id), _) if (1..=u64::from(u32::MAX)).contains(&id) => id.to_string(),
        ("QR_LIMIT_SCENE", Some(id), _) if (1..=100_000).contains(&id) => id.to_string(),
        ("QR_STR_SCENE" | "QR_LIMIT_STR_SCENE", _, Some(s)) if (1..=64).contains(&s.chars().count()) => s.to_owned(),
        ("QR_SCENE" | "QR_LIMIT_SCENE" | "QR_STR_SCENE" | "QR_LIMIT_STR_SCENE", _, _) => {
            return wx_error(40053, "invalid action info, scene_id or scene_str out of range");
        }
        _ => return wx_error(40052, "invalid action name"),
    };
    let permanent = action.starts_with("QR_LIMIT");
    let expire_seconds = if permanent {
        None
    } else {
        match b.get("expire_seconds").map(Value::as_u64) {
            None => Some(60),
            Some(Some(s)) if (1..=2_592_000).contains(&s) => Some(s),
            Some(_) => return wx_error(40009, "invalid expire_seconds: 1 to 2592000"),
        }
    };
    if permanent
        && w.qr_tickets
            .values()
            .filter(|t| t.appid == appid && t.expires_at.is_none())
            .count()
            >= MAX_PERMANENT
    {
        return wx_error(45029, "permanent QR code limit reached");
    }
    let ticket = format!("gQ{}", random_string(62));
    // WeChat's codes encode http://weixin.qq.com/q/…; the simulator's open its "scan as" page, so that a phone (or a
    // browser test) can play the scanning user.
    let conn = req.connection_info();
    let url = format!("{}://{}/_sim/qrcode/open?ticket={ticket}", conn.scheme(), conn.host());
    let now = w.now();
    w.qr_tickets.insert(
        ticket.clone(),
        QrTicket {
            appid,
            scene,
            expires_at: expire_seconds.map(|s| now + i64::try_from(s).unwrap_or(60)),
            url: url.clone(),
        },
    );
    let mut out = json!({"ticket": ticket, "url": url});
    if let Some(s) = expire_seconds {
        out["expire_seconds"] = json!(s);
    }
    HttpResponse::Ok().json(out)
}

/// `GET /cgi-bin/showqrcode?ticket=`: the code as a PNG (404 for an unknown or expired ticket, as WeChat answers).
async fn show(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let w = sim.world();
    let now = w.now();
    let Some(t) = q
        .get("ticket")
        .and_then(|t| w.qr_tickets.get(t))
        .filter(|t| t.expires_at.is_none_or(|e| now < e))
    else {
        return HttpResponse::NotFound().body("ticket is invalid or expired");
    };
    match qr_render::render_png(&t.url, &qr_render::RenderOptions::default()) {
        Ok(png) => HttpResponse::Ok().content_type("image/jpeg").body(png),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scan {
    ticket: String,
    openid: String,
}

impl SimHandle {
    /// A user scans a parametric code: a new follower's `subscribe` push (`EventKey` `qrscene_{scene}`), or a
    /// follower's `SCAN` push (`EventKey` the scene). `Err` says why not (unknown or expired code).
    pub fn scan_qrcode(&self, ticket: &str, openid: &str) -> Result<&'static str, String> {
        let mut w = self.world();
        let now = w.now();
        let t = w.qr_tickets.get(ticket).cloned().ok_or("unknown ticket")?;
        if t.expires_at.is_some_and(|e| now >= e) {
            return Err("the code has expired".into());
        }
        let follower = !w.followers.insert((t.appid.clone(), openid.to_owned()));
        w.interactions.insert((t.appid.clone(), openid.to_owned()), now);
        let mut f = Fields::new();
        let event = if follower {
            f.insert("Event".into(), "SCAN".into());
            f.insert("EventKey".into(), t.scene.clone());
            "SCAN"
        } else {
            f.insert("Event".into(), "subscribe".into());
            f.insert("EventKey".into(), format!("qrscene_{}", t.scene));
            "subscribe"
        };
        f.insert("Ticket".into(), ticket.to_owned());
        queue_push(&mut w, &t.appid, openid, f);
        Ok(event)
    }

    /// A user sends a text message to the account: a `text` push with a fresh `MsgId`. Returns the MsgId.
    pub fn send_text(&self, appid: &str, openid: &str, content: &str) -> String {
        let mut w = self.world();
        let now = w.now();
        w.interactions.insert((appid.to_owned(), openid.to_owned()), now);
        let msg_id = format!("{}", 23_000_000_000_000_000u64 + u64::from(rand::random::<u32>()));
        let mut f = Fields::new();
        f.insert("MsgType".into(), "text".into());
        f.insert("Content".into(), content.to_owned());
        f.insert("MsgId".into(), msg_id.clone());
        queue_push(&mut w, appid, openid, f);
        msg_id
    }

    /// Registers a message template for an app with its data keys (`thing1`, `time2`…).
    pub fn add_template(&self, appid: &str, template_id: &str, keys: &[&str]) {
        self.world().templates.insert(
            (appid.to_owned(), template_id.to_owned()),
            keys.iter().map(|k| (*k).to_owned()).collect(),
        );
    }

    /// The user allows `count` more subscribe messages of a template (what the subscribe popup grants).
    pub fn allow_subscription(&self, appid: &str, openid: &str, template_id: &str, count: u32) {
        *self
            .world()
            .subscriptions
            .entry((appid.to_owned(), openid.to_owned(), template_id.to_owned()))
            .or_insert(0) += count;
    }

    /// A user follows the account (without a code).
    pub fn follow(&self, appid: &str, openid: &str) {
        let mut w = self.world();
        let now = w.now();
        w.followers.insert((appid.to_owned(), openid.to_owned()));
        w.interactions.insert((appid.to_owned(), openid.to_owned()), now);
    }

    /// Every message sent through the send APIs.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.world().sent.clone()
    }

    /// Whether a user follows the account (after a `subscribe` through a code).
    pub fn follows(&self, appid: &str, openid: &str) -> bool {
        self.world().followers.contains(&(appid.to_owned(), openid.to_owned()))
    }
}

#[derive(askama::Template)]
#[template(path = "sim_qrcode_scan.html")]
struct ScanPage<'a> {
    title: &'a str,
    scene: &'a str,
    ticket: &'a str,
    suggested: String,
}

/// `GET /_sim/qrcode/open?ticket=`: what scanning the code shows in the simulator — pick the scanning user.
async fn scan_page(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let ticket = q.get("ticket").cloned().unwrap_or_default();
    let Some(t) = sim.world().qr_tickets.get(&ticket).cloned() else {
        return crate::pages::error_page(-1, "二维码已失效 · this code is not known");
    };
    crate::pages::render(&ScanPage {
        title: "扫码 · Scan",
        scene: &t.scene,
        ticket: &ticket,
        suggested: format!("o{}", random_string(27)),
    })
}

#[derive(Deserialize)]
struct ScanForm {
    ticket: String,
    openid: String,
}

async fn scan_from_page(form: web::Form<ScanForm>, sim: web::Data<SimHandle>) -> HttpResponse {
    let openid = form.openid.trim();
    if openid.is_empty() || openid.len() > 64 {
        return crate::pages::error_page(-1, "openid 无效 · give the scanning user's openid");
    }
    match sim.scan_qrcode(&form.ticket, openid) {
        Ok(event) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
            "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><title>已扫码</title>\
             <h2 id=\"done\" data-event=\"{event}\">已扫码 · Scanned ({event})</h2>\
             <p>公众号会收到事件并回复 · The account received the event and replies in the chat.</p>"
        )),
        Err(e) => crate::pages::error_page(-1, &format!("扫码失败 · {e}")),
    }
}

async fn control_scan(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let Ok(s) = serde_json::from_slice::<Scan>(&body) else {
        return bad_request("invalid_json", "expected {\"ticket\", \"openid\"}");
    };
    match sim.scan_qrcode(&s.ticket, &s.openid) {
        Ok(event) => HttpResponse::Ok().json(json!({"event": event})),
        Err(e) => HttpResponse::Gone().json(json!({"error": {"code": "invalid_ticket", "message": e}})),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Send {
    appid: String,
    openid: String,
    content: String,
}

async fn control_send(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let Ok(s) = serde_json::from_slice::<Send>(&body) else {
        return bad_request("invalid_json", "expected {\"appid\", \"openid\", \"content\"}");
    };
    if !sim.world().push_configs.contains_key(&s.appid) {
        return bad_request("no_push_url", "the app has no server URL: POST /_sim/push first");
    }
    let msg_id = sim.send_text(&s.appid, &s.openid, &s.content);
    HttpResponse::Ok().json(json!({"msg_id": msg_id}))
}

/// A reply as WeChat would read it: plaintext, or in safe mode decrypted after its `MsgSignature` is checked.
pub(crate) fn read_reply(sim: &SimHandle, appid: &str, reply: &str) -> Result<String, String> {
    let trimmed = reply.trim();
    if trimmed.is_empty() || trimmed == "success" {
        return Ok(String::new());
    }
    let fields = wechat_core::xml::parse_push(trimmed.as_bytes()).map_err(|e| format!("not XML: {e}"))?;
    let Some(encrypt) = fields.get("Encrypt") else {
        return Ok(trimmed.to_owned());
    };
    let cfg = sim
        .world()
        .push_configs
        .get(appid)
        .cloned()
        .ok_or("no push configuration")?;
    let key = cfg
        .aes_key
        .as_deref()
        .ok_or("an encrypted reply, but the account is in plaintext mode")?;
    let crypto = MessageCrypto::new(&cfg.token, key, appid).map_err(|e| e.to_string())?;
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let expected = msg_signature(&cfg.token, get("TimeStamp"), get("Nonce"), encrypt);
    if expected != get("MsgSignature") {
        return Err("reply MsgSignature does not verify".into());
    }
    crypto.decrypt(encrypt).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct ListQuery {
    appid: Option<String>,
}

/// `GET /_sim/messages?appid=`: every push with the reply the server gave (decrypted, checked), newest last.
async fn list_messages(q: web::Query<ListQuery>, sim: web::Data<SimHandle>) -> HttpResponse {
    let appids: Vec<String> = sim.world().push_configs.keys().cloned().collect();
    let items: Vec<Value> = sim
        .notifications()
        .into_iter()
        .filter(|n| n.kind == "push")
        .filter_map(|n| {
            let appid = appids.iter().find(|a| {
                sim.world()
                    .push_configs
                    .get(*a)
                    .is_some_and(|c| n.url.starts_with(&c.url))
            })?;
            if q.appid.as_ref().is_some_and(|x| x != appid) {
                return None;
            }
            let reply = n.reply().map(|r| read_reply(&sim, appid, r));
            Some(json!({
                "appid": appid, "event": n.event, "attempts": n.attempts, "delivered": n.delivered,
                "reply": reply.as_ref().and_then(|r| r.as_ref().ok()),
                "reply_error": reply.as_ref().and_then(|r| r.as_ref().err()),
            }))
        })
        .collect();
    HttpResponse::Ok().json(json!({"messages": items, "sent": sim.sent_messages()}))
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

/// Checks a template / subscribe message's data against the template's keys: every key given, none unknown,
/// values ≤ 200 characters (47003 otherwise).
fn check_data(keys: &[String], data: Option<&Value>) -> Result<(), HttpResponse> {
    let Some(Value::Object(data)) = data else {
        return Err(wx_error(47003, "argument invalid! data is missing"));
    };
    for k in keys {
        let value = data.get(k).and_then(|v| v.get("value")).and_then(Value::as_str);
        match value {
            Some(v) if v.chars().count() <= 200 => {}
            Some(_) => return Err(wx_error(47003, &format!("argument invalid! data.{k}.value too long"))),
            None => return Err(wx_error(47003, &format!("argument invalid! data.{k}.value is empty"))),
        }
    }
    if let Some(extra) = data.keys().find(|k| !keys.contains(k)) {
        return Err(wx_error(
            47003,
            &format!("argument invalid! data.{extra} is not in the template"),
        ));
    }
    Ok(())
}

fn record(
    sim: &SimHandle,
    appid: &str,
    kind: &'static str,
    touser: &str,
    template_id: Option<&str>,
    body: Value,
) -> i64 {
    let mut w = sim.world();
    let msgid = 2_000_000_000 + i64::try_from(w.sent.len()).unwrap_or(0);
    w.sent.push(SentMessage {
        appid: appid.to_owned(),
        kind,
        touser: touser.to_owned(),
        template_id: template_id.map(str::to_owned),
        body,
        msgid,
    });
    msgid
}

async fn send_template(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let appid = match authed(&sim, &req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return wx_error(47001, "data format error");
    };
    let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let (touser, template_id) = (s("touser"), s("template_id"));
    if touser.is_empty() {
        return wx_error(40003, "invalid openid");
    }
    let keys = {
        let w = sim.world();
        if !w.followers.contains(&(appid.clone(), touser.clone())) {
            return wx_error(43004, "require subscribe");
        }
        match w.templates.get(&(appid.clone(), template_id.clone())) {
            Some(k) => k.clone(),
            None => return wx_error(40037, "invalid template_id"),
        }
    };
    if let Err(r) = check_data(&keys, b.get("data")) {
        return r;
    }
    if let Some(u) = b.get("url").and_then(Value::as_str)
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        return wx_error(47003, "argument invalid! url");
    }
    let msgid = record(&sim, &appid, "template", &touser, Some(&template_id), b.clone());
    // How it ended, as WeChat reports it: a TEMPLATESENDJOBFINISH push.
    let mut f = Fields::new();
    f.insert("Event".into(), "TEMPLATESENDJOBFINISH".into());
    f.insert("MsgID".into(), msgid.to_string());
    f.insert("Status".into(), "success".into());
    queue_push(&mut sim.world(), &appid, &touser, f);
    HttpResponse::Ok().json(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid}))
}

async fn send_subscribe(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let appid = match authed(&sim, &req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let biz = req.path().ends_with("/bizsend");
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return wx_error(47001, "data format error");
    };
    let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let (touser, template_id) = (s("touser"), s("template_id"));
    if touser.is_empty() {
        return wx_error(40003, "invalid openid");
    }
    let Some(keys) = sim
        .world()
        .templates
        .get(&(appid.clone(), template_id.clone()))
        .cloned()
    else {
        return wx_error(40037, "invalid template id");
    };
    if let Err(r) = check_data(&keys, b.get("data")) {
        return r;
    }
    if let Some(state) = b.get("miniprogram_state").and_then(Value::as_str)
        && !matches!(state, "developer" | "trial" | "formal")
    {
        return wx_error(47003, "argument invalid! miniprogram_state");
    }
    {
        let mut w = sim.world();
        let allowance = w
            .subscriptions
            .entry((appid.clone(), touser.clone(), template_id.clone()))
            .or_insert(0);
        if *allowance == 0 {
            return wx_error(43101, "user refuse to accept the msg");
        }
        // One allowance, one message.
        *allowance -= 1;
    }
    record(
        &sim,
        &appid,
        if biz { "bizsend" } else { "subscribe" },
        &touser,
        Some(&template_id),
        b.clone(),
    );
    HttpResponse::Ok().json(json!({"errcode": 0, "errmsg": "ok"}))
}

async fn send_custom(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let appid = match authed(&sim, &req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return wx_error(47001, "data format error");
    };
    let touser = b.get("touser").and_then(Value::as_str).unwrap_or("").to_owned();
    if touser.is_empty() {
        return wx_error(40003, "invalid openid");
    }
    let msgtype = b.get("msgtype").and_then(Value::as_str).unwrap_or("");
    if !matches!(
        msgtype,
        "text" | "image" | "voice" | "video" | "music" | "news" | "link" | "miniprogrampage"
    ) {
        return wx_error(40008, "invalid message type");
    }
    if b.get(msgtype).is_none() {
        return wx_error(47003, "argument invalid! the message body is missing");
    }
    {
        let w = sim.world();
        let now = w.now();
        let recent = w
            .interactions
            .get(&(appid.clone(), touser.clone()))
            .is_some_and(|at| now - at < CUSTOM_WINDOW_SECS);
        if !recent {
            return wx_error(45015, "response out of time limit or subscription is canceled");
        }
    }
    record(&sim, &appid, "custom", &touser, None, b.clone());
    HttpResponse::Ok().json(json!({"errcode": 0, "errmsg": "ok"}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateSetup {
    appid: String,
    template_id: String,
    keys: Vec<String>,
}

async fn control_template(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let Ok(t) = serde_json::from_slice::<TemplateSetup>(&body) else {
        return bad_request(
            "invalid_json",
            "expected {\"appid\", \"template_id\", \"keys\": [\"thing1\", ...]}",
        );
    };
    let keys: Vec<&str> = t.keys.iter().map(String::as_str).collect();
    sim.add_template(&t.appid, &t.template_id, &keys);
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionSetup {
    appid: String,
    openid: String,
    template_id: String,
    #[serde(default)]
    count: Option<u32>,
}

async fn control_subscription(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let Ok(t) = serde_json::from_slice::<SubscriptionSetup>(&body) else {
        return bad_request(
            "invalid_json",
            "expected {\"appid\", \"openid\", \"template_id\", \"count\"?}",
        );
    };
    sim.allow_subscription(&t.appid, &t.openid, &t.template_id, t.count.unwrap_or(1));
    HttpResponse::NoContent().finish()
}
