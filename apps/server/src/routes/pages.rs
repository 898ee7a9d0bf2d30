//! Server-rendered, mobile-first HTML in Chinese with English beside it; no external assets.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{margin:0;font-family:-apple-system,'PingFang SC','Helvetica Neue',sans-serif;background:#f2f2f2;color:#111}\
main{max-width:480px;margin:0 auto;padding:16px}.card{background:#fff;border-radius:12px;padding:20px;margin:12px 0;\
box-shadow:0 1px 3px rgba(0,0,0,.06)}h1{font-size:22px;margin:0 0 8px}.value{font-size:32px;color:#e64340;font-weight:600}\
.muted{color:#888;font-size:14px}.en{color:#999;font-size:13px}.status{display:inline-block;padding:4px 10px;border-radius:12px;\
font-size:14px}.issued{background:#e8f8ee;color:#07c160}.redeemed{background:#eee;color:#666}.expired,.void{background:#fdeaea;\
color:#e64340}button{width:100%;padding:14px;border:0;border-radius:8px;background:#07c160;color:#fff;font-size:18px}\
.qr{display:block;margin:12px auto;width:240px;height:240px;image-rendering:pixelated}.ok{color:#07c160;font-size:20px}\
.err{color:#e64340}a{color:#576b95}ul{padding-left:18px}li{margin:8px 0}";

/// A full page.
pub fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'",
        ))
        .body(format!(
            "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1,maximum-scale=1\">\
             <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
            esc(title)
        ))
}

/// An error page with a Chinese headline and an English line.
pub fn error_page(status: StatusCode, zh: &str, en: &str) -> HttpResponse {
    page(
        status,
        zh,
        &format!(
            "<div class=\"card\"><h1 class=\"err\">{}</h1><p class=\"en\">{}</p></div>",
            esc(zh),
            esc(en)
        ),
    )
}
