//! What every page of the simulator shares (the pages a person uses to play the WeChat user: authorize, the
//! cashier, the mini program's login and scan pages, Add to WeChat): the stylesheet, rendering with the pages' CSP,
//! and WeChat's error page.

use actix_web::HttpResponse;

/// The stylesheet of the simulator's pages.
const SIM_CSS: &str = include_str!("../static/sim.css");

/// `GET /_sim/static/sim.css`.
pub(crate) async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(SIM_CSS)
}

/// Renders a simulator page (auto-escaped template; no inline style or script).
pub(crate) fn render(template: &impl askama::Template) -> HttpResponse {
    match template.render() {
        Ok(html) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((
                "Content-Security-Policy",
                "default-src 'self'; form-action *; frame-ancestors 'none'; base-uri 'none'",
            ))
            .body(html),
        Err(e) => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(format!("template error: {e}")),
    }
}

#[derive(askama::Template)]
#[template(path = "sim_error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    code: i64,
    message: &'a str,
}

pub(crate) fn error_page(code: i64, message: &str) -> HttpResponse {
    render(&ErrorPage {
        title: "出错了",
        code,
        message,
    })
}
