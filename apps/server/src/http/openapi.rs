//! The OpenAPI 3 description of `/api/v1`, served at `GET /api/v1/openapi.json`.
//!
//! One table below lists every API route with its authentication, parameters, body and responses, including each
//! error code it can answer; request body schemas are derived from the handlers' own body types (`utoipa::ToSchema`
//! on the same structs serde reads), so a field added to a body shows up here. The e2e test
//! `every_documented_route_exists` calls every operation of this document against a running server, and CI runs
//! schemathesis against it (no 5xx, every response as documented).

use serde_json::{Map, Value, json};
use utoipa::PartialSchema;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    /// Anyone.
    Public,
    /// The admin bearer token.
    Admin,
    /// A staff member's POS bearer token.
    Staff,
    /// A web session cookie or a mini-program bearer token.
    User,
    /// A mini-program bearer token.
    MiniProgram,
}

/// A parameter: name, where (`path` or `query`), JSON type, description.
type Param = (&'static str, &'static str, &'static str, &'static str);

struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    auth: Auth,
    params: &'static [Param],
    body: Option<fn() -> Value>,
    /// Success status and content type.
    ok: (u16, &'static str),
    /// Status and the error codes it carries.
    errors: &'static [(u16, &'static str)],
}

fn schema<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap_or_else(|_| json!({"type": "object"}))
}

const PAGE: [Param; 2] = [
    ("limit", "query", "integer", "rows per page, 1 to 500 (default 50)"),
    ("cursor", "query", "string", "next_cursor of the previous page"),
];

