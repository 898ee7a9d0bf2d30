//! `/wechat/push`: WeChat's server pushes, authenticated, fresh and applied once.

pub mod repo;
mod routes;
pub mod service;

use crate::configuration::Settings;
use crate::platform::Platform;
use crate::platform::jobs::Jobs;
use crate::platform::wechat::WechatApps;
use actix_web::web;

/// What the push capability holds.
pub struct State {
    platform: Platform,
    /// The official account, whose push receiver opens the pushes.
    pub official: wechat::OfficialAccount,
    /// The mini program, whose message pushes (XML or JSON) arrive at `/wechat/miniprogram/push`.
    pub miniprogram: Option<wechat::MiniProgram>,
    window_secs: i64,
}
crate::slice_state!(State);

/// The push capability's state.
pub fn init(platform: &Platform, apps: &WechatApps, settings: &Settings) -> State {
    State {
        platform: platform.clone(),
        official: apps.official.clone(),
        miniprogram: apps.miniprogram.clone(),
        window_secs: i64::from(settings.wechat.push_window_secs),
    }
}

/// Forgets push nonces and dedupe records every minute, once past the windows that need them.
pub fn jobs(state: &State, jobs: &mut Jobs) {
    let (platform, window_secs) = (state.platform.clone(), state.window_secs);
    jobs.every("prune pushes", std::time::Duration::from_secs(60), move || {
        let platform = platform.clone();
        async move {
            match service::prune(&platform, window_secs).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "pruned push records"),
                Err(e) => tracing::warn!(error = %e, "cannot prune push records"),
            }
        }
    });
}

/// The pages of this capability: WeChat's server URLs (the official account's, the mini program's).
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/wechat/push")
            .route(web::get().to(routes::verify))
            .route(web::post().to(routes::receive_push)),
    )
    .service(
        web::resource("/wechat/miniprogram/push")
            .route(web::get().to(routes::verify_miniprogram))
            .route(web::post().to(routes::receive_miniprogram_push)),
    );
}
