//! Web OAuth (authorize page, `/sns/*`) and mini-program login (`jscode2session`, `getwxacodeunlimit`).

use crate::control::bad_request;
use crate::mp::{query, wx_error};
use crate::pages::{error_page, render};
use crate::state::{SimHandle, SimUser, UserTokenRecord, World, random_string};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use serde::Deserialize;
use std::collections::HashMap;

/// OAuth and `wx.login` codes live 5 minutes.
const CODE_TTL_SECS: i64 = 300;
/// Web access tokens live 2 hours.
const WEB_TOKEN_TTL_SECS: i64 = 7200;
/// Refresh tokens live 30 days.
const REFRESH_TTL_SECS: i64 = 30 * 86_400;
/// `jscode2session` allows 100 calls per user per minute.
const LOGINS_PER_MINUTE: usize = 100;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/connect/oauth2/authorize", web::get().to(authorize_page))
        .route("/connect/qrconnect", web::get().to(qrconnect_page))
        .route("/connect/oauth2/authorize/confirm", web::post().to(authorize_confirm))
        .route("/sns/oauth2/access_token", web::get().to(exchange_code))
        .route("/sns/oauth2/refresh_token", web::get().to(refresh_token))
        .route("/sns/userinfo", web::get().to(userinfo))
        .route("/sns/auth", web::get().to(check_auth))
        .route("/sns/jscode2session", web::get().to(jscode2session))
        .route("/wxa/getwxacodeunlimit", web::post().to(wxacode_unlimit))
        .route("/wxa/business/getuserphonenumber", web::post().to(phone_number))
        .route("/_sim/miniprogram/phone_code", web::post().to(control_phone_code))
        .route("/_sim/users", web::post().to(add_user))
        .route("/_sim/users", web::get().to(list_users))
        .route("/_sim/oauth/code", web::post().to(control_oauth_code))
        .route("/_sim/miniprogram/login", web::post().to(control_js_code))
        .route("/_sim/miniprogram/pages", web::post().to(control_pages))
        .route("/_sim/miniprogram/encrypt", web::post().to(control_encrypt))
        .route("/_sim/wxa/open", web::get().to(wxa_open))
        .route("/_sim/miniprogram/backend", web::post().to(control_backend))
        .route("/_sim/static/sim.css", web::get().to(crate::pages::stylesheet));
}

#[derive(askama::Template)]
#[template(path = "sim_authorize.html")]
struct AuthorizePage<'a> {
    title: &'a str,
    appid: &'a str,
    redirect_uri: &'a str,
    scope: &'a str,
    state: &'a str,
    userinfo: bool,
    users: &'a [SimUser],
}

/// The authorize parameters, checked the way WeChat checks them; `Err` is WeChat's error page.
struct AuthorizeParams {
    appid: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
}

fn check_authorize(sim: &SimHandle, q: &HashMap<String, String>) -> Result<AuthorizeParams, HttpResponse> {
    let appid = q
        .get("appid")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| error_page(10012, "appid 不能为空"))?;
    if !sim.world().apps.contains_key(appid) {
        return Err(error_page(40013, "appid 参数错误 (invalid appid)"));
    }
    let redirect_uri = q
        .get("redirect_uri")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| error_page(10011, "redirect_uri 不能为空"))?;
    let valid_redirect = redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://");
    if !valid_redirect || redirect_uri.contains(['\r', '\n', ' ']) {
        return Err(error_page(10003, "redirect_uri 参数错误"));
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return Err(error_page(10010, "response_type 参数错误"));
    }
    // The website login's scope belongs to the qrconnect page (and its confirm), the others to the in-WeChat page.
    let qrconnect = q.get("qrconnect").is_some_and(|v| v == "1");
    let scope = match q.get("scope").map(String::as_str) {
        None | Some("") => return Err(error_page(10010, "scope 不能为空")),
        Some("snsapi_login") if qrconnect => "snsapi_login".to_owned(),
        Some(s @ ("snsapi_base" | "snsapi_userinfo")) if !qrconnect => s.to_owned(),
        Some(_) => return Err(error_page(10005, "此公众号并没有这些 scope 的权限")),
    };
    let state = q.get("state").cloned();
    if let Some(s) = &state
        && (s.len() > 128 || !s.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(error_page(10013, "state 参数错误：最多 128 字节的 a-zA-Z0-9"));
    }
    Ok(AuthorizeParams {
        appid: appid.clone(),
        redirect_uri: redirect_uri.clone(),
        scope,
        state,
    })
}

