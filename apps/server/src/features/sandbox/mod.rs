//! Sandbox mode: with no WeChat credentials the server runs against the bundled simulator and seeds a demo merchant,
//! staff member, customer and campaign, so that a person can click through every flow.

use crate::db;
use crate::features::coupons::repo as coupons_repo;
use crate::features::merchants::repo as merchants_repo;
use crate::http::pages;
use crate::platform::Platform;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

/// Seeding the demo into the simulator and the database (only with the simulator built in).
#[cfg(feature = "sandbox")]
mod seed;
#[cfg(feature = "sandbox")]
pub use seed::seed;

/// The demo staff member's openid.
pub const DEMO_STAFF_OPENID: &str = "o-demo-staff";
/// The demo customer's openid.
pub const DEMO_CUSTOMER_OPENID: &str = "o-demo-customer";
/// The demo merchant's owner (runs the console).
pub const DEMO_OWNER_OPENID: &str = "o-demo-owner";
/// A passer-by (neither staff nor owner).
pub const DEMO_VISITOR_OPENID: &str = "o-demo-visitor";

/// What was seeded, to print.
#[derive(Clone, Debug)]
pub struct Demo {
    /// Coupon codes owned by the demo customer.
    pub customer_coupons: Vec<String>,
    /// The demo staff member's POS token (one per database, kept across restarts).
    pub staff_token: String,
    /// The campaign whose coupons are for sale (`/c/buy/{id}`).
    pub sale_campaign_id: i64,
    /// The demo customer's coupon backed by a WeChat card ("Add to WeChat"), unless the card could not be made.
    pub card_coupon: Option<String>,
    /// A coupon of the 商家券 (WeChat Pay coupon) campaign, for "Add to WeChat" through WeChat's H5 领券 page.
    pub busifavor_coupon: Option<String>,
}

/// What the start page holds.
pub struct State {
    platform: Platform,
    /// Sandbox mode: the page lists the demo.
    pub sandbox: bool,
}
crate::slice_state!(State);

/// The start page's state.
pub fn init(platform: &Platform, settings: &crate::configuration::Settings) -> State {
    State {
        platform: platform.clone(),
        sandbox: settings.sandbox(),
    }
}

/// The pages of this capability.
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(index)));
}

/// `GET /`: what this server is, with the demo links in sandbox mode.
pub async fn index(state: web::Data<State>) -> HttpResponse {
    let sandbox = state.sandbox;
    let (demo, for_sale) = if sandbox {
        let customer = DEMO_CUSTOMER_OPENID.to_owned();
        let now = state.clock.now_ms();
        let coupons = db::blocking(&state.db, move |conn| coupons_repo::coupons_of_owner(conn, &customer))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(c, k)| {
                let coupon = c.to_domain()?;
                let view = pages::CouponView::new(&coupon, &k.to_domain(), now);
                let title = match (&k.wechat_card_id, &c.wechat_card_code) {
                    (Some(_), None) => format!("{} — 可加入微信卡包 · can be added to WeChat", k.title),
                    _ => k.title,
                };
                // The code's last group tells the demo's otherwise identical coupons apart.
                let tail = c
                    .code
                    .get(c.code.len().saturating_sub(4)..)
                    .unwrap_or_default()
                    .to_owned();
                Some(DemoCoupon {
                    code: c.code,
                    title,
                    tail,
                    status: view.status,
                    status_words: format!("{} · {}", view.status_zh, view.status_en),
                })
            })
            .collect();
        let for_sale = db::blocking(&state.db, |conn| merchants_repo::list_campaigns(conn, None))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| {
                c.price_fen
                    .map(|p| (c.id, c.title, pages::money(u64::try_from(p).ok())))
            })
            .collect();
        (coupons, for_sale)
    } else {
        (Vec::new(), Vec::new())
    };
    pages::render(
        StatusCode::OK,
        &IndexPage {
            title: "wxkit",
            sandbox,
            demo,
            for_sale,
        },
    )
}

/// A demo coupon on the start page.
struct DemoCoupon {
    code: String,
    title: String,
    /// The code's last four characters.
    tail: String,
    status: &'static str,
    status_words: String,
}

/// The start page.
#[derive(askama::Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    title: &'a str,
    sandbox: bool,
    /// The demo customer's coupons.
    demo: Vec<DemoCoupon>,
    /// Campaigns on sale: id, title, price.
    for_sale: Vec<(i64, String, String)>,
}
