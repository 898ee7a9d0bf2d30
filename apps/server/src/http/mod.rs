//! The HTTP kernel shared by every capability: the error envelope, the JSON extractor, authentication extractors,
//! sessions and CSRF, limits (body deadlines, connection cap, failed-authentication limiter), page rendering,
//! health and metrics. Nothing here knows a capability's rules.

pub mod auth;
pub mod errors;
pub mod health;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod multipart;
pub mod openapi;
pub mod pages;
pub mod paging;
pub mod ratelimit;

use actix_web::web;

/// The kernel's own routes: health, readiness, metrics, the stylesheet.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(health::healthz)))
        .service(web::resource("/readyz").route(web::get().to(health::readyz)))
        .service(web::resource("/metrics").route(web::get().to(metrics::metrics)))
        .service(web::resource("/static/app.css").route(web::get().to(pages::stylesheet)));
}

/// The span of each request: method, path and request id — never the query string, which carries OAuth codes and
/// push signatures (the default span of tracing-actix-web records the full target).
#[derive(Debug, Clone, Copy)]
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage as _;
        let request_id = request
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.path(),
            request_id = %request_id
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        _span: tracing::Span,
        _outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        // Outcomes are logged by the access log and counted by the metrics middleware.
    }
}
