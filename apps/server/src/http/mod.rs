//! The HTTP kernel shared by every capability: the error envelope, the JSON extractor, authentication extractors,
//! sessions and CSRF, limits (body deadlines, connection cap, failed-authentication limiter), page rendering,
//! health and metrics. Nothing here knows a capability's rules.

pub mod auth;
pub mod errors;
pub mod health;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod pages;
pub mod ratelimit;

use actix_web::web;

/// The kernel's own routes: health, readiness, metrics, the stylesheet.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/static/app.css", web::get().to(pages::stylesheet));
}
