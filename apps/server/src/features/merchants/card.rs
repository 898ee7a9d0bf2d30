//! `POST /api/v1/campaigns/{id}/wechat-card` (admin): backs a campaign with a WeChat card, so its coupons can be
//! added to customers' WeChat card bags ("加入微信卡包"). Either a new card — multipart form with the `logo`
//! (PNG or JPEG, ≤ 1 MB, uploaded with `media/uploadimg`) and the card's fields, created with `card/create` in a
//! colour from `card/getcolors` — or, as JSON `{"card_id"}`, a card the merchant already has: WeChat stopped
//! creating new coupon-kind cards for most accounts in 2021, so live merchants mostly attach existing ones.

use super::State;
use super::repo;
use super::views::campaign_json;
use crate::db;
use crate::http::auth;
use crate::http::errors::ApiError;
use crate::http::multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use wechat_card::{BaseInfo, CardDefinition, CardKind, DateInfo};

/// Largest accepted body: the logo (WeChat takes at most 1 MB) and the fields.
pub const MAX_BODY: usize = 1_100_000;

fn card_error(e: &wechat_card::Error) -> ApiError {
    match e {
        wechat_card::Error::InvalidInput { message } => ApiError::bad_request("invalid_card", message.clone()),
        e => match e.errcode() {
            Some(code) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "wechat_refused",
                format!("WeChat refused the card: {e}"),
            )
            .with_wechat_errcode(Some(code)),
            None => {
                tracing::warn!(error = %e, "card creation: WeChat did not answer");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "wechat_unavailable",
                    "WeChat did not answer properly: try again in a few seconds",
                )
                .with_retry_after(5)
            }
        },
    }
}

fn valid_card_id(c: &str) -> bool {
    !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The handler (see the module docs). 201 with the campaign (`wechat_card_id` set) for a created card, 200 for an
/// attached one; 409 `already_card_backed`; 404 unknown campaign; 400 for a bad logo or field (named).
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
    if let Some(existing) = &campaign.wechat_card_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_card_backed",
            format!("the campaign is backed by card {existing} already"),
        ));
    }
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (card_id, created) = if multipart::is_form_data(content_type) {
        let limits = multipart::Limits {
            max_parts: 32,
            // WeChat takes a logo of at most 1 MB: anything larger is refused below with that reason.
            file_bytes: MAX_BODY,
            text_bytes: 4096,
        };
        let parts = multipart::read(content_type, body.to_vec(), limits)
            .await
            .map_err(|m| ApiError::bad_request("invalid_multipart", m))?;
        (create_card(&state, &campaign, &parts).await?, true)
    } else {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Existing {
            card_id: String,
        }
        let existing: Existing = crate::http::json::parse(&body)?;
        if !valid_card_id(&existing.card_id) {
            return Err(ApiError::bad_request("invalid_field", "card_id is not a card id"));
        }
        (existing.card_id, false)
    };
    let stored = card_id.clone();
    let row = db::blocking(&state.db, move |conn| {
        repo::set_campaign_card(conn, id, &stored)?;
        repo::campaign(conn, id)
    })
    .await?
    .ok_or_else(|| ApiError::not_found("no such campaign"))?;
    tracing::info!(campaign = id, card_id = %card_id, created, "campaign backed by a WeChat card");
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(HttpResponse::build(status).json(campaign_json(&row)))
}

