//! The OpenAPI operations of this capability's routes (merged into `/api/v1/openapi.json` by `features`).

use super::routes::CreateBody as SceneBody;
use crate::http::openapi::{Auth, Op, schema};

/// Every operation of this capability.
pub fn ops() -> Vec<Op> {
    vec![
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
                (429, "rate_limited"),
                (502, "wechat_error"),
                (503, "miniprogram_not_configured, login_codes_busy"),
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
    ]
}
