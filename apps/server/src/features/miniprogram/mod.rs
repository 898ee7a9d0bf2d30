//! Mini-program login: `wx.login` code → our bearer token (WeChat's session_key stays here), the verified phone
//! number (`getuserphonenumber`) and the older encryptedData profile.

pub mod openapi;
mod routes;
pub mod service;

use crate::features::auth::service::Sessions;
use crate::platform::Platform;
use crate::platform::wechat::WechatApps;
use actix_web::web;

/// What the mini-program capability holds.
pub struct State {
    platform: Platform,
    /// The mini program's client, when configured.
    pub miniprogram: Option<wechat_oauth::miniprogram::MiniProgramClient>,
    /// Users and sessions.
    pub sessions: Sessions,
}
crate::slice_state!(State);

/// The mini-program capability's state.
pub fn init(platform: &Platform, apps: &WechatApps, sessions: Sessions) -> State {
    State {
        platform: platform.clone(),
        miniprogram: apps.miniprogram.as_ref().map(wechat::MiniProgram::client),
        sessions,
    }
}

/// The API of this capability (under `/api/v1`).
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/miniprogram/login").route(web::post().to(routes::login)))
        .service(web::resource("/miniprogram/phone").route(web::post().to(routes::phone)))
        .service(web::resource("/miniprogram/profile").route(web::post().to(routes::profile)))
        .service(web::resource("/miniprogram/logout").route(web::post().to(routes::logout)));
}