/// Uploads the logo and creates the card from the form; returns its card id.
async fn create_card(
    state: &State,
    campaign: &repo::CampaignRow,
    parts: &[multipart::Part],
) -> Result<String, ApiError> {
    let form = CouponForm::read(parts)?;
    let field = |name: &str| form.field(name);
    let logo = form.logo;
    let brand_name = form.brand_name.clone();
    let title = form.title.clone().unwrap_or_else(|| campaign.title.clone());
    let notice = form.notice.clone().unwrap_or_else(|| "到店出示二维码核销".to_owned());
    let description = form
        .description
        .clone()
        .or_else(|| campaign.description.clone())
        .unwrap_or_else(|| campaign.title.clone());
    let detail = field("default_detail")?.unwrap_or_else(|| description.clone());
    let quantity = form
        .quantity
        .unwrap_or_else(|| campaign.quantity.and_then(|q| u64::try_from(q).ok()).unwrap_or(10_000));
    // The colour must be one WeChat offers: the one asked for, else its first.
    let colors = state.cards.colors().await.map_err(|e| card_error(&e))?;
    let color = match field("color")? {
        Some(c) if colors.iter().any(|k| k.name == c) => c,
        Some(c) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!(
                    "color {c:?} is not one of WeChat's: {}",
                    colors.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        None => colors
            .first()
            .map(|k| k.name.clone())
            .unwrap_or_else(|| "Color010".to_owned()),
    };
    // Check the fields before spending an upload on the logo (the URL is replaced once uploaded).
    let date_info = DateInfo::FixTimeRange {
        begin_timestamp: campaign.valid_from / 1000,
        end_timestamp: campaign.valid_until / 1000,
    };
    let check = |logo_url: &str| {
        BaseInfo::builder()
            .logo_url(logo_url)
            .brand_name(&brand_name)
            .title(&title)
            .color(&color)
            .notice(&notice)
            .description(&description)
            .date_info(date_info)
            .quantity(quantity)
            .build()
            // Only the customer the cardExt names may take it: our coupon code travels as outer_str.
            .map(|b| b.bind_openid(true))
            .and_then(|b| {
                CardDefinition::new(
                    CardKind::GeneralCoupon {
                        default_detail: detail.clone(),
                    },
                    b,
                )
            })
    };
    check("https://mmbiz.qpic.cn/placeholder").map_err(|e| card_error(&e))?;
    let logo_url = state.cards.upload_logo(&logo.data).await.map_err(|e| card_error(&e))?;
    let definition = check(&logo_url).map_err(|e| card_error(&e))?;
    state.cards.create(&definition).await.map_err(|e| card_error(&e))
}

/// The form both card-bag backings take (`/wechat-card`, `/wechat-pay-coupon`): the logo (≤ 1 MB, WeChat's limit),
/// the brand name, and the optional title, notice, description and quantity — each named in its error.
pub(super) struct CouponForm<'a> {
    parts: &'a [multipart::Part],
    /// The logo file part.
    pub logo: &'a multipart::Part,
    /// The merchant's name on the card or coupon.
    pub brand_name: String,
    /// `title`.
    pub title: Option<String>,
    /// `notice`.
    pub notice: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `quantity`.
    pub quantity: Option<u64>,
}

impl<'a> CouponForm<'a> {
    /// Reads and checks the form.
    pub fn read(parts: &'a [multipart::Part]) -> Result<CouponForm<'a>, ApiError> {
        let text = |name: &str| text_field(parts, name);
        let logo = parts
            .iter()
            .find(|p| p.name == "logo")
            .ok_or_else(|| ApiError::bad_request("missing_field", "logo (a PNG or JPEG file part) is required"))?;
        if logo.data.len() > 1_048_576 {
            return Err(ApiError::bad_request(
                "invalid_field",
                "logo is larger than WeChat's 1 MB",
            ));
        }
        let brand_name = text("brand_name")?.ok_or_else(|| {
            ApiError::bad_request(
                "missing_field",
                "brand_name (the merchant's name on the coupon) is required",
            )
        })?;
        let quantity = match text("quantity")? {
            Some(q) => Some(
                q.parse::<u64>()
                    .map_err(|_| ApiError::bad_request("invalid_field", "quantity must be a whole number"))?,
            ),
            None => None,
        };
        Ok(CouponForm {
            parts,
            logo,
            brand_name,
            title: text("title")?,
            notice: text("notice")?,
            description: text("description")?,
            quantity,
        })
    }

    /// Another text field of the form (trimmed; empty is none).
    pub fn field(&self, name: &str) -> Result<Option<String>, ApiError> {
        text_field(self.parts, name)
    }
}

fn text_field(parts: &[multipart::Part], name: &str) -> Result<Option<String>, ApiError> {
    match parts.iter().find(|p| p.name == name && p.filename.is_none()) {
        Some(p) => p
            .text()
            .map(|t| Some(t.trim().to_owned()).filter(|t| !t.is_empty()))
            .ok_or_else(|| ApiError::bad_request("invalid_field", format!("{name} is not UTF-8 text"))),
        None => Ok(None),
    }
}
