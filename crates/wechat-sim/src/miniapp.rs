//! The simulated mini program a person drives in a browser ("play the phone"): the page a mini-program code opens
//! (`/_sim/wxa/open`), where they pick who they are; then the simulator does what the real mini program would, against
//! the mini program's server (`POST /_sim/miniprogram/backend`): `wx.login` → `POST /api/v1/miniprogram/login`,
//! `wx.getUserInfo` → `POST /api/v1/miniprogram/profile`, then `scan`, and on the person's click `confirm` or
//! `cancel` for the scene.

use crate::SimUser;
use crate::pages::{error_page, render};
use crate::state::SimHandle;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use std::collections::HashMap;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/_sim/wxa/login", web::post().to(login))
        .route("/_sim/wxa/decide", web::post().to(decide));
}

#[derive(askama::Template)]
#[template(path = "sim_miniapp_open.html")]
struct OpenPage<'a> {
    title: &'a str,
    appid: &'a str,
    page: &'a str,
    scene: &'a str,
    backend: Option<String>,
    users: &'a [SimUser],
}

#[derive(askama::Template)]
#[template(path = "sim_miniapp_confirm.html")]
struct ConfirmPage<'a> {
    title: &'a str,
    handle: &'a str,
    scene: &'a str,
    nickname: &'a str,
}

#[derive(askama::Template)]
#[template(path = "sim_miniapp_done.html")]
struct DonePage<'a> {
    title: &'a str,
    outcome: &'a str,
    zh: &'a str,
    en: &'a str,
}

/// `GET /_sim/wxa/open?appid&scene&page`: the mini program opened from a code — pick a user.
pub(crate) fn open_page(sim: &SimHandle, q: &HashMap<String, String>) -> HttpResponse {
    let appid = q.get("appid").map(String::as_str).unwrap_or("");
    let users = sim.users(appid);
    render(&OpenPage {
        title: "模拟小程序 · Simulated mini program",
        appid,
        page: q.get("page").map(String::as_str).unwrap_or(""),
        scene: q.get("scene").map(String::as_str).unwrap_or(""),
        backend: sim.backend(appid),
        users: &users,
    })
}

#[derive(Deserialize)]
struct LoginForm {
    appid: String,
    scene: String,
    openid: Option<String>,
    nickname: Option<String>,
}

fn client() -> Result<reqwest::Client, HttpResponse> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| error_page(-1, &format!("HTTP client: {e}")))
}

/// Calls the mini program's server; `Err` is a page naming what the server said.
async fn call(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: serde_json::Value,
) -> Result<serde_json::Value, HttpResponse> {
    let mut request = http.post(&url).json(&body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request
        .send()
        .await
        .map_err(|e| error_page(-1, &format!("the mini program's server did not answer ({url}): {e}")))?;
    let status = response.status();
    let value: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() {
        Ok(value)
    } else {
        let message = value["error"]["message"].as_str().unwrap_or("no message");
        let code = value["error"]["code"].as_str().unwrap_or("error");
        Err(error_page(i64::from(status.as_u16()), &format!("{code}: {message}")))
    }
}

async fn login(form: web::Form<LoginForm>, sim: web::Data<SimHandle>) -> HttpResponse {
    let form = form.into_inner();
    let Some(backend) = sim.backend(&form.appid) else {
        return error_page(-1, "this mini program has no server: POST /_sim/miniprogram/backend");
    };
    let openid = match (&form.openid, &form.nickname) {
        (Some(o), _) if !o.is_empty() => o.clone(),
        (_, Some(n)) if !n.trim().is_empty() => {
            let openid = format!("o-mp-{}", &crate::state::random_string(12));
            sim.add_user(SimUser {
                appid: form.appid.clone(),
                openid: openid.clone(),
                nickname: n.trim().chars().take(32).collect(),
                sex: 0,
                province: String::new(),
                city: String::new(),
                country: String::new(),
                headimgurl: String::new(),
                unionid: None,
                snapshot: false,
                blocked: false,
                phone: None,
            });
            openid
        }
        _ => return error_page(-1, "pick a user"),
    };
    let Some(user) = sim.users(&form.appid).into_iter().find(|u| u.openid == openid) else {
        return error_page(40003, "invalid openid");
    };
    let http = match client() {
        Ok(c) => c,
        Err(page) => return page,
    };
    // wx.login → the server's login.
    let Some(code) = sim.issue_js_code(&form.appid, &openid) else {
        return error_page(40013, "invalid appid");
    };
    let token = match call(
        &http,
        format!("{backend}/api/v1/miniprogram/login"),
        None,
        serde_json::json!({"code": code}),
    )
    .await
    {
        Ok(v) => v["token"].as_str().unwrap_or_default().to_owned(),
        Err(page) => return page,
    };
    // wx.getUserInfo → the server learns the nickname (shown on the website while it waits for the confirm).
    let profile = serde_json::json!({
        "openId": user.openid,
        "nickName": user.nickname,
        "avatarUrl": user.headimgurl,
        "unionId": user.unionid,
    });
    if let Ok((encrypted, iv)) = crate::oauth::encrypt_for(&sim, &form.appid, &openid, profile)
        && let Err(page) = call(
            &http,
            format!("{backend}/api/v1/miniprogram/profile"),
            Some(&token),
            serde_json::json!({"encrypted_data": encrypted, "iv": iv}),
        )
        .await
    {
        return page;
    }
    if let Err(page) = call(
        &http,
        format!("{backend}/api/v1/login/scenes/{}/scan", percent(&form.scene)),
        Some(&token),
        serde_json::json!({}),
    )
    .await
    {
        return page;
    }
    let handle = crate::state::random_string(24);
    sim.world()
        .miniapp_sessions
        .insert(handle.clone(), (form.appid.clone(), token));
    render(&ConfirmPage {
        title: "确认登录 · Confirm login",
        handle: &handle,
        scene: &form.scene,
        nickname: &user.nickname,
    })
}

#[derive(Deserialize)]
struct DecideForm {
    handle: String,
    scene: String,
    decision: String,
}

async fn decide(form: web::Form<DecideForm>, sim: web::Data<SimHandle>) -> HttpResponse {
    let form = form.into_inner();
    let Some((appid, token)) = sim.world().miniapp_sessions.get(&form.handle).cloned() else {
        return error_page(-1, "this page has expired: scan the code again");
    };
    let Some(backend) = sim.backend(&appid) else {
        return error_page(-1, "this mini program has no server");
    };
    let confirm = form.decision == "confirm";
    let action = if confirm { "confirm" } else { "cancel" };
    let http = match client() {
        Ok(c) => c,
        Err(page) => return page,
    };
    if let Err(page) = call(
        &http,
        format!("{backend}/api/v1/login/scenes/{}/{action}", percent(&form.scene)),
        Some(&token),
        serde_json::json!({}),
    )
    .await
    {
        return page;
    }
    sim.world().miniapp_sessions.remove(&form.handle);
    render(&DonePage {
        title: "完成 · Done",
        outcome: action,
        zh: if confirm {
            "已在网站上登录"
        } else {
            "已取消登录"
        },
        en: if confirm {
            "You are logged in on the website."
        } else {
            "Login cancelled."
        },
    })
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
