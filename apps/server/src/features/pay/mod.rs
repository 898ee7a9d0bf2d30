//! WeChat Pay orders (v2 or v3, `pay.api_version`): JSAPI (inside WeChat, for a logged-in buyer) and NATIVE (a QR to
//! scan), their status and closing, refunds, and the payment notify applied exactly once however many times, in
//! whatever order and however concurrently WeChat delivers it; the buy page of a campaign's coupons.

pub mod bills;
mod buy;
pub mod ending;
pub mod gateway;
pub mod openapi;
pub mod reconciler;
pub mod repo;
mod routes;
pub mod service;

pub use gateway::Gateway;

use crate::configuration::Settings;
use crate::features::auth::service::{Sessions, WebLogin};
use crate::http::auth::AuthKeys;
use crate::platform::Platform;
use crate::platform::jobs::Jobs;
use crate::platform::wechat::WechatApps;
use actix_web::web;
use std::sync::Arc;

/// The merchant's clients: one per appid it takes payments for — the official account's (web pages, NATIVE codes)
/// and, when a mini program is configured, the mini program's (WeChat ties a JSAPI payment's openid to the appid of
/// its order, and `orderquery`, `closeorder` and refunds must name that same appid).
#[derive(Clone, Debug)]
pub struct Payers {
    /// The official account's.
    pub web: Gateway,
    /// The mini program's.
    pub miniprogram: Option<Gateway>,
}

impl Payers {
    /// The gateways of the merchant's product handles.
    pub fn from_apps(apps: &crate::platform::wechat::PayApps) -> Option<Payers> {
        Some(Payers {
            web: Gateway::from_pay(&apps.web)?,
            miniprogram: apps.miniprogram.as_ref().and_then(Gateway::from_pay),
        })
    }

    /// The client for an order's appid (`None`: the official account's).
    pub fn for_appid(&self, appid: Option<&str>) -> Option<&Gateway> {
        match appid {
            None => Some(&self.web),
            Some(a) if self.web.app_id().as_str() == a => Some(&self.web),
            Some(a) => self.miniprogram.as_ref().filter(|m| m.app_id().as_str() == a),
        }
    }

    /// Every appid's client.
    pub fn all(&self) -> impl Iterator<Item = &Gateway> {
        std::iter::once(&self.web).chain(self.miniprogram.as_ref())
    }
}

/// What the pay capability holds.
pub struct State {
    platform: Platform,
    /// The official account's gateway (web pages, NATIVE codes), when a merchant is configured.
    pub pay: Option<Gateway>,
    /// Every appid's gateway.
    pub payers: Option<Payers>,
    /// Sessions (a buyer's own orders).
    pub sessions: Sessions,
    /// The admin token (the admin may look at any order).
    pub keys: Arc<AuthKeys>,
    /// Sends buyers to WeChat to log in (the buy page).
    pub login: WebLogin,
    /// An order's `time_expire`, seconds (`pay.order_ttl_secs`).
    pub order_ttl_secs: i64,
    /// Unpaid orders one buyer may have open (`pay.max_open_orders`; 0: no cap).
    pub max_open_orders: i64,
    /// The simulator's public address, in sandbox mode (the cashier).
    pub sandbox_sim_url: Option<String>,
    /// Where WeChat's H5 cashier is, when it is not `wx.tenpay.com`: a simulator (the sandbox's public address, or
    /// `pay.base_url` when that is not WeChat Pay's).
    pub h5_cashier_origin: Option<String>,
    /// WeChat Pay 商家券 (its client verifies COUPON.SEND when payments are on v2).
    pub busifavor: Option<crate::platform::busifavor::Busifavor>,
    reconcile: (u32, u32),
    bills_at: Option<(u32, u32)>,
}
crate::slice_state!(State);