fn redirect_with_code(p: &AuthorizeParams, code: &str) -> String {
    let sep = if p.redirect_uri.contains('?') { '&' } else { '?' };
    let mut url = format!("{}{sep}code={code}", p.redirect_uri.split('#').next().unwrap_or(""));
    if let Some(state) = &p.state {
        url.push_str("&state=");
        url.push_str(state);
    }
    url
}

fn cookie_name(appid: &str) -> String {
    format!("wxsim_{}", appid.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
}

/// `GET /connect/oauth2/authorize`: the page where a person picks which simulated user they are. With
/// `snsapi_base` and a remembered user it redirects silently, as WeChat does.
async fn authorize_page(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let p = match check_authorize(&sim, &q) {
        Ok(p) => p,
        Err(page) => return page,
    };
    let remembered = req
        .cookie(&cookie_name(&p.appid))
        .map(|c| c.value().to_owned())
        .filter(|openid| sim.world().users.contains_key(&(p.appid.clone(), openid.clone())));
    if p.scope == "snsapi_base"
        && let Some(openid) = remembered
        && let Some(code) = sim.issue_oauth_code(&p.appid, &openid, &p.scope)
    {
        return HttpResponse::Found()
            .insert_header((header::LOCATION, redirect_with_code(&p, &code)))
            .finish();
    }
    let users = sim.users(&p.appid);
    render(&AuthorizePage {
        title: "微信授权",
        appid: &p.appid,
        redirect_uri: &p.redirect_uri,
        scope: &p.scope,
        state: p.state.as_deref().unwrap_or(""),
        userinfo: p.scope == "snsapi_userinfo",
        users: &users,
    })
}

/// `GET /connect/qrconnect`: the open platform's website login. WeChat shows a QR code for the phone to scan; the
/// simulator shows who scans (the same user choice as the authorize page), then redirects with a code.
async fn qrconnect_page(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut q = query(&req);
    q.insert("qrconnect".into(), "1".into());
    let p = match check_authorize(&sim, &q) {
        Ok(p) => p,
        Err(page) => return page,
    };
    let users = sim.users(&p.appid);
    render(&AuthorizePage {
        title: "微信扫码登录 · Log in with WeChat",
        appid: &p.appid,
        redirect_uri: &p.redirect_uri,
        scope: &p.scope,
        state: p.state.as_deref().unwrap_or(""),
        userinfo: true,
        users: &users,
    })
}

/// `POST /connect/oauth2/authorize/confirm`: the person approved as `openid` (or as a new user).
async fn authorize_confirm(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    form.insert("response_type".into(), "code".into());
    if form.get("scope").is_some_and(|s| s == "snsapi_login") {
        form.insert("qrconnect".into(), "1".into());
    }
    if form.get("state").is_some_and(String::is_empty) {
        form.remove("state");
    }
    let p = match check_authorize(&sim, &form) {
        Ok(p) => p,
        Err(page) => return page,
    };
    let openid = match form.get("openid").filter(|o| !o.is_empty()) {
        Some(o) => o.clone(),
        None => {
            let nickname = form.get("nickname").map(|n| n.trim()).unwrap_or("");
            if nickname.is_empty() || nickname.chars().count() > 32 {
                return error_page(47001, "昵称必须是 1–32 个字符 · nickname must be 1–32 characters");
            }
            let openid = format!("o{}", random_string(27));
            let Some(mut user) = sim.world().ensure_user(&p.appid, &openid) else {
                return error_page(40013, "appid 参数错误");
            };
            user.nickname = nickname.to_owned();
            sim.add_user(user);
            openid
        }
    };
    let Some(code) = sim.issue_oauth_code(&p.appid, &openid, &p.scope) else {
        return error_page(40013, "appid 参数错误");
    };
    HttpResponse::Found()
        .insert_header((header::LOCATION, redirect_with_code(&p, &code)))
        .cookie(
            actix_web::cookie::Cookie::build(cookie_name(&p.appid), openid)
                .path("/")
                .http_only(true)
                .same_site(actix_web::cookie::SameSite::Lax)
                .finish(),
        )
        .finish()
}

fn check_app_secret(w: &World, appid: Option<&String>, secret: Option<&String>) -> Result<String, HttpResponse> {
    let appid = appid
        .filter(|a| !a.is_empty())
        .ok_or_else(|| wx_error(41002, "appid missing"))?;
    let app = w.apps.get(appid).ok_or_else(|| wx_error(40013, "invalid appid"))?;
    match secret.filter(|s| !s.is_empty()) {
        None => Err(wx_error(41004, "appsecret missing")),
        Some(s) if *s != app.secret => Err(wx_error(40125, "invalid appsecret")),
        Some(_) => Ok(appid.clone()),
    }
}

fn token_response(w: &mut World, appid: &str, openid: &str, scope: &str, refresh: Option<String>) -> HttpResponse {
    let now = w.now();
    let access_token = random_string(88);
    w.web_tokens.insert(
        access_token.clone(),
        UserTokenRecord {
            appid: appid.to_owned(),
            openid: openid.to_owned(),
            scope: scope.to_owned(),
            expires_at: now + WEB_TOKEN_TTL_SECS,
        },
    );
    let refresh_token = refresh.unwrap_or_else(|| {
        let rt = random_string(88);
        w.refresh_tokens.insert(
            rt.clone(),
            UserTokenRecord {
                appid: appid.to_owned(),
                openid: openid.to_owned(),
                scope: scope.to_owned(),
                expires_at: now + REFRESH_TTL_SECS,
            },
        );
        rt
    });
    let user = w.users.get(&(appid.to_owned(), openid.to_owned()));
    let mut body = serde_json::json!({
        "access_token": access_token,
        "expires_in": WEB_TOKEN_TTL_SECS,
        "refresh_token": refresh_token,
        "openid": openid,
        "scope": scope,
    });
    if let Some(u) = user {
        if matches!(scope, "snsapi_userinfo" | "snsapi_login")
            && let Some(unionid) = &u.unionid
        {
            body["unionid"] = unionid.clone().into();
        }
        if u.snapshot {
            body["is_snapshotuser"] = 1.into();
        }
    }
    HttpResponse::Ok().json(body)
}

/// The checks `/sns/oauth2/access_token` and `/sns/jscode2session` share: app and secret, grant type, and the
/// one-time code (unknown, another app's or older than 5 minutes 40029; used 40163). Returns the appid and the code.
fn check_code_request<'a>(
    w: &World,
    q: &'a HashMap<String, String>,
    code_param: &str,
    codes: &HashMap<String, crate::state::CodeRecord>,
) -> Result<(String, &'a String, crate::state::CodeRecord), HttpResponse> {
    let appid = check_app_secret(w, q.get("appid"), q.get("secret"))?;
    if q.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return Err(wx_error(40002, "invalid grant_type"));
    }
    let code = q
        .get(code_param)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| wx_error(41008, "missing code"))?;
    let record = codes
        .get(code)
        .cloned()
        .ok_or_else(|| wx_error(40029, "invalid code"))?;
    if record.appid != appid || record.issued_at + CODE_TTL_SECS <= w.now() {
        return Err(wx_error(40029, "invalid code"));
    }
    if record.used {
        return Err(wx_error(40163, "code been used"));
    }
    Ok((appid, code, record))
}

