//! Official-account basics: `/cgi-bin/token`, `/cgi-bin/stable_token`, `/cgi-bin/ticket/getticket`.

use crate::state::{SimHandle, TOKEN_OVERLAP_SECS, TOKEN_TTL_SECS, TicketRecord, TokenFlavor, random_string, rid};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use std::collections::HashMap;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/cgi-bin/token", web::get().to(token))
        .route("/cgi-bin/stable_token", web::post().to(stable_token))
        .route("/cgi-bin/ticket/getticket", web::get().to(get_ticket))
        .route("/_sim/js/jweixin.js", web::get().to(jweixin))
        .route("/_sim/js/verify", web::post().to(verify_config));
}

/// The JS-SDK stand-in pages load instead of `res.wx.qq.com/open/js/jweixin-1.6.0.js`.
const JWEIXIN: &str = include_str!("../static/jweixin.js");

async fn jweixin() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .body(JWEIXIN)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageConfig {
    app_id: String,
    timestamp: serde_json::Value,
    nonce_str: String,
    signature: String,
    url: String,
}

/// `POST /_sim/js/verify` (from the stand-in's `wx.config`): WeChat's check — the signature must be sha1 over the
/// app's current `jsapi_ticket`, the nonce, the timestamp and the page URL without its fragment. Answers
/// `{"errMsg": "config:ok"}` or WeChat's message (`config:invalid signature`, `config:invalid appid`).
async fn verify_config(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let answer = |msg: &str| {
        HttpResponse::Ok()
            .insert_header(("Access-Control-Allow-Origin", "*"))
            .json(serde_json::json!({"errMsg": msg}))
    };
    let Ok(cfg) = serde_json::from_slice::<PageConfig>(&body) else {
        return answer("config:invalid parameter");
    };
    let timestamp = match &cfg.timestamp {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => return answer("config:invalid parameter"),
    };
    let world = sim.world();
    let now = world.now();
    let Some(app) = world.apps.get(&cfg.app_id) else {
        return answer("config:invalid appid");
    };
    let Some(ticket) = app.tickets.get("jsapi").filter(|t| t.expires_at > now) else {
        return answer("config:invalid signature");
    };
    let page = cfg.url.split('#').next().unwrap_or("");
    let expected = {
        use sha1::{Digest, Sha1};
        let mut h = Sha1::new();
        h.update(
            format!(
                "jsapi_ticket={}&noncestr={}&timestamp={timestamp}&url={page}",
                ticket.value, cfg.nonce_str
            )
            .as_bytes(),
        );
        wechat_core::push::hex_lower(&h.finalize())
    };
    if expected == cfg.signature {
        answer("config:ok")
    } else {
        answer("config:invalid signature")
    }
}

/// WeChat's failure shape: HTTP 200 with errcode and errmsg (plus a request id, as WeChat appends one).
pub(crate) fn wx_error(code: i64, message: &str) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "errcode": code,
        "errmsg": format!("{message} rid: {}", rid()),
    }))
}

/// The query string as a map; a malformed query yields what could be read (WeChat ignores junk too).
pub(crate) fn query(req: &HttpRequest) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .map(|pairs| pairs.into_iter().collect())
        .unwrap_or_default()
}

/// Checks appid + secret the way `/cgi-bin/token` does; `Err` is the finished WeChat error response.
fn check_credentials(
    sim: &SimHandle,
    grant_type: Option<&str>,
    appid: Option<&str>,
    secret: Option<&str>,
) -> Result<String, HttpResponse> {
    if grant_type != Some("client_credential") {
        return Err(wx_error(40002, "invalid grant_type"));
    }
    let appid = match appid {
        Some(a) if !a.is_empty() => a,
        _ => return Err(wx_error(41002, "appid missing")),
    };
    let world = sim.world();
    let app = world.apps.get(appid).ok_or_else(|| wx_error(40013, "invalid appid"))?;
    match secret {
        Some(s) if !s.is_empty() => {
            if s != app.secret {
                return Err(wx_error(40125, "invalid appsecret"));
            }
        }
        _ => return Err(wx_error(41004, "appsecret missing")),
    }
    Ok(appid.to_owned())
}

