//! The OpenAPI operations of this capability's routes (merged into `/api/v1/openapi.json` by `features`).

use super::routes::{CreateBody as OrderBody, RefundBody};
use crate::http::openapi::{Auth, Op, schema};

/// Every operation of this capability.
pub fn ops() -> Vec<Op> {
    vec![
        Op {
            method: "post",
            path: "/api/v1/pay/orders",
            summary: "Place a WeChat Pay order (JSAPI, NATIVE or H5), or buy a campaign's coupon",
            auth: Auth::User,
            params: &[],
            body: Some(schema::<OrderBody>),
            ok: (201, "application/json"),
            errors: &[
                (400, "invalid_field, missing_field, invalid_json"),
                (404, "not_found"),
                (
                    409,
                    "price_changed, sold_out, limit_reached, campaign_ended, not_for_sale, open_order",
                ),
                (429, "too_many_orders, too_many_open_orders"),
                (502, "wechat_pay_refused"),
                (
                    503,
                    "pay_not_configured, miniprogram_pay_not_configured, wechat_unavailable",
                ),
            ],
        },
        Op {
            method: "get",
            path: "/api/v1/pay/orders",
            summary: "Orders, newest first (status created, paid, refunded or closed; by merchant, campaign, time)",
            auth: Auth::Admin,
            params: &[
                (
                    "status",
                    "query",
                    "string",
                    "created | paid (no refund) | refunded | closed",
                ),
                (
                    "merchant_id",
                    "query",
                    "integer",
                    "orders buying this merchant's coupons",
                ),
                (
                    "campaign_id",
                    "query",
                    "integer",
                    "orders buying this campaign's coupons",
                ),
                ("since", "query", "string", "placed at or after (RFC 3339)"),
                ("until", "query", "string", "placed before (RFC 3339)"),
                ("limit", "query", "integer", "page size (1-200)"),
                ("cursor", "query", "string", "next_cursor of the previous page"),
            ],
            body: None,
            ok: (200, "application/json"),
            errors: &[(400, "invalid_status, invalid_time, invalid_cursor")],
        },
        Op {
            method: "get",
            path: "/api/v1/pay/orders/{out_trade_no}",
            summary: "An order's status (its buyer, or the admin)",
            auth: Auth::User,
            params: &[("out_trade_no", "path", "string", "the order number")],
            body: None,
            ok: (200, "application/json"),
            errors: &[(404, "not_found")],
        },
        Op {
            method: "post",
            path: "/api/v1/pay/orders/{out_trade_no}/close",
            summary: "Close an unpaid order",
            auth: Auth::User,
            params: &[("out_trade_no", "path", "string", "the order number")],
            body: None,
            ok: (200, "application/json"),
            errors: &[(404, "not_found"), (409, "not_open"), (502, "wechat_pay_refused")],
        },
        Op {
            method: "get",
            path: "/api/v1/pay/orders/{out_trade_no}/qr.png",
            summary: "A NATIVE order's code to scan",
            auth: Auth::User,
            params: &[("out_trade_no", "path", "string", "the order number")],
            body: None,
            ok: (200, "image/png"),
            errors: &[(404, "not_found (or not a NATIVE order)")],
        },
        Op {
            method: "post",
            path: "/api/v1/pay/orders/{out_trade_no}/refunds",
            summary: "Refund (part of) a paid order",
            auth: Auth::Admin,
            params: &[("out_trade_no", "path", "string", "the order number")],
            body: Some(schema::<RefundBody>),
            ok: (201, "application/json"),
            errors: &[
                (400, "invalid_field, invalid_json"),
                (404, "not_found"),
                (409, "not_paid, over_refund, coupon_redeemed, too_soon"),
                (502, "wechat_pay_refused"),
                (503, "pay_not_configured"),
            ],
        },
        Op {
            method: "get",
            path: "/api/v1/admin/pay/notifications",
            summary: "Every payment notify received and what it did",
            auth: Auth::Admin,
            params: &[
                ("outcome", "query", "string", "only this outcome"),
                ("limit", "query", "integer", "at most this many"),
            ],
            body: None,
            ok: (200, "application/json"),
            errors: &[(400, "invalid_query")],
        },
        Op {
            method: "get",
            path: "/api/v1/pay/reconciliations",
            summary: "A Beijing day's reconciliation: WeChat Pay's trade bill against the ledger (CSV with Accept: text/csv)",
            auth: Auth::Admin,
            params: &[
                ("date", "query", "string", "the Beijing day, YYYY-MM-DD"),
                (
                    "refresh",
                    "query",
                    "boolean",
                    "make it again instead of the stored report",
                ),
            ],
            body: None,
            ok: (200, "application/json"),
            errors: &[
                (400, "invalid_date, invalid_query"),
                (502, "wechat_pay_refused"),
                (503, "pay_not_configured, wechat_unavailable"),
            ],
        },
        Op {
            method: "get",
            path: "/api/v1/pay/bills",
            summary: "A Beijing day's bill as WeChat Pay serves it (trade, or fund flow on v3)",
            auth: Auth::Admin,
            params: &[
                ("date", "query", "string", "the Beijing day, YYYY-MM-DD"),
                ("type", "query", "string", "trade (default) or fundflow"),
            ],
            body: None,
            ok: (200, "text/plain"),
            errors: &[
                (400, "invalid_date, invalid_type, invalid_query, invalid_field"),
                (502, "wechat_pay_refused"),
                (503, "pay_not_configured, wechat_unavailable"),
            ],
        },
    ]
}
