//! The JSON views of coupons, shared by the API, the admin API and the CLI.

use super::repo::CouponRow;
use crate::features::merchants::repo::CampaignRow;
use crate::platform::Platform;
use redemption_core::{Campaign, Coupon, CouponStatus};
use serde::Serialize;
use serde_json::json;

/// RFC 3339 for a millisecond timestamp.
pub fn rfc3339(ms: i64) -> String {
    crate::platform::time::rfc3339(ms)
}

/// The coupon as anyone may see it (no owner, no staff identities). Serialized straight from borrowed fields: the
/// POS hot path builds no intermediate JSON tree.
#[derive(Debug, Serialize)]
pub struct PublicCoupon<'a> {
    code: &'a str,
    title: &'a str,
    description: Option<&'a str>,
    value_fen: Option<u64>,
    valid_from: String,
    valid_until: String,
    status: CouponStatus,
    redeemed_at: Option<String>,
    url: String,
    qr_url: String,
}

/// The public view of a coupon.
pub fn public_coupon<'a>(state: &Platform, coupon: &'a Coupon, campaign: &'a Campaign) -> PublicCoupon<'a> {
    public_coupon_at(&state.public_base_url, state.clock.now_ms(), coupon, campaign)
}

/// The public view of a coupon on the server at `public_base_url`, its status at `now` (the CLI's answer has the
/// API's shape).
pub fn public_coupon_at<'a>(
    public_base_url: &str,
    now: i64,
    coupon: &'a Coupon,
    campaign: &'a Campaign,
) -> PublicCoupon<'a> {
    let code = coupon.code.as_str();
    PublicCoupon {
        code,
        title: &campaign.title,
        description: campaign.description.as_deref(),
        value_fen: campaign.value_fen,
        valid_from: rfc3339(campaign.valid_from),
        valid_until: rfc3339(campaign.valid_until),
        status: coupon.effective_status(campaign, now),
        redeemed_at: coupon.redeemed_at.map(rfc3339),
        url: format!("{public_base_url}/c/{code}"),
        qr_url: format!("{public_base_url}/c/{code}/qr.png"),
    }
}

/// The public view as a JSON value (for callers that add fields).
pub fn public_view(state: &Platform, coupon: &Coupon, campaign: &Campaign) -> serde_json::Value {
    serde_json::to_value(public_coupon(state, coupon, campaign)).unwrap_or_default()
}

/// A coupon as the admin API lists it: the public view with its owner, who redeemed it and whether it is in a
/// WeChat card bag.
pub fn coupon_item(platform: &Platform, c: &CouponRow, k: &CampaignRow) -> serde_json::Value {
    let campaign = k.to_domain();
    match c.to_domain() {
        Some(coupon) => {
            let mut v = public_view(platform, &coupon, &campaign);
            v["owner_openid"] = json!(c.owner_openid);
            v["redeemed_by"] = json!(c.redeemed_by);
            v["in_wechat_card_bag"] = json!(c.wechat_card_code.is_some());
            v
        }
        None => json!({"code": c.code, "status": "void"}),
    }
}
