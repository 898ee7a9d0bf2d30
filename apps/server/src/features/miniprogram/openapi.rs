//! The OpenAPI operations of this capability's routes (merged into `/api/v1/openapi.json` by `features`).

use super::routes::{CodeBody, ProfileBody};
use crate::http::openapi::{Auth, Op, schema};

/// Every operation of this capability.
pub fn ops() -> Vec<Op> {
    vec![
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
    ]
}
