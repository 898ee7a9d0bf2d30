//! Merchants, their staff, campaigns and issuing coupons: the admin use cases and the admin API; a campaign's
//! WeChat card, follow code and redeemed message.

pub mod card;
pub mod follow;
pub mod messages;
pub mod openapi;
pub mod repo;
mod routes;
pub mod stock;
pub use routes::admin_error as routes_error;
pub mod service;
pub mod views;

use crate::platform::Platform;
use crate::platform::wechat::WechatApps;
use actix_web::web;

/// What the merchants capability holds.
pub struct State {
    platform: Platform,
    /// The card API (a campaign's WeChat card).
    pub cards: wechat_card::CardClient,
    /// Parametric QR codes of the official account (follow codes).
    pub qrcodes: wechat_message::qrcode::QrCodeClient,
    /// Where QR code images are shown (`wechat.mp_base_url`).
    pub mp_base_url: String,
    /// WeChat Pay (refunds when a campaign ends), when configured.
    pub payers: Option<crate::features::pay::Payers>,
    /// WeChat Pay 商家券 (a campaign's stock), when the merchant has it.
    pub busifavor: Option<crate::platform::busifavor::Busifavor>,
}
crate::slice_state!(State);

/// The merchants capability's state.
pub fn init(platform: &Platform, apps: &WechatApps) -> State {
    State {
        platform: platform.clone(),
        cards: apps.official.cards(),
        qrcodes: apps.official.qrcodes(),
        mp_base_url: apps.mp_base_url.clone(),
        payers: apps.pay.as_ref().and_then(crate::features::pay::Payers::from_apps),
        busifavor: apps.busifavor.clone(),
    }
}

/// The admin API of this capability (inside `/api/v1`).
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/merchants")
            .route(web::post().to(routes::create_merchant))
            .route(web::get().to(routes::list_merchants)),
    )
    .service(web::resource("/merchants/{id}").route(web::get().to(routes::get_merchant)))
    .service(
        web::resource("/staff")
            .route(web::post().to(routes::create_staff))
            .route(web::get().to(routes::list_staff)),
    )
    .service(web::resource("/staff/{id}").route(web::delete().to(routes::delete_staff)))
    .service(
        web::resource("/campaigns")
            .route(web::post().to(routes::create_campaign))
            .route(web::get().to(routes::list_campaigns)),
    )
    .service(web::resource("/campaigns/{id}").route(web::get().to(routes::get_campaign)))
    .service(web::resource("/campaigns/{id}/end").route(web::post().to(routes::end_campaign)))
    .service(
        web::resource("/campaigns/{id}/coupons")
            .route(web::post().to(routes::issue))
            .route(web::get().to(routes::list_coupons)),
    )
    .service(web::resource("/campaigns/{id}/follow-code").route(web::post().to(follow::create)))
    .service(
        web::resource("/campaigns/{id}/redeemed-message")
            .route(web::put().to(messages::put))
            .route(web::get().to(messages::get))
            .route(web::delete().to(messages::delete)),
    )
    .service(
        web::resource("/campaigns/{id}/wechat-card")
            .app_data(web::PayloadConfig::new(card::MAX_BODY))
            .route(web::post().to(card::attach)),
    )
    .service(
        web::resource("/campaigns/{id}/wechat-pay-coupon")
            .app_data(web::PayloadConfig::new(card::MAX_BODY))
            .route(web::post().to(stock::attach)),
    );
}