async fn exchange_code(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let mut w = sim.world();
    let (appid, code, record) = match check_code_request(&w, &q, "code", &w.oauth_codes) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Some(r) = w.oauth_codes.get_mut(code) {
        r.used = true;
    }
    token_response(&mut w, &appid, &record.openid, &record.scope, None)
}

async fn refresh_token(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let mut w = sim.world();
    let Some(appid) = q.get("appid").filter(|a| !a.is_empty()) else {
        return wx_error(41002, "appid missing");
    };
    if !w.apps.contains_key(appid) {
        return wx_error(40013, "invalid appid");
    }
    if q.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return wx_error(40002, "invalid grant_type");
    }
    let Some(rt) = q.get("refresh_token").filter(|r| !r.is_empty()) else {
        return wx_error(41003, "refresh_token missing");
    };
    let now = w.now();
    let Some(record) = w.refresh_tokens.get(rt).cloned() else {
        return wx_error(40030, "invalid refresh_token");
    };
    if record.appid != *appid {
        return wx_error(40030, "invalid refresh_token");
    }
    if record.expires_at <= now {
        return wx_error(42002, "refresh_token expired");
    }
    token_response(&mut w, appid, &record.openid, &record.scope, Some(rt.clone()))
}

/// Checks a web access token; `Err` is WeChat's answer.
fn check_web_token(w: &World, q: &HashMap<String, String>) -> Result<UserTokenRecord, HttpResponse> {
    let Some(token) = q.get("access_token").filter(|t| !t.is_empty()) else {
        return Err(wx_error(41001, "access_token missing"));
    };
    let record = w
        .web_tokens
        .get(token)
        .ok_or_else(|| wx_error(40001, "invalid credential, access_token is invalid or not latest"))?;
    if record.expires_at <= w.now() {
        return Err(wx_error(42001, "access_token expired"));
    }
    if q.get("openid") != Some(&record.openid) {
        return Err(wx_error(40003, "invalid openid"));
    }
    Ok(record.clone())
}

