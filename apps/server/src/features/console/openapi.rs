//! The OpenAPI operations of this capability's API routes (merged into `/api/v1/openapi.json` by `features`).

use super::people::AdminInvite;
use crate::http::openapi::{Auth, Op, schema};

/// Every operation of this capability.
pub fn ops() -> Vec<Op> {
    vec![Op {
        method: "post",
        path: "/api/v1/merchants/{id}/invites",
        summary: "An invite to run a merchant (owner by default): its URL, shown once, is opened in WeChat to join",
        auth: Auth::Admin,
        params: &[("id", "path", "integer", "merchant id")],
        body: Some(schema::<AdminInvite>),
        ok: (201, "application/json"),
        errors: &[(400, "invalid_field, invalid_json"), (404, "not_found")],
    }]
}
