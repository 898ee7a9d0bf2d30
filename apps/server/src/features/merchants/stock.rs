//! `POST /api/v1/campaigns/{id}/wechat-pay-coupon` (admin): backs a campaign with a WeChat Pay 商家券 stock, so its
//! coupons can go to customers' WeChat card bags — the supported way since WeChat closed new 卡券 coupon kinds
//! (2021-04-01). Either a new stock — a multipart form like `/wechat-card` (`logo`, `brand_name`, optional `title`,
//! `notice`, `description`, `quantity`): the fields are checked against WeChat's limits before anything is sent, the
//! logo is uploaded (marketing image upload), the stock is created with the campaign's window, quantity and per-user
//! limit, codes MERCHANT_API (the coupon's own code), redeemed OFF_LINE — or, as JSON `{"stock_id"}`, a stock the
//! merchant has (checked to be theirs). Either way the merchant's 商家券 callback URL is set to ours if it is not.

use super::State;
use super::repo;
use super::views::campaign_json;
use crate::db;
use crate::features::coupons::busifavor as bag;
use crate::http::auth;
use crate::http::errors::ApiError;
use crate::http::multipart;
use crate::platform::busifavor::Busifavor;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use wechat_pay::v3::marketing::busifavor as wx;

fn pay_error(e: &wechat_pay::Error) -> ApiError {
    match e {
        wechat_pay::Error::InvalidRequest { message } => ApiError::bad_request("invalid_field", message.clone()),
        wechat_pay::Error::Api {
            status, code, message, ..
        } if *status < 500 => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "wechat_refused",
            format!("WeChat Pay refused the stock: {code:?} {message}"),
        ),
        e => {
            tracing::warn!(error = %e, "wechat-pay-coupon: WeChat Pay did not answer properly");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "wechat_unavailable",
                "WeChat Pay did not answer properly: try again in a few seconds",
            )
            .with_retry_after(5)
        }
    }
}

/// The handler (see the module docs). 201 with the campaign (`wechat_pay_stock_id` set) for a created stock, 200 for
/// an attached one; 409 `already_stock_backed`; 404 unknown campaign; 400 for a bad logo or field (named); 503 when
/// the merchant has no 商家券 (v3 + `pay.key`).
pub async fn attach(
    _admin: auth::AdminAuth,
    req: HttpRequest,
    path: web::Path<i64>,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let campaign = db::blocking(&state.db, move |conn| repo::campaign(conn, id))
        .await?
        .ok_or_else(|| ApiError::not_found("no such campaign"))?;
    let existing = db::blocking(&state.db, move |conn| bag::stock_of(conn, id)).await?;
    if let Some(existing) = existing {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_stock_backed",
            format!("the campaign is backed by WeChat Pay stock {existing} already"),
        ));
    }
    let b = state.busifavor.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "wechat_pay_coupons_off",
            crate::platform::busifavor::NOT_CONFIGURED,
        )
    })?;
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (stock_id, created) = if multipart::is_form_data(content_type) {
        let limits = multipart::Limits {
            max_parts: 32,
            file_bytes: super::card::MAX_BODY,
            text_bytes: 4096,
        };
        let parts = multipart::read(content_type, body.to_vec(), limits)
            .await
            .map_err(|m| ApiError::bad_request("invalid_multipart", m))?;
        (create_stock(&b, &campaign, &parts, state.clock.now_ms()).await?, true)
    } else {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Existing {
            stock_id: String,
        }
        let existing: Existing = crate::http::json::parse(&body)?;
        let query = wx::QueryStock::new(&existing.stock_id)
            .map_err(|_| ApiError::bad_request("invalid_field", "stock_id is not a WeChat Pay stock id"))?;
        match b.client.send(&query).await {
            // The card-bag code must be the coupon's own (MERCHANT_API), and the stock must still send.
            Ok(info) if info.coupon_code_mode != "MERCHANT_API" => {
                return Err(ApiError::bad_request(
                    "unsuitable_stock",
                    format!(
                        "that stock's codes are {} — wxkit needs a MERCHANT_API stock, so that the code in the card bag \
                         is the coupon's own and a till can scan it",
                        info.coupon_code_mode
                    ),
                ));
            }
            Ok(info) if matches!(info.stock_state.as_str(), "STOPED" | "STOPPED") => {
                return Err(ApiError::bad_request(
                    "unsuitable_stock",
                    "that stock has stopped sending",
                ));
            }
            Ok(_) => {}
            Err(wechat_pay::Error::Api { status: 404, .. }) => {
                return Err(ApiError::bad_request(
                    "unknown_stock",
                    "WeChat Pay has no such stock for this merchant",
                ));
            }
            Err(wechat_pay::Error::MerchantMismatch { .. } | wechat_pay::Error::Api { status: 403, .. }) => {
                return Err(ApiError::bad_request(
                    "foreign_stock",
                    "that stock belongs to another merchant",
                ));
            }
            Err(e) => return Err(pay_error(&e)),
        }
        (existing.stock_id, false)
    };
    ensure_callback(&b, &state.public_base_url).await;
    let (stored, now) = (stock_id.clone(), state.clock.now_ms());
    let (attached, row) = db::blocking(&state.db, move |conn| {
        let attached = bag::attach_stock(conn, id, &stored, created, now)?;
        Ok((attached, repo::campaign(conn, id)?))
    })
    .await?;
    let row = row.ok_or_else(|| ApiError::not_found("no such campaign"))?;
    if !attached {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_stock_backed",
            "the campaign (or that stock) is backed already",
        ));
    }
    tracing::info!(campaign = id, stock_id = %stock_id, created, "campaign backed by a WeChat Pay 商家券 stock");
    let mut json = campaign_json(&row);
    json["wechat_pay_stock_id"] = serde_json::json!(stock_id);
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(HttpResponse::build(status).json(json))
}