async fn userinfo(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let w = sim.world();
    let record = match check_web_token(&w, &q) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if record.scope != "snsapi_userinfo" && record.scope != "snsapi_login" {
        return wx_error(48001, "api unauthorized");
    }
    let Some(u) = w.users.get(&(record.appid.clone(), record.openid.clone())) else {
        return wx_error(40003, "invalid openid");
    };
    let mut body = serde_json::json!({
        "openid": u.openid,
        "nickname": u.nickname,
        "sex": u.sex,
        "province": u.province,
        "city": u.city,
        "country": u.country,
        "headimgurl": u.headimgurl,
        "privilege": [],
    });
    if let Some(unionid) = &u.unionid {
        body["unionid"] = unionid.clone().into();
    }
    HttpResponse::Ok().json(body)
}

async fn check_auth(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    match check_web_token(&sim.world(), &q) {
        Ok(_) => HttpResponse::Ok().json(serde_json::json!({"errcode": 0, "errmsg": "ok"})),
        Err(resp) => resp,
    }
}

async fn jscode2session(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let mut w = sim.world();
    let (appid, code, record) = match check_code_request(&w, &q, "js_code", &w.js_codes) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = w.now();
    let key = (appid.clone(), record.openid.clone());
    let logins = w.logins.entry(key.clone()).or_default();
    logins.retain(|t| now - t < 60);
    if logins.len() >= LOGINS_PER_MINUTE {
        return wx_error(45011, "api minute-quota reach limit  mustslower  retry next minute");
    }
    logins.push(now);
    let Some(user) = w.users.get(&key).cloned() else {
        return wx_error(40029, "invalid code");
    };
    if user.blocked {
        return wx_error(40226, "code blocked");
    }
    if let Some(r) = w.js_codes.get_mut(code) {
        r.used = true;
    }
    let mut raw = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    let session_key = base64::engine::general_purpose::STANDARD.encode(raw);
    w.sessions.insert(key, session_key.clone());
    let mut body = serde_json::json!({"openid": user.openid, "session_key": session_key});
    if let Some(unionid) = &user.unionid {
        body["unionid"] = unionid.clone().into();
    }
    HttpResponse::Ok().json(body)
}

/// The phone number of a simulated user: the configured one, else `138` and eight digits derived from the openid.
fn phone_of(user: &crate::state::SimUser) -> String {
    user.phone.clone().unwrap_or_else(|| {
        let digits: u64 = user.openid.bytes().fold(1_469_598_103_934_665_603u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(1_099_511_628_211)
        });
        format!("138{:08}", digits % 100_000_000)
    })
}

/// `POST /wxa/business/getuserphonenumber?access_token {code, openid?}`: a single-use, five-minute code from the
/// page's `getPhoneNumber` button → `phone_info` with a watermark. 40029 for an unknown, expired, used or another
/// app's code; 40003 when `openid` is given and is not the code's user.
async fn phone_number(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let mut w = sim.world();
    let appid = match w.check_token(q.get("access_token").map(String::as_str)) {
        Ok(a) => a,
        Err(rejection) => {
            let (code, msg) = rejection.errcode();
            return wx_error(code, msg);
        }
    };
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return wx_error(47001, "data format error");
    };
    let Some(code) = request
        .get("code")
        .and_then(serde_json::Value::as_str)
        .filter(|c| !c.is_empty())
    else {
        return wx_error(41008, "missing code");
    };
    let now = w.now();
    let Some(record) = w.phone_codes.get(code).cloned() else {
        return wx_error(40029, "invalid code");
    };
    if record.appid != appid || record.used || record.issued_at + CODE_TTL_SECS <= now {
        return wx_error(40029, "invalid code");
    }
    if let Some(openid) = request.get("openid").and_then(serde_json::Value::as_str)
        && openid != record.openid
    {
        return wx_error(40003, "invalid openid");
    }
    if let Some(r) = w.phone_codes.get_mut(code) {
        r.used = true;
    }
    let Some(user) = w.users.get(&(appid.clone(), record.openid.clone())).cloned() else {
        return wx_error(40029, "invalid code");
    };
    let phone = phone_of(&user);
    HttpResponse::Ok().json(serde_json::json!({
        "errcode": 0,
        "errmsg": "ok",
        "phone_info": {
            "phoneNumber": phone,
            "purePhoneNumber": phone,
            "countryCode": "86",
            "watermark": {"timestamp": now, "appid": appid},
        }
    }))
}

