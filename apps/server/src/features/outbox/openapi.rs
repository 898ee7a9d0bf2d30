//! The OpenAPI operations of this capability's routes (merged into `/api/v1/openapi.json` by `features`).

use crate::http::openapi::{Auth, Op};

/// Every operation of this capability.
pub fn ops() -> Vec<Op> {
    vec![
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
    ]
}