fn ops() -> Vec<Op> {
    use crate::features::coupons::admin_routes::VoidBody;
    use crate::features::coupons::routes::RedeemBody;
    use crate::features::merchants::follow::FollowCodeBody;
    use crate::features::merchants::messages::RedeemedMessageBody;
    use crate::features::merchants::routes::{CampaignRequest, EndBody, IssueBody, NewMerchant, NewStaff};
    use crate::features::miniprogram::routes::{CodeBody, ProfileBody};
    use crate::features::pay::routes::{CreateBody as OrderBody, RefundBody};
    use crate::features::scan_login::routes::CreateBody as SceneBody;
    const LIST_PARAMS: &[Param] = &[
        ("merchant_id", "query", "integer", "only this merchant's"),
        PAGE[0],
        PAGE[1],
    ];
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
        Op {
            method: "post",
            path: "/api/v1/merchants",
            summary: "Create a merchant",
            auth: Auth::Admin,
            params: &[],
            body: Some(schema::<NewMerchant>),
            ok: (201, "application/json"),
            errors: &[(400, "invalid_field, invalid_json")],
        },
        Op {
            method: "get",
            path: "/api/v1/merchants",
            summary: "Merchants, paged",
            auth: Auth::Admin,
            params: &PAGE,
            body: None,
            ok: (200, "application/json"),
            errors: &[(400, "invalid_query, invalid_limit, invalid_cursor")],
        },
        Op {
            method: "get",
            path: "/api/v1/merchants/{id}",
            summary: "A merchant",
            auth: Auth::Admin,
            params: &[("id", "path", "integer", "merchant id")],
            body: None,
            ok: (200, "application/json"),
            errors: &[(404, "not_found")],
        },
        Op {
            method: "post",
            path: "/api/v1/staff",
            summary: "Add a staff member (the POS token is shown once)",
            auth: Auth::Admin,
            params: &[],
            body: Some(schema::<NewStaff>),
            ok: (201, "application/json"),
            errors: &[
                (400, "invalid_field, invalid_json"),
                (404, "not_found"),
                (409, "staff_exists"),
            ],
        },
        Op {
            method: "get",
            path: "/api/v1/staff",
            summary: "Staff, paged",
            auth: Auth::Admin,
            params: LIST_PARAMS,
            body: None,
            ok: (200, "application/json"),
            errors: &[(400, "invalid_query, invalid_limit, invalid_cursor")],
        },
        Op {
            method: "delete",
            path: "/api/v1/staff/{id}",
            summary: "Remove a staff member",
            auth: Auth::Admin,
            params: &[("id", "path", "integer", "staff id")],
            body: None,
            ok: (204, ""),
            errors: &[(404, "not_found")],
        },
        Op {
            method: "post",
            path: "/api/v1/campaigns",
            summary: "Create a campaign",
            auth: Auth::Admin,
            params: &[],
            body: Some(schema::<CampaignRequest>),
            ok: (201, "application/json"),
            errors: &[(400, "invalid_field, invalid_time, invalid_json"), (404, "not_found")],
        },
        Op {
            method: "get",
            path: "/api/v1/campaigns",
            summary: "Campaigns, paged",
            auth: Auth::Admin,
            params: LIST_PARAMS,
            body: None,
            ok: (200, "application/json"),
            errors: &[(400, "invalid_query, invalid_limit, invalid_cursor")],
        },
        Op {
            method: "get",
            path: "/api/v1/campaigns/{id}",
            summary: "A campaign, with its status (scheduled, active, ended)",
            auth: Auth::Admin,
            params: &[("id", "path", "integer", "campaign id")],
            body: None,
            ok: (200, "application/json"),
            errors: &[(404, "not_found")],
        },
        Op {
            method: "post",
            path: "/api/v1/campaigns/{id}/end",
            summary: "End a campaign now: no more issuing, buying or redeeming",
            auth: Auth::Admin,
            params: &[("id", "path", "integer", "campaign id")],
            body: Some(schema::<EndBody>),
            ok: (200, "application/json"),
            errors: &[(400, "invalid_field, invalid_json"), (404, "not_found")],
        },
        Op {
            method: "post",
            path: "/api/v1/campaigns/{id}/coupons",
            summary: "Issue a coupon (optionally to an owner)",
            auth: Auth::Admin,
            params: &[("id", "path", "integer", "campaign id")],
            body: Some(schema::<IssueBody>),
            ok: (201, "application/json"),
            errors: &[
                (400, "invalid_field, invalid_json"),
                (404, "not_found"),
                (409, "not_issuable"),
            ],
        },
        Op {
            method: "get",
            path: "/api/v1/campaigns/{id}/coupons",
            summary: "A campaign's coupons, paged",
            auth: Auth::Admin,
            params: &[
                ("id", "path", "integer", "campaign id"),
                ("status", "query", "string", "issued, redeemed, void or expired"),
                ("owner_openid", "query", "string", "only this customer's"),
                PAGE[0],
                PAGE[1],
            ],
            body: None,
            ok: (200, "application/json"),
            errors: &[
                (400, "invalid_query, invalid_status, invalid_limit, invalid_cursor"),
                (404, "not_found"),
            ],
        },
        Op {
            method: "post",
            path: "/api/v1/campaigns/{id}/follow-code",
            summary: "An official-account QR code that gives one coupon to whoever follows or scans (关注领券)",
            auth: Auth::Admin,
            params: &[("id", "path", "integer", "campaign id")],
            body: Some(schema::<FollowCodeBody>),
            ok: (201, "application/json"),
            errors: &[
                (400, "invalid_field, invalid_json"),
                (404, "not_found"),
                (409, "campaign_ended"),
                (502, "wechat_refused"),
                (503, "wechat_unavailable"),
            ],
        },
        Op {
            method: "put",
            path: "/api/v1/campaigns/{id}/redeemed-message",
            summary: "Send the customer a template message when their coupon is redeemed (核销成功)",
            auth: Auth::Admin,
            params: &[("id", "path", "integer", "campaign id")],
            body: Some(schema::<RedeemedMessageBody>),
            ok: (200, "application/json"),
            errors: &[(400, "invalid_field, invalid_json"), (404, "not_found")],
        },
        Op {
            method: "get",
            path: "/api/v1/campaigns/{id}/redeemed-message",
            summary: "The campaign's redemption message",
            auth: Auth::Admin,
            params: &[("id", "path", "integer", "campaign id")],
            body: None,
            ok: (200, "application/json"),
            errors: &[(404, "not_found")],
        },
        Op {
            method: "delete",
            path: "/api/v1/campaigns/{id}/redeemed-message",
            summary: "Stop sending the redemption message",
            auth: Auth::Admin,
            params: &[("id", "path", "integer", "campaign id")],
            body: None,
            ok: (204, ""),
            errors: &[(404, "not_found")],
        },
        Op {
            method: "post",
            path: "/api/v1/campaigns/{id}/wechat-card",
            summary: "Back a campaign with a WeChat card (multipart logo, or JSON {card_id})",
            auth: Auth::Admin,
            params: &[("id", "path", "integer", "campaign id")],
            body: None,
            ok: (200, "application/json"),
            errors: &[
                (
                    400,
                    "invalid_card, invalid_field, missing_field, invalid_multipart, invalid_json",
                ),
                (404, "not_found"),
                (409, "already_card_backed"),
                (502, "wechat_refused"),
                (503, "wechat_unavailable"),
            ],
        },
        Op {
            method: "get",
            path: "/api/v1/admin/outbox",
            summary: "Work owed to WeChat, newest first",
            auth: Auth::Admin,
            params: &[
                ("status", "query", "string", "pending, done or failed"),
                ("limit", "query", "integer", "at most this many"),
            ],
            body: None,
            ok: (200, "application/json"),
            errors: &[(400, "invalid_query, invalid_status")],
        },
        Op {
            method: "post",
            path: "/api/v1/admin/outbox/{id}/retry",
            summary: "Put a failed outbox item back in the queue",
            auth: Auth::Admin,
            params: &[("id", "path", "integer", "outbox item id")],
            body: None,
            ok: (200, "application/json"),
            errors: &[(404, "not_found (no failed item with that id)")],
        },
        Op {
            method: "get",
            path: "/api/v1/me",
            summary: "The caller's user",
            auth: Auth::User,
            params: &[],
            body: None,
            ok: (200, "application/json"),
            errors: &[],
        },
        Op {
            method: "post",
            path: "/api/v1/miniprogram/login",
            summary: "Mini-program login with the code of wx.login()",
            auth: Auth::Public,
            params: &[],
            body: Some(schema::<CodeBody>),
            ok: (200, "application/json"),
            errors: &[
                (400, "invalid_code, code_used, invalid_json"),
                (403, "code_blocked"),
                (429, "wechat_rate_limited"),
                (502, "wechat_error"),
                (503, "miniprogram_not_configured"),
            ],
        },
        Op {
            method: "post",
            path: "/api/v1/miniprogram/phone",
            summary: "The user's verified phone number (getPhoneNumber code)",
            auth: Auth::MiniProgram,
            params: &[],
            body: Some(schema::<CodeBody>),
            ok: (200, "application/json"),
            errors: &[
                (400, "invalid_code, no_session_key, invalid_json"),
                (502, "wechat_error"),
                (503, "miniprogram_not_configured"),
            ],
        },
        Op {
            method: "post",
            path: "/api/v1/miniprogram/profile",
            summary: "The user's profile from wx.getUserInfo's encrypted data",
            auth: Auth::MiniProgram,
            params: &[],
            body: Some(schema::<ProfileBody>),
            ok: (200, "application/json"),
            errors: &[
                (400, "invalid_data, no_session_key, invalid_json"),
                (503, "miniprogram_not_configured"),
            ],
        },
        Op {
            method: "post",
            path: "/api/v1/miniprogram/logout",
            summary: "Revoke the mini-program token",
            auth: Auth::MiniProgram,
            params: &[],
            body: None,
            ok: (204, ""),
            errors: &[(503, "miniprogram_not_configured")],
        },
        Op {
            method: "post",
            path: "/api/v1/login/scenes",
            summary: "A scan-to-login scene (mini-program code, socket URL)",
            auth: Auth::Public,
            params: &[],
            body: Some(schema::<SceneBody>),
            ok: (201, "application/json"),
            errors: &[
                (400, "invalid_return_path, invalid_json"),
                (429, "too_many_login_codes"),
                (503, "miniprogram_not_configured"),
            ],
        },
        Op {
            method: "get",
            path: "/api/v1/login/scenes/{scene}/qr.png",
            summary: "The scene's mini-program code",
            auth: Auth::Public,
            params: &[
                ("scene", "path", "string", "scene id"),
                ("key", "query", "string", "the scene's watch key"),
            ],
            body: None,
            ok: (200, "image/png"),
            errors: &[
                (404, "not_found"),
                (410, "scene_expired"),
                (502, "wechat_error"),
                (503, "miniprogram_not_configured"),
            ],
        },
        Op {
            method: "post",
            path: "/api/v1/login/scenes/{scene}/scan",
            summary: "The phone opened the scene's code",
            auth: Auth::MiniProgram,
            params: &[("scene", "path", "string", "scene id")],
            body: None,
            ok: (200, "application/json"),
            errors: &[
                (404, "not_found"),
                (
                    409,
                    "not_scanned, scanned_by_another, already_confirmed, cancelled, conflict",
                ),
                (410, "scene_expired"),
            ],
        },
        Op {
            method: "post",
            path: "/api/v1/login/scenes/{scene}/confirm",
            summary: "The phone confirmed the login",
            auth: Auth::MiniProgram,
            params: &[("scene", "path", "string", "scene id")],
            body: None,
            ok: (200, "application/json"),
            errors: &[
                (404, "not_found"),
                (
                    409,
                    "not_scanned, scanned_by_another, already_confirmed, cancelled, conflict",
                ),
                (410, "scene_expired"),
            ],
        },
        Op {
            method: "post",
            path: "/api/v1/login/scenes/{scene}/cancel",
            summary: "The phone declined the login",
            auth: Auth::MiniProgram,
            params: &[("scene", "path", "string", "scene id")],
            body: None,
            ok: (200, "application/json"),
            errors: &[
                (404, "not_found"),
                (
                    409,
                    "not_scanned, scanned_by_another, already_confirmed, cancelled, conflict",
                ),
                (410, "scene_expired"),
            ],
        },
        Op {
            method: "get",
            path: "/api/v1/jssdk/config",
            summary: "wx.config parameters signed for a page URL",
            auth: Auth::Public,
            params: &[
                ("url", "query", "string", "the page's URL, without its #fragment"),
                ("apis", "query", "string", "comma-separated jsApiList"),
            ],
            body: None,
            ok: (200, "application/json"),
            errors: &[
                (400, "missing_url, invalid_url, url_not_allowed, invalid_query"),
                (503, "wechat_unavailable"),
            ],
        },
        Op {
            method: "post",
            path: "/api/v1/pay/orders",
            summary: "Place a WeChat Pay order (JSAPI or NATIVE), or buy a campaign's coupon",
            auth: Auth::User,
            params: &[],
            body: Some(schema::<OrderBody>),
            ok: (201, "application/json"),
            errors: &[
                (400, "invalid_field, missing_field, invalid_json"),
                (404, "not_found"),
                (
                    409,
                    "price_changed, sold_out, limit_reached, campaign_ended, not_for_sale",
                ),
                (502, "wechat_pay_refused"),
                (
                    503,
                    "pay_not_configured, miniprogram_pay_not_configured, wechat_unavailable",
                ),
            ],
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
    ]
}