async fn control_phone_code(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let r: LoginRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match sim.issue_phone_code(&r.appid, &r.openid) {
        Some(code) => HttpResponse::Ok().json(serde_json::json!({"code": code})),
        None => bad_request("unknown_app", "unknown appid or empty openid"),
    }
}

fn is_scene_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$&'()*+,/:;=?@-._~".contains(c)
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn wxacode_unlimit(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let (appid, pages) = {
        let w = sim.world();
        let appid = match w.check_token(q.get("access_token").map(String::as_str)) {
            Ok(a) => a,
            Err(rejection) => {
                let (code, msg) = rejection.errcode();
                return wx_error(code, msg);
            }
        };
        let pages = w.apps.get(&appid).map(|a| a.pages.clone()).unwrap_or_default();
        (appid, pages)
    };
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return wx_error(47001, "data format error");
    };
    let Some(scene) = request.get("scene").and_then(serde_json::Value::as_str) else {
        return wx_error(40169, "invalid length for scene, or the data is not json string");
    };
    let len = scene.chars().count();
    if len == 0 || len > 32 {
        return wx_error(40169, "invalid length for scene, or the data is not json string");
    }
    if !scene.chars().all(is_scene_char) {
        return wx_error(40129, "invalid scene");
    }
    let page = request.get("page").and_then(serde_json::Value::as_str).unwrap_or("");
    let check_path = request
        .get("check_path")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(true);
    if page.starts_with('/')
        || page.contains('?')
        || (check_path && !page.is_empty() && !pages.is_empty() && !pages.iter().any(|p| p == page))
    {
        return wx_error(41030, "invalid page");
    }
    let env = request
        .get("env_version")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("release");
    if !matches!(env, "release" | "trial" | "develop") {
        return wx_error(40097, "invalid args");
    }
    let width = request
        .get("width")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(430)
        .clamp(280, 1280) as u32;
    let conn = req.connection_info();
    let url = format!(
        "{}://{}/_sim/wxa/open?appid={}&scene={}&page={}&env_version={env}",
        conn.scheme(),
        conn.host(),
        percent(&appid),
        percent(scene),
        percent(page)
    );
    let opts = qr_render::RenderOptions {
        size_px: width,
        ecc: qr_render::Ecc::Medium,
        ..Default::default()
    };
    match qr_render::render_png(&url, &opts) {
        Ok(png) => HttpResponse::Ok().content_type("image/png").body(png),
        Err(_) => wx_error(-1, "system error"),
    }
}