/// The console's way (the shop owner, no developer): a new stock from the form's parts, the callback URL set, the
/// campaign backed. `Ok(stock id)`; `Err` names what is wrong (an `ApiError`, for its status and message).
pub async fn back_with_new_stock(
    db: &crate::db::Db,
    b: &Busifavor,
    campaign: &repo::CampaignRow,
    parts: &[multipart::Part],
    now: i64,
    public_base_url: &str,
) -> Result<String, ApiError> {
    let stock_id = create_stock(b, campaign, parts, now).await?;
    ensure_callback(b, public_base_url).await;
    let (id, stored) = (campaign.id, stock_id.clone());
    if !db::blocking(db, move |conn| bag::attach_stock(conn, id, &stored, true, now)).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_stock_backed",
            "the campaign was backed by a stock meanwhile",
        ));
    }
    Ok(stock_id)
}

/// Points the merchant's 商家券 events at this server, unless they already come here (one URL per merchant).
async fn ensure_callback(b: &Busifavor, public_base_url: &str) {
    let ours = format!("{public_base_url}/wechat/pay/v3/notify");
    if let Ok(current) = b.client.send(&wx::QueryCallbacks).await
        && current.notify_url == ours
    {
        return;
    }
    match wx::SetCallbacks::new(&ours) {
        Ok(set) => {
            if let Err(e) = b.client.send(&set).await {
                tracing::warn!(error = %e, "wechat-pay-coupon: could not set the 商家券 callback URL; COUPON.SEND will not arrive until it is");
            }
        }
        Err(e) => tracing::warn!(error = %e, "wechat-pay-coupon: the public URL is not a callback URL WeChat takes"),
    }
}

/// Checks the form against WeChat's limits, uploads the logo and creates the stock; returns its id.
async fn create_stock(
    b: &Busifavor,
    campaign: &repo::CampaignRow,
    parts: &[multipart::Part],
    now: i64,
) -> Result<String, ApiError> {
    let form = super::card::CouponForm::read(parts)?;
    let (logo, brand_name) = (form.logo, form.brand_name.clone());
    let title = form.title.clone().unwrap_or_else(|| campaign.title.clone());
    let notice = form.notice.clone().unwrap_or_else(|| "到店出示券码核销".to_owned());
    let description = form
        .description
        .clone()
        .or_else(|| campaign.description.clone())
        .unwrap_or_else(|| campaign.title.clone());
    let quantity = form
        .quantity
        .unwrap_or_else(|| campaign.quantity.and_then(|q| u64::try_from(q).ok()).unwrap_or(10_000));
    let per_user = campaign
        .per_user_limit
        .and_then(|l| u32::try_from(l).ok())
        .unwrap_or(1)
        .clamp(1, 100);
    // The coupon's worth: an amount off when the campaign has a value, else an item (a free coffee) at 1 fen.
    let value = match campaign
        .value_fen
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v > 0)
    {
        Some(v) => wx::CouponValue::Normal {
            discount_amount: v,
            transaction_minimum: v + 1,
        },
        None => wx::CouponValue::Exchange {
            exchange_price: 1,
            transaction_minimum: 2,
        },
    };
    let from = campaign.valid_from.max(now) / 1000;
    let until = campaign.valid_until / 1000;
    let request_no = format!("WXKITSTOCK{}T{}", campaign.id, now);
    let build = |logo_url: &str| {
        wx::CreateStock::new(&title, &notice, value, (from, until), quantity, per_user, &request_no).map(|s| {
            s.merchant_name(&brand_name)
                .logo_url(logo_url)
                .description(&description)
                .notify_appid(&b.appid)
        })
    };
    // Every field checked before the logo is uploaded.
    build("https://wxpaylogo.qpic.cn/placeholder")
        .and_then(|s| s.check().map(|()| s))
        .map_err(|e| pay_error(&e))?;
    let filename = if logo.data.starts_with(b"\x89PNG") {
        "logo.png"
    } else {
        "logo.jpg"
    };
    let upload = wx::ImageUpload::new(filename, logo.data.clone()).map_err(|e| pay_error(&e))?;
    let logo_url = b.client.send(&upload).await.map_err(|e| pay_error(&e))?;
    let stock = build(&logo_url).map_err(|e| pay_error(&e))?;
    Ok(b.client.send(&stock).await.map_err(|e| pay_error(&e))?.stock_id)
}
