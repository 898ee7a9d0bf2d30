//! The OpenAPI operations of this capability's routes (merged into `/api/v1/openapi.json` by `features`).

use crate::http::openapi::{Auth, Op};

/// Every operation of this capability.
pub fn ops() -> Vec<Op> {
    vec![Op {
        method: "get",
        path: "/api/v1/me",
        summary: "The caller's user",
        auth: Auth::User,
        params: &[],
        body: None,
        ok: (200, "application/json"),
        errors: &[],
    }]
}