/// What scanning a mini-program code does: "opens" the mini program at `page` with `scene`.
async fn wxa_open(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let wants_json = q.get("format").is_some_and(|f| f == "json")
        || req
            .headers()
            .get(actix_web::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
    if !wants_json {
        return crate::miniapp::open_page(&sim, &q);
    }
    HttpResponse::Ok().json(serde_json::json!({
        "opened": "miniprogram",
        "appid": q.get("appid"),
        "page": q.get("page"),
        "scene": q.get("scene"),
        "env_version": q.get("env_version"),
    }))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, HttpResponse> {
    serde_json::from_slice(body).map_err(|e| bad_request("invalid_json", format!("invalid JSON body: {e}")))
}

async fn add_user(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let user: SimUser = match parse(&body) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if user.openid.is_empty() || user.openid.len() > 64 {
        return bad_request("invalid_openid", "openid must be 1 to 64 characters");
    }
    if user.sex > 2 {
        return bad_request("invalid_sex", "sex is 0, 1 or 2");
    }
    if !sim.add_user(user.clone()) {
        return bad_request("unknown_app", format!("app {} is not registered", user.appid));
    }
    HttpResponse::Created().json(user)
}

async fn list_users(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let q = query(&req);
    let Some(appid) = q.get("appid") else {
        return bad_request("missing_appid", "give ?appid=");
    };
    HttpResponse::Ok().json(serde_json::json!({"users": sim.users(appid)}))
}

#[derive(Deserialize)]
struct CodeRequest {
    appid: String,
    openid: String,
    #[serde(default = "base_scope")]
    scope: String,
}

fn base_scope() -> String {
    "snsapi_base".into()
}

async fn control_oauth_code(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let r: CodeRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !matches!(r.scope.as_str(), "snsapi_base" | "snsapi_userinfo") {
        return bad_request("invalid_scope", "scope is snsapi_base or snsapi_userinfo");
    }
    match sim.issue_oauth_code(&r.appid, &r.openid, &r.scope) {
        Some(code) => HttpResponse::Ok().json(serde_json::json!({"code": code})),
        None => bad_request("unknown_app", "unknown appid or empty openid"),
    }
}

#[derive(Deserialize)]
struct LoginRequest {
    appid: String,
    openid: String,
}

async fn control_js_code(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let r: LoginRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match sim.issue_js_code(&r.appid, &r.openid) {
        Some(code) => HttpResponse::Ok().json(serde_json::json!({"js_code": code})),
        None => bad_request("unknown_app", "unknown appid or empty openid"),
    }
}

#[derive(Deserialize)]
struct PagesRequest {
    appid: String,
    pages: Vec<String>,
}

async fn control_pages(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let r: PagesRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if sim.set_pages(&r.appid, r.pages) {
        HttpResponse::NoContent().finish()
    } else {
        bad_request("unknown_app", "unknown appid")
    }
}

#[derive(Deserialize)]
struct BackendRequest {
    appid: String,
    url: String,
}

/// `POST /_sim/miniprogram/backend {"appid", "url"}`: the server the simulated mini program talks to (what a real
/// mini program's `wx.request` calls), so that a person can play the phone in the scan-to-login flow.
async fn control_backend(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let r: BackendRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !(r.url.starts_with("http://") || r.url.starts_with("https://")) {
        return bad_request("invalid_url", "url must be http(s)://host[:port]");
    }
    if sim.set_backend(&r.appid, r.url.trim_end_matches('/')) {
        HttpResponse::NoContent().finish()
    } else {
        bad_request("unknown_app", "unknown appid")
    }
}

#[derive(Deserialize)]
struct EncryptRequest {
    appid: String,
    openid: String,
    data: serde_json::Value,
}

/// Encrypts `data` (plus a watermark) with the user's current session key, as WeChat does for `getUserInfo`:
/// `(encryptedData, iv)`, or why not.
pub(crate) fn encrypt_for(
    sim: &SimHandle,
    appid: &str,
    openid: &str,
    mut data: serde_json::Value,
) -> Result<(String, String), (&'static str, &'static str)> {
    use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
    let Some(session_key) = sim.session_key(appid, openid) else {
        return Err((
            "no_session",
            "the user has no session: log in with jscode2session first",
        ));
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let Ok(key) = b64.decode(&session_key) else {
        return Err(("no_session", "corrupt session key"));
    };
    if !data.is_object() {
        return Err(("invalid_data", "data must be a JSON object"));
    }
    data["watermark"] = serde_json::json!({"appid": appid, "timestamp": sim.now()});
    let mut iv = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut iv);
    let Ok(cipher) = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, &iv) else {
        return Err(("no_session", "corrupt session key"));
    };
    let ciphertext = cipher.encrypt_padded_vec_mut::<Pkcs7>(data.to_string().as_bytes());
    Ok((b64.encode(ciphertext), b64.encode(iv)))
}

/// Encrypts `data` (plus a watermark) with the user's current session key, as WeChat does for
/// `getPhoneNumber` / `getUserInfo`: returns `{encryptedData, iv}`.
async fn control_encrypt(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let r: EncryptRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match encrypt_for(&sim, &r.appid, &r.openid, r.data) {
        Ok((encrypted, iv)) => HttpResponse::Ok().json(serde_json::json!({"encryptedData": encrypted, "iv": iv})),
        Err((code, message)) => bad_request(code, message),
    }
}