fn envelope_ref() -> Value {
    json!({"$ref": "#/components/schemas/Error"})
}

fn error_response(description: String) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": envelope_ref()}}})
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in ops() {
        let mut responses = Map::new();
        let ok = match op.ok {
            (status, "") => (status.to_string(), json!({"description": "done (no body)"})),
            (status, "application/json") => (
                status.to_string(),
                json!({"description": "done", "content": {"application/json": {"schema": {"type": "object"}}}}),
            ),
            (status, ct) => (
                status.to_string(),
                json!({"description": "done", "content": {ct: {"schema": {"type": "string", "format": "binary"}}}}),
            ),
        };
        responses.insert(ok.0, ok.1);
        if op.path == "/api/v1/redemptions" && op.method == "get" {
            responses["200"]["content"]["text/csv"] = json!({"schema": {"type": "string"}});
        }
        let mut errors: Vec<(u16, String)> = op.errors.iter().map(|(s, c)| (*s, (*c).to_owned())).collect();
        let mut add = |status: u16, codes: &str| match errors.iter_mut().find(|(s, _)| *s == status) {
            Some((_, c)) => {
                c.push_str(", ");
                c.push_str(codes);
            }
            None => errors.push((status, codes.to_owned())),
        };
        if op.auth != Auth::Public {
            add(401, "unauthorized, login_required");
        }
        if op.auth == Auth::Admin || op.auth == Auth::Staff {
            add(403, "forbidden");
        }
        if op.body.is_some() || op.method == "post" {
            add(400, "bad_request");
            add(413, "payload_too_large");
            add(415, "unsupported_media_type");
        }
        if op.params.iter().any(|p| p.1 == "path") {
            add(400, "invalid_path");
            add(404, "not_found");
        }
        if op.params.iter().any(|p| p.1 == "query") {
            add(400, "invalid_query");
        }
        add(429, "rate_limited, too_many_failed_authentications");
        add(503, "unavailable, wechat_unavailable");
        for (status, codes) in errors {
            responses.insert(status.to_string(), error_response(format!("error.code: {codes}")));
        }
        let parameters: Vec<Value> = op
            .params
            .iter()
            .map(|(name, place, ty, description)| {
                json!({
                    "name": name, "in": place, "required": *place == "path", "description": description,
                    "schema": {"type": ty},
                })
            })
            .collect();
        let mut operation = json!({
            "summary": op.summary,
            "operationId": format!("{}{}", op.method, op.path.replace(['/', '{', '}', '.', '-'], "_")),
            "parameters": parameters,
            "responses": responses,
        });
        operation["security"] = match op.auth {
            Auth::Public => json!([]),
            Auth::Admin => json!([{"admin": []}]),
            Auth::Staff => json!([{"staff": []}]),
            Auth::User => json!([{"session": []}, {"miniprogram": []}]),
            Auth::MiniProgram => json!([{"miniprogram": []}]),
        };
        if let Some(body) = op.body {
            operation["requestBody"] = json!({
                "required": !(op.path.ends_with("/coupons") || op.path.ends_with("/end") || op.path == "/api/v1/login/scenes"),
                "content": {"application/json": {"schema": body()}},
            });
        }
        let item = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        item[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "wxkit API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Coupons and redemption, login, JS-SDK and WeChat Pay. Every error is \
                {\"error\": {\"code\", \"message\"}}; its codes per route are listed in each response's description.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "wechat_errcode": {"type": "integer"},
                        },
                    }},
                },
            },
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer", "description": "admin.token"},
                "staff": {"type": "http", "scheme": "bearer", "description": "a staff member's POS token"},
                "miniprogram": {"type": "http", "scheme": "bearer", "description": "a mini-program login token"},
                "session": {"type": "apiKey", "in": "cookie", "name": "wxkit_session"},
            },
        },
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> actix_web::HttpResponse {
    static DOC: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| document().to_string());
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(DOC.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `(method, path)` the capabilities' `api` functions register, read from their source.
    fn served() -> std::collections::BTreeSet<(String, String)> {
        let sources = [
            include_str!("../features/coupons/routes.rs"),
            include_str!("../features/merchants/routes.rs"),
            include_str!("../features/outbox/routes.rs"),
            include_str!("../features/auth/routes.rs"),
            include_str!("../features/miniprogram/routes.rs"),
            include_str!("../features/scan_login/routes.rs"),
            include_str!("../features/jssdk/routes.rs"),
            include_str!("../features/pay/routes.rs"),
        ];
        let mut out = std::collections::BTreeSet::new();
        for src in sources {
            let Some(start) = src.find("pub fn api(cfg: &mut web::ServiceConfig) {") else {
                continue;
            };
            let body = &src[start..];
            let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
            for chunk in body.split("web::resource(\"").skip(1) {
                let path = &chunk[..chunk.find('"').unwrap()];
                let until = chunk.find("web::resource(").unwrap_or(chunk.len());
                for m in ["get", "post", "put", "delete", "patch"] {
                    if chunk[..until].contains(&format!("web::{m}()")) {
                        out.insert((m.to_owned(), format!("/api/v1{path}")));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_served_api_route_is_documented_and_back() {
        let doc = document();
        let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone())))
            .collect();
        let served = served();
        assert!(served.len() >= 30, "{served:?}");
        let undocumented: Vec<_> = served.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "served but not in the OpenAPI document: {undocumented:?}"
        );
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(unserved.is_empty(), "documented but not served: {unserved:?}");
    }

    #[test]
    fn the_document_is_openapi_3_with_schemas_from_the_body_types() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let redeem = &doc["paths"]["/api/v1/redemptions"]["post"];
        assert_eq!(
            redeem["requestBody"]["content"]["application/json"]["schema"]["properties"]["code"]["type"],
            "string"
        );
        assert!(
            redeem["responses"]["409"]["description"]
                .as_str()
                .unwrap()
                .contains("already_redeemed")
        );
        let campaign =
            &doc["paths"]["/api/v1/campaigns"]["post"]["requestBody"]["content"]["application/json"]["schema"];
        assert!(campaign["properties"]["price_fen"].is_object(), "{campaign}");
        assert_eq!(campaign["additionalProperties"], false, "{campaign}");
        for (path, item) in doc["paths"].as_object().unwrap() {
            assert!(path.starts_with("/api/v1/"), "{path}");
            for (method, op) in item.as_object().unwrap() {
                assert!(op["responses"]["429"].is_object(), "{method} {path}");
            }
        }
    }
}
