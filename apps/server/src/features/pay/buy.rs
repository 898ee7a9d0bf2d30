//! `GET /c/buy/{campaign_id}`: the page a customer buys a campaign's coupon on — inside WeChat with JSAPI
//! (`wx.chooseWXPay`), on a computer with a NATIVE code to scan — and `GET /static/buy.js`, its script. The page
//! never decides that a payment happened: it polls the order (`GET /api/v1/pay/orders/{no}`), which only the
//! payment notify or the reconciler settles, and then opens the new coupon's page.

use super::State;
use crate::db;
use crate::features::merchants::repo as merchants_repo;
use crate::http::auth::WebSession;
use crate::http::pages;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

/// WeChat's JS-SDK, outside the sandbox.
const JWEIXIN: &str = "https://res.wx.qq.com/open/js/jweixin-1.6.0.js";

#[derive(Template)]
#[template(path = "buy.html")]
struct BuyPage<'a> {
    title: &'a str,
    campaign_id: i64,
    price_fen: i64,
    price: String,
    value: Option<String>,
    description: &'a str,
    valid_until: String,
    left: Option<i64>,
    closed: Option<&'static str>,
    mode: &'static str,
    cashier: String,
    jweixin: String,
}

fn wants(req: &HttpRequest) -> Option<&'static str> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "pay")
        .and_then(|(_, v)| match v.as_ref() {
            "jsapi" => Some("jsapi"),
            "native" => Some("native"),
            "h5" => Some("h5"),
            _ => None,
        })
}

/// `GET /c/buy/{campaign_id}[?pay=jsapi|native]`: JSAPI inside WeChat (its user agent says `MicroMessenger`),
/// NATIVE elsewhere, either on request. A visitor without a session logs in first: silent WeChat OAuth inside
/// WeChat, the scan-to-login page on a computer; both come back here.
pub async fn buy_page(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<String>,
    state: web::Data<State>,
) -> HttpResponse {
    // A page: a malformed id is the same "not for sale" page as an unknown one, never a JSON error.
    let Ok(id) = path.into_inner().parse::<i64>() else {
        return pages::error_page(StatusCode::NOT_FOUND, "此券不出售", "This voucher is not for sale.");
    };
    let campaign = match db::blocking(&state.db, move |conn| merchants_repo::campaign(conn, id)).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "buy page: cannot read the campaign");
            return pages::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "服务暂时不可用",
                "The service is temporarily unavailable: reload in a moment.",
            );
        }
    };
    let Some((campaign, price)) = campaign.and_then(|c| c.price_fen.map(|p| (c, p))) else {
        return pages::error_page(StatusCode::NOT_FOUND, "此券不出售", "This voucher is not for sale.");
    };
    let in_wechat = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.contains("MicroMessenger"));
    // A phone's browser outside WeChat pays by H5 (WeChat's cashier page, then back here); a computer scans a code.
    let on_phone = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ["Mobile", "Android", "iPhone", "iPad"].iter().any(|m| ua.contains(m)));
    let mode = wants(&req).unwrap_or(match (in_wechat, on_phone) {
        (true, _) => "jsapi",
        (false, true) => "h5",
        (false, false) => "native",
    });
    let here = format!("/c/buy/{id}?pay={mode}");
    if session.is_none() {
        return if mode == "jsapi" {
            match state.login.authorize_url(&here, wechat_oauth::web::Scope::Base) {
                Ok(url) => crate::http::auth::oauth_redirect(&req, &state.keys, &url),
                Err(e) => pages::error_page(StatusCode::INTERNAL_SERVER_ERROR, "出错了", &e.to_string()),
            }
        } else {
            let to: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return", &here)
                .finish();
            HttpResponse::Found()
                .insert_header((actix_web::http::header::LOCATION, format!("/login?{to}")))
                .finish()
        };
    }
    let now = state.clock.now_ms();
    let left = campaign.quantity.map(|q| (q - campaign.issued).max(0));
    let closed = if state.pay.is_none() {
        Some("暂不能在线购买（未配置微信支付）· WeChat Pay is not configured here")
    } else if campaign.ended(now) {
        Some("活动已提前结束 · The shop ended this offer early")
    } else if now > campaign.valid_until {
        Some("活动已结束 · This offer has ended")
    } else if left == Some(0) {
        Some("已售罄 · Sold out")
    } else {
        None
    };
    let sim = state.sandbox_sim_url.clone();
    let jweixin = match &sim {
        Some(sim) => format!("{sim}/_sim/js/jweixin.js"),
        None => JWEIXIN.to_owned(),
    };
    let mut res = pages::render(
        StatusCode::OK,
        &BuyPage {
            title: &campaign.title,
            campaign_id: campaign.id,
            price_fen: price,
            price: pages::money(u64::try_from(price).ok()),
            value: campaign.value_fen.map(|v| pages::money(u64::try_from(v).ok())),
            description: campaign.description.as_deref().unwrap_or_default(),
            valid_until: pages::beijing(campaign.valid_until),
            left,
            closed,
            mode,
            cashier: sim
                .as_ref()
                .map(|s| format!("{s}/_sim/pay/cashier"))
                .unwrap_or_default(),
            jweixin,
        },
    );
    // The JS-SDK script (WeChat's, or the simulator's stand-in and its verify call) is allowed on this page only.
    pages::allow_jssdk(&mut res, sim.as_deref());
    res
}
