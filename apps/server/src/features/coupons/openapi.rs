//! The OpenAPI operations of this capability's routes (merged into `/api/v1/openapi.json` by `features`).

use super::admin_routes::VoidBody;
use super::routes::RedeemBody;
use crate::http::openapi::{Auth, Op, PAGE, schema};

/// Every operation of this capability.
pub fn ops() -> Vec<Op> {
    vec![
        Op {
            method: "post",
            path: "/api/v1/redemptions",
            summary: "Redeem a coupon at the POS (the code as a till scans or a cashier types it)",
            auth: Auth::Staff,
            params: &[],
            body: Some(schema::<RedeemBody>),
            ok: (200, "application/json"),
            errors: &[
                (400, "invalid_code, invalid_json"),
                (403, "not_staff (another shop's coupon, or removed staff)"),
                (404, "not_found"),
                (409, "already_redeemed (with redeemed_at, redeemed_by), not_yet_valid"),
                (410, "expired, void"),
            ],
        },
        Op {
            method: "get",
            path: "/api/v1/redemptions",
            summary: "The redemption log (核销记录), newest first; CSV with Accept: text/csv",
            auth: Auth::Admin,
            params: &[
                ("merchant_id", "query", "integer", "only this merchant's"),
                ("campaign_id", "query", "integer", "only this campaign's"),
                ("since", "query", "string", "at or after (RFC 3339)"),
                ("until", "query", "string", "before (RFC 3339)"),
                PAGE[0],
                PAGE[1],
            ],
            body: None,
            ok: (200, "application/json"),
            errors: &[(400, "invalid_query, invalid_time, invalid_limit, invalid_cursor")],
        },
        Op {
            method: "get",
            path: "/api/v1/coupons/{code}",
            summary: "A coupon's public view",
            auth: Auth::Public,
            params: &[("code", "path", "string", "the coupon code")],
            body: None,
            ok: (200, "application/json"),
            errors: &[(404, "not_found")],
        },
        Op {
            method: "get",
            path: "/api/v1/coupons/{code}/card-ext",
            summary: "cardId and signed cardExt for wx.addCard (the coupon's owner)",
            auth: Auth::User,
            params: &[("code", "path", "string", "the coupon code")],
            body: None,
            ok: (200, "application/json"),
            errors: &[
                (404, "not_found"),
                (409, "not_card_backed, already_in_wallet, not_usable"),
                (503, "wechat_unavailable"),
            ],
        },
        Op {
            method: "get",
            path: "/api/v1/coupons/{code}/busifavor-send",
            summary: "The mini-program send-coupon plugin's parameters for a 商家券 coupon (the coupon's owner)",
            auth: Auth::User,
            params: &[("code", "path", "string", "the coupon code")],
            body: None,
            ok: (200, "application/json"),
            errors: &[
                (400, "invalid_coupon"),
                (404, "not_found"),
                (409, "not_wechat_pay_coupon, already_in_wallet, not_usable"),
                (503, "wechat_pay_coupons_off"),
            ],
        },
        Op {
            method: "post",
            path: "/api/v1/coupons/{code}/void",
            summary: "Void a coupon that is not redeemed (audited)",
            auth: Auth::Admin,
            params: &[("code", "path", "string", "the coupon code")],
            body: Some(schema::<VoidBody>),
            ok: (200, "application/json"),
            errors: &[
                (400, "invalid_field, invalid_json"),
                (404, "not_found"),
                (409, "coupon_redeemed"),
            ],
        },
    ]
}
