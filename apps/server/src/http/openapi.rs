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
pub enum Auth {
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
pub type Param = (&'static str, &'static str, &'static str, &'static str);

#[derive(Debug)]
pub struct Op {
    /// `get`, `post`, `put`, `delete`.
    pub method: &'static str,
    /// The full path, `/api/v1/...`.
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Who may call it.
    pub auth: Auth,
    /// Its parameters.
    pub params: &'static [Param],
    /// Its JSON body's schema.
    pub body: Option<fn() -> Value>,
    /// Success status and content type.
    pub ok: (u16, &'static str),
    /// Status and the error codes it carries.
    pub errors: &'static [(u16, &'static str)],
}

/// The JSON schema of a body type (from its `utoipa::ToSchema`).
pub fn schema<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap_or_else(|_| json!({"type": "object"}))
}

/// The paging parameters of list routes.
pub const PAGE: [Param; 2] = [
    ("limit", "query", "integer", "rows per page, 1 to 500 (default 50)"),
    ("cursor", "query", "string", "next_cursor of the previous page"),
];

fn envelope_ref() -> Value {
    json!({"$ref": "#/components/schemas/Error"})
}

fn error_response(description: String) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": envelope_ref()}}})
}

/// The document of `ops` (every capability's, merged by `features`).
pub fn document(ops: Vec<Op>) -> Value {
    let mut paths = Map::new();
    for op in ops {
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

/// The served document, rendered once at start-up.
#[derive(Debug)]
pub struct ApiDocument(pub String);

/// `GET /api/v1/openapi.json`.
pub async fn serve(doc: actix_web::web::Data<ApiDocument>) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(doc.0.clone())
}
