//! The JSON views of merchants, staff and campaigns, and the campaign request: shared by the admin API and the CLI.

use super::repo;
use super::service::AdminError;
use crate::features::coupons::views::rfc3339;
use serde::Deserialize;
use serde_json::json;

/// Merchant JSON.
pub fn merchant_json(m: &repo::MerchantRow) -> serde_json::Value {
    json!({"id": m.id, "name": m.name, "created_at": rfc3339(m.created_at)})
}

/// Staff JSON (never the token or its hash).
pub fn staff_json(s: &repo::StaffRow) -> serde_json::Value {
    json!({
        "id": s.id, "merchant_id": s.merchant_id, "openid": s.openid, "name": s.name,
        "status": if s.active { "active" } else { "removed" }, "created_at": rfc3339(s.created_at),
    })
}

/// `POST /api/v1/campaigns` body, and the arguments of `wxkit campaign create`.
#[derive(Debug, Default, Deserialize, clap::Args, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    /// The merchant.
    #[arg(long)]
    pub merchant_id: i64,
    /// Title.
    #[arg(long)]
    pub title: String,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Face value in fen.
    #[arg(long, allow_negative_numbers = true)]
    pub value_fen: Option<i64>,
    /// RFC 3339 start (default now).
    #[arg(long)]
    pub valid_from: Option<String>,
    /// RFC 3339 end (default 30 days after the start).
    #[arg(long)]
    pub valid_until: Option<String>,
    /// Total coupons (default unlimited).
    #[arg(long, allow_negative_numbers = true)]
    pub quantity: Option<i64>,
    /// Coupons per customer (default unlimited).
    #[arg(long, allow_negative_numbers = true)]
    pub per_user_limit: Option<i64>,
    /// Backing WeChat card id.
    #[arg(long)]
    pub wechat_card_id: Option<String>,
    /// Price in fen: customers can buy its coupons with WeChat Pay (`/c/buy/{id}`).
    #[arg(long, allow_negative_numbers = true)]
    pub price_fen: Option<i64>,
}

fn parse_time(field: &'static str, value: &str) -> Result<i64, AdminError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| AdminError::Rejected {
            code: "invalid_time",
            message: format!("{field} must be RFC 3339, e.g. 2026-12-01T00:00:00+08:00"),
        })
}

impl CampaignRequest {
    /// Validates into a row (defaults: valid from now for 30 days, unlimited).
    pub fn validate(&self, now: i64) -> Result<repo::NewCampaign, AdminError> {
        if self.title.trim().is_empty() || self.title.chars().count() > 100 {
            return Err(AdminError::Rejected {
                code: "invalid_field",
                message: "title must be 1 to 100 characters".into(),
            });
        }
        if let Some(d) = &self.description
            && d.chars().count() > 2000
        {
            return Err(AdminError::Rejected {
                code: "invalid_field",
                message: "description must be at most 2000 characters".into(),
            });
        }
        if self.value_fen.is_some_and(|v| !(0..=10_000_000_000).contains(&v)) {
            return Err(AdminError::Rejected {
                code: "invalid_field",
                message: "value_fen must be 0 to 10000000000".into(),
            });
        }
        let from = self
            .valid_from
            .as_deref()
            .map(|v| parse_time("valid_from", v))
            .transpose()?
            .unwrap_or(now);
        let until = self
            .valid_until
            .as_deref()
            .map(|v| parse_time("valid_until", v))
            .transpose()?
            .unwrap_or(from + 30 * 86_400_000);
        if until <= from {
            return Err(AdminError::Rejected {
                code: "invalid_time",
                message: "valid_until must be after valid_from".into(),
            });
        }
        if until <= now {
            return Err(AdminError::Rejected {
                code: "invalid_time",
                message: "valid_until is in the past: the campaign would have ended already".into(),
            });
        }
        if self.quantity.is_some_and(|q| q < 1) || self.per_user_limit.is_some_and(|q| q < 1) {
            return Err(AdminError::Rejected {
                code: "invalid_field",
                message: "quantity and per_user_limit must be at least 1".into(),
            });
        }
        if self.price_fen.is_some_and(|p| !(1..=100_000_000).contains(&p)) {
            return Err(AdminError::Rejected {
                code: "invalid_field",
                message: "price_fen is in fen: 1 to 100000000".into(),
            });
        }
        if let Some(c) = &self.wechat_card_id
            && (c.is_empty() || c.len() > 64 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(AdminError::Rejected {
                code: "invalid_field",
                message: "wechat_card_id is not a card id".into(),
            });
        }
        Ok(repo::NewCampaign {
            merchant_id: self.merchant_id,
            title: self.title.trim().to_owned(),
            description: self.description.clone(),
            value_fen: self.value_fen,
            valid_from: from,
            valid_until: until,
            quantity: self.quantity,
            per_user_limit: self.per_user_limit,
            wechat_card_id: self.wechat_card_id.clone(),
            price_fen: self.price_fen,
        })
    }
}

/// Campaign JSON, with its status at `now`: `scheduled`, `active` or `ended`.
pub fn campaign_json_at(c: &repo::CampaignRow, now: i64) -> serde_json::Value {
    let mut v = campaign_json(c);
    v["status"] = json!(if c.ended(now) {
        "ended"
    } else if now < c.valid_from {
        "scheduled"
    } else if now <= c.valid_until {
        "active"
    } else {
        "ended"
    });
    v
}

/// Campaign JSON.
pub fn campaign_json(c: &repo::CampaignRow) -> serde_json::Value {
    json!({
        "id": c.id, "merchant_id": c.merchant_id, "title": c.title, "description": c.description,
        "value_fen": c.value_fen, "valid_from": rfc3339(c.valid_from), "valid_until": rfc3339(c.valid_until),
        "quantity": c.quantity, "per_user_limit": c.per_user_limit, "wechat_card_id": c.wechat_card_id,
        "issued": c.issued, "price_fen": c.price_fen,
        "buy_url": c.price_fen.map(|_| format!("/c/buy/{}", c.id)),
        "ended_at": c.ended_at.map(rfc3339), "end_sold": c.end_sold,
    })
}
