//! The OpenAPI operations of this capability's routes (merged into `/api/v1/openapi.json` by `features`).

use crate::http::openapi::{Auth, Op};

/// Every operation of this capability.
pub fn ops() -> Vec<Op> {
    vec![Op {
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
    }]
}