async fn token(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let appid = match check_credentials(
        &sim,
        q.get("grant_type").map(String::as_str),
        q.get("appid").map(String::as_str),
        q.get("secret").map(String::as_str),
    ) {
        Ok(a) => a,
        Err(response) => return response,
    };
    let (token, expires_in) = sim.world().issue_token(&appid, TokenFlavor::Classic);
    HttpResponse::Ok().json(serde_json::json!({"access_token": token, "expires_in": expires_in}))
}

#[derive(Deserialize)]
struct StableTokenRequest {
    grant_type: Option<String>,
    appid: Option<String>,
    secret: Option<String>,
    #[serde(default)]
    force_refresh: bool,
}

const STABLE_FORCE_MIN_SPACING_SECS: i64 = 30;
const STABLE_FORCE_PER_DAY: usize = 20;

async fn stable_token(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let Ok(request) = serde_json::from_slice::<StableTokenRequest>(&body) else {
        return wx_error(47001, "data format error");
    };
    let appid = match check_credentials(
        &sim,
        request.grant_type.as_deref(),
        request.appid.as_deref(),
        request.secret.as_deref(),
    ) {
        Ok(a) => a,
        Err(response) => return response,
    };
    let mut world = sim.world();
    let now = world.now();
    let current = world
        .apps
        .get(&appid)
        .and_then(|a| a.stable_token.clone())
        .and_then(|t| world.tokens.get(&t).map(|r| (t, r.expires_at)));
    if request.force_refresh {
        let Some(app) = world.apps.get_mut(&appid) else {
            return wx_error(40013, "invalid appid");
        };
        app.stable_force_refreshes.retain(|t| now - t < 86_400);
        if app
            .stable_force_refreshes
            .last()
            .is_some_and(|t| now - t < STABLE_FORCE_MIN_SPACING_SECS)
        {
            return wx_error(45011, "api minute-quota reach limit  mustslower  retry next minute");
        }
        if app.stable_force_refreshes.len() >= STABLE_FORCE_PER_DAY {
            return wx_error(45009, "reach max api daily quota limit");
        }
        app.stable_force_refreshes.push(now);
    } else if let Some((token, expires_at)) = current
        && expires_at - now > TOKEN_OVERLAP_SECS
    {
        // Same token while it has more than 5 minutes left; WeChat renews it in the last 5 minutes.
        return HttpResponse::Ok().json(serde_json::json!({"access_token": token, "expires_in": expires_at - now}));
    }
    let (token, expires_in) = world.issue_token(&appid, TokenFlavor::Stable);
    HttpResponse::Ok().json(serde_json::json!({"access_token": token, "expires_in": expires_in}))
}

async fn get_ticket(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let mut world = sim.world();
    let appid = match world.check_token(q.get("access_token").map(String::as_str)) {
        Ok(a) => a,
        Err(rejection) => {
            let (code, msg) = rejection.errcode();
            return wx_error(code, msg);
        }
    };
    let kind = match q.get("type").map(String::as_str) {
        Some(k @ ("jsapi" | "wx_card")) => k.to_owned(),
        _ => return wx_error(40097, "invalid args"),
    };
    let now = world.now();
    let Some(app) = world.apps.get_mut(&appid) else {
        return wx_error(40013, "invalid appid");
    };
    let ticket = match app.tickets.get(&kind) {
        Some(t) if t.expires_at > now => t.clone(),
        _ => {
            let t = TicketRecord {
                value: random_string(86),
                expires_at: now + TOKEN_TTL_SECS,
            };
            app.tickets.insert(kind, t.clone());
            t
        }
    };
    HttpResponse::Ok().json(serde_json::json!({
        "errcode": 0,
        "errmsg": "ok",
        "ticket": ticket.value,
        "expires_in": ticket.expires_at - now,
    }))
}
