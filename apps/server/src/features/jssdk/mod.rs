//! JS-SDK: the `wx.config` a WeChat web page needs (signed with the shared, cached `jsapi_ticket`), and in sandbox
//! mode a demo page that runs it against the simulator's stand-in for WeChat's script.

pub mod openapi;
mod routes;
pub mod service;

pub use service::DEFAULT_JS_API_LIST;

use crate::configuration::Settings;
use crate::platform::Platform;
use crate::platform::wechat::WechatApps;
use actix_web::web;

/// What the JS-SDK capability holds.
pub struct State {
    platform: Platform,
    /// The official account (its shared `jsapi_ticket`).
    pub official: wechat::OfficialAccount,
    /// The hosts allowed to get a config: `wechat.js_domains`, else the host of `public_base_url`.
    pub js_domains: Vec<String>,
    /// The simulator's public address, in sandbox mode (the share demo loads its script).
    pub sandbox_sim_url: Option<String>,
}
crate::slice_state!(State);

/// The JS-SDK capability's state.
pub fn init(platform: &Platform, apps: &WechatApps, settings: &Settings) -> State {
    let js_domains = match &settings.wechat.js_domains {
        Some(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect(),
        _ => url::Url::parse(&platform.public_base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .into_iter()
            .collect(),
    };
    State {
        platform: platform.clone(),
        official: apps.official.clone(),
        js_domains,
        sandbox_sim_url: apps.sandbox_sim_url().map(str::to_owned),
    }
}

/// The API of this capability (under `/api/v1`).
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/jssdk/config").route(web::get().to(routes::config)));
}

/// The pages of this capability.
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/demo/share").route(web::get().to(routes::share_demo)));
}
