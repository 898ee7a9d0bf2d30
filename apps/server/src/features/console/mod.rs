//! The merchant console (`/console`): owners and managers run their shop from a browser or inside WeChat —
//! campaigns created, edited and ended (their buyers kept or refunded), coupons issued, found and voided, staff who
//! join by scanning an invite, redemptions with a CSV a bookkeeper opens in Excel, orders and refunds. Every page is
//! one merchant's, for a person who runs it ([`repo::Role`]); every change is audited with that person. Joining by
//! invite (`/join/{token}`) and the admin API's owner invites live here too.

/// The value of a step that may answer with a page instead (`Err(page)`): the handler returns that page.
macro_rules! or_page {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(page) => return page,
        }
    };
}

pub mod openapi;
mod pages;
mod pages_campaigns;
mod pages_money;
mod pages_stock;
pub(crate) mod people;
pub mod repo;
pub mod service;

use crate::features::auth::service::Sessions;
use crate::http::auth::AuthKeys;
use crate::platform::Platform;
use crate::platform::wechat::WechatApps;
use actix_web::web;
use std::sync::Arc;

/// What the console holds.
pub struct State {
    platform: Platform,
    /// Users and sessions.
    pub sessions: Sessions,
    /// CSRF keys.
    pub keys: Arc<AuthKeys>,
    /// WeChat Pay (refunds), when configured.
    pub payers: Option<crate::features::pay::Payers>,
    /// WeChat Pay 商家券 (a campaign's stock, made by its owner), when the merchant has it.
    pub busifavor: Option<crate::platform::busifavor::Busifavor>,
}
crate::slice_state!(State);

/// The console's state.
pub fn init(platform: &Platform, apps: &WechatApps, sessions: Sessions, keys: Arc<AuthKeys>) -> State {
    State {
        platform: platform.clone(),
        sessions,
        keys,
        payers: apps.pay.as_ref().and_then(crate::features::pay::Payers::from_apps),
        busifavor: apps.busifavor.clone(),
    }
}

/// The admin API of this capability (inside `/api/v1`).
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/merchants/{id}/invites").route(web::post().to(people::admin_invite)));
}

/// The console's pages.
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console").route(web::get().to(pages::home)))
        .service(web::resource("/console/{mid}").route(web::get().to(pages::dashboard)))
        .service(
            web::resource("/console/{mid}/campaigns")
                .route(web::get().to(pages::campaigns))
                .route(web::post().to(pages::create_campaign)),
        )
        .service(web::resource("/console/{mid}/campaigns/{cid}").route(web::get().to(pages::campaign)))
        .service(web::resource("/console/{mid}/campaigns/{cid}/edit").route(web::post().to(pages::edit_campaign)))
        .service(web::resource("/console/{mid}/campaigns/{cid}/issue").route(web::post().to(pages::issue)))
        .service(
            web::resource("/console/{mid}/campaigns/{cid}/wechat-pay-coupon")
                .app_data(web::PayloadConfig::new(crate::features::merchants::card::MAX_BODY))
                .route(web::post().to(pages::wechat_pay_coupon)),
        )
        .service(
            web::resource("/console/{mid}/campaigns/{cid}/end")
                .route(web::get().to(pages::end_preview))
                .route(web::post().to(pages::end_campaign)),
        )
        .service(web::resource("/console/{mid}/coupons").route(web::get().to(pages::coupons)))
        .service(web::resource("/console/{mid}/coupons/{code}/void").route(web::post().to(pages::void)))
        .service(web::resource("/console/{mid}/redemptions").route(web::get().to(pages::redemptions)))
        .service(web::resource("/console/{mid}/redemptions.csv").route(web::get().to(pages::redemptions_csv)))
        .service(web::resource("/console/{mid}/orders").route(web::get().to(pages::orders)))
        .service(
            web::resource("/console/{mid}/orders/{no}/refund")
                .route(web::get().to(pages::refund_preview))
                .route(web::post().to(pages::refund)),
        )
        .service(web::resource("/console/{mid}/staff").route(web::get().to(people::staff)))
        .service(web::resource("/console/{mid}/staff/{sid}/approve").route(web::post().to(people::approve)))
        .service(web::resource("/console/{mid}/staff/{sid}/remove").route(web::post().to(people::remove)))
        .service(web::resource("/console/{mid}/invites").route(web::post().to(people::make_invite)))
        .service(web::resource("/console/{mid}/invites/{iid}/revoke").route(web::post().to(people::revoke)))
        .service(web::resource("/console/{mid}/invites/{iid}/qr.png").route(web::get().to(people::invite_qr)))
        .service(
            web::resource("/join/{token}")
                .route(web::get().to(people::join_page))
                .route(web::post().to(people::join)),
        );
}
