//! Coupons: the public view, POS redemption (batched, `pos`), the scan page and its confirm, QR images, the
//! customer's list, and the admin's void and redemption log.

pub mod admin;
mod admin_routes;
pub mod busifavor;
pub mod openapi;
pub mod pos;
pub mod repo;
mod routes;
pub mod service;
pub mod views;
pub mod words;

use crate::configuration::Settings;
use crate::features::auth::service::WebLogin;
use crate::features::outbox::Outbox;
use crate::http::auth::AuthKeys;
use crate::platform::Platform;
use crate::platform::wechat::WechatApps;
use actix_web::web;
use std::sync::Arc;

/// What the coupons capability holds.
pub struct State {
    platform: Platform,
    /// POS redemptions, batched onto the pool.
    pub pos: pos::PosBatcher,
    /// The card API (card-backed coupons: `cardExt`).
    pub cards: wechat_card::CardClient,
    /// The outbox, woken after a redemption queued a card consume.
    pub outbox: Outbox,
    /// Sends visitors to WeChat to log in.
    pub login: WebLogin,
    /// CSRF keys.
    pub keys: Arc<AuthKeys>,
    /// The simulator's public address, in sandbox mode (its JS-SDK stand-in).
    pub sandbox_sim_url: Option<String>,
    /// WeChat Pay 商家券, when the merchant has it.
    pub busifavor: Option<crate::platform::busifavor::Busifavor>,
}
crate::slice_state!(State);

/// The coupons capability's state (its POS batcher starts here, on the current runtime).
pub fn init(
    platform: &Platform,
    apps: &WechatApps,
    settings: &Settings,
    outbox: Outbox,
    login: WebLogin,
    keys: Arc<AuthKeys>,
) -> State {
    let db = &settings.database;
    let pos = pos::PosBatcher::start(
        platform.db.clone(),
        pos_slots(db.redeem_batch_slots, db.redeem_batch_max, db.pool_size),
        usize::try_from(db.redeem_batch_max).unwrap_or(1),
        platform.clock.clone(),
    );
    State {
        platform: platform.clone(),
        pos,
        cards: apps.official.cards(),
        outbox,
        login,
        keys,
        sandbox_sim_url: apps.sandbox_sim_url().map(str::to_owned),
        busifavor: apps.busifavor.clone(),
    }
}

/// Concurrent POS batches unless configured: one per CPU core (at least 2, at most 8), and never more than half the
/// pool (the rest serves pages, admin calls and token refreshes). Fewer, fuller batches beat many small ones: on the
/// 2-core benchmark machine 1/2/4/8 slots gave 10.8k/10.6–11.7k/10.5k/9.2k redemptions/s (docs/benchmarks.md). With
/// batching off (`redeem_batch_max = 1`) every connection of the pool may carry a redemption.
fn pos_slots(configured: Option<u32>, batch_max: u32, pool_size: u32) -> usize {
    if let Some(n) = configured {
        return usize::try_from(n).unwrap_or(1).max(1);
    }
    let pool = usize::try_from(pool_size).unwrap_or(1).max(1);
    if batch_max <= 1 {
        return pool;
    }
    let cores = std::thread::available_parallelism().map_or(2, usize::from).clamp(2, 8);
    cores.min(pool / 2).max(1)
}

/// The API of this capability (inside `/api/v1`). The POS route comes first: the router tries routes in order.
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/redemptions")
            .route(web::post().to(routes::redeem))
            .route(web::get().to(admin_routes::log)),
    )
    .service(web::resource("/coupons/{code}").route(web::get().to(routes::get_coupon)))
    .service(web::resource("/coupons/{code}/card-ext").route(web::get().to(routes::card_ext)))
    .service(web::resource("/coupons/{code}/busifavor-send").route(web::get().to(busifavor::plugin_send)))
    .service(web::resource("/coupons/{code}/void").route(web::post().to(admin_routes::void)));
}

/// The pages of this capability.
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/c/{code}").route(web::get().to(routes::scan_page)))
        .service(web::resource("/c/{code}/redeem").route(web::post().to(routes::confirm)))
        .service(web::resource("/c/{code}/result").route(web::get().to(routes::result_page)))
        .service(web::resource("/c/{code}/wechat-pay-coupon").route(web::get().to(busifavor::add_to_card_bag)))
        .service(
            web::resource("/staff/scan")
                .route(web::get().to(busifavor::scan_page))
                .route(web::post().to(busifavor::scan_submit)),
        )
        .service(web::resource("/c/{code}/status").route(web::get().to(routes::live_status)))
        .service(web::resource("/c/{code}/qr.{format}").route(web::get().to(routes::qr)))
        .service(web::resource("/coupons/mine").route(web::get().to(routes::mine)));
}

#[cfg(test)]
mod tests {
    use super::pos_slots;

    #[test]
    fn pos_slots_follow_configuration_batching_and_pool() {
        assert_eq!(pos_slots(Some(3), 64, 10), 3);
        // Batching off: every pooled connection may carry a redemption.
        assert_eq!(pos_slots(None, 1, 32), 32);
        // Batched: per core (2..=8), never more than half the pool, at least 1.
        let cores = std::thread::available_parallelism().map_or(2, usize::from).clamp(2, 8);
        assert_eq!(pos_slots(None, 64, 32), cores.min(16));
        assert_eq!(pos_slots(None, 64, 2), 1);
        assert_eq!(pos_slots(None, 64, 1), 1);
    }
}