/// The pay capability's state; its reconciler starts with [`jobs`].
pub fn init(
    platform: &Platform,
    apps: &WechatApps,
    settings: &Settings,
    sessions: Sessions,
    keys: Arc<AuthKeys>,
    login: WebLogin,
) -> State {
    let payers = apps.pay.as_ref().and_then(Payers::from_apps);
    State {
        platform: platform.clone(),
        pay: payers.as_ref().map(|p| p.web.clone()),
        payers,
        sessions,
        keys,
        login,
        order_ttl_secs: i64::from(settings.pay.order_ttl_secs),
        max_open_orders: i64::from(settings.pay.max_open_orders),
        sandbox_sim_url: apps.sandbox_sim_url().map(str::to_owned),
        h5_cashier_origin: apps.sandbox_sim_url().map(str::to_owned).or_else(|| {
            let base = settings.pay.base_url.trim_end_matches('/');
            (!base.is_empty() && base != wechat_pay::v3::client::DEFAULT_BASE_URL).then(|| base.to_owned())
        }),
        busifavor: apps.busifavor.clone(),
        reconcile: (settings.pay.reconcile_after_secs, settings.pay.reconcile_every_secs),
        bills_at: crate::configuration::bills_time(&settings.pay.reconcile_bills_at),
    }
}

/// Starts the reconciler when a merchant is configured.
pub fn jobs(state: &State, jobs: &mut Jobs) {
    if let Some(payers) = &state.payers {
        let (after, every) = state.reconcile;
        jobs.spawn(
            "pay reconciler",
            reconciler::job(
                state.db.clone(),
                payers.clone(),
                state.clock.clone(),
                after,
                every,
                state.public_base_url.clone(),
            ),
        );
        if let Some(at) = state.bills_at {
            jobs.spawn(
                "daily reconciliation",
                reconciler::bills_job(state.db.clone(), payers.clone(), state.clock.clone(), at),
            );
        }
    }
}

/// The API of this capability (under `/api/v1`).
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/pay/orders")
            .route(web::post().to(routes::create))
            .route(web::get().to(routes::list)),
    )
    .service(web::resource("/pay/orders/{out_trade_no}").route(web::get().to(routes::status)))
    .service(web::resource("/pay/orders/{out_trade_no}/close").route(web::post().to(routes::close)))
    .service(web::resource("/pay/orders/{out_trade_no}/qr.png").route(web::get().to(routes::native_qr)))
    .service(web::resource("/pay/orders/{out_trade_no}/refunds").route(web::post().to(routes::refund)))
    .service(web::resource("/admin/pay/notifications").route(web::get().to(routes::notifications)))
    .service(web::resource("/pay/reconciliations").route(web::get().to(routes::reconciliation)))
    .service(web::resource("/pay/bills").route(web::get().to(routes::bill)));
}

/// The pages of this capability: the buy page, and WeChat Pay's callbacks.
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/wechat/pay/notify").route(web::post().to(routes::notify)))
        .service(web::resource("/wechat/pay/refund-notify").route(web::post().to(routes::refund_notify)))
        .service(web::resource("/wechat/pay/v3/notify").route(web::post().to(routes::notify_v3)))
        .service(web::resource("/c/buy/{campaign_id}").route(web::get().to(buy::buy_page)));
}

/// An order line as the admin API and the CLI show it: the status people read (`refunded` for a paid order with a
/// refund that succeeded), what it bought, what went back.
pub fn order_json(l: &repo::OrderLine) -> serde_json::Value {
    let o = &l.order;
    serde_json::json!({
        "out_trade_no": o.out_trade_no, "status": l.shown_status(), "order_status": o.status,
        "total_fee": o.total_fee, "refunded_fee": l.refunded_fen, "refunding_fee": l.refunding_fen,
        "trade_type": o.trade_type, "description": o.description,
        "campaign_id": l.campaign_id, "campaign_title": l.campaign_title, "merchant_id": l.merchant_id,
        "coupon_code": l.coupon_code, "transaction_id": o.transaction_id,
        "created_at": crate::platform::time::rfc3339(o.created_at),
        "paid_at": o.paid_at.map(crate::platform::time::rfc3339),
    })
}
