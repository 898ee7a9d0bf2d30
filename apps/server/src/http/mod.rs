//! The HTTP kernel shared by every capability: the error envelope, the JSON extractor, authentication extractors,
//! sessions and CSRF, limits (body deadlines, connection cap, failed-authentication limiter), page rendering,
//! health and metrics. Nothing here knows a capability's rules.

pub mod assets;
pub mod auth;
pub mod client;
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

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

/// The kernel's own routes: health, readiness, metrics, the static assets.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // HEAD too: uptime checkers and load balancers often probe with it.
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(health::healthz))
            .route(web::head().to(health::healthz)),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(health::readyz))
            .route(web::head().to(health::readyz)),
    )
    .service(web::resource("/metrics").route(web::get().to(metrics::metrics)))
    .service(web::resource("/static/{name}").route(web::get().to(assets::serve)))
    .service(web::resource("/favicon.ico").route(web::get().to(assets::favicon)));
}

/// The extractors' limits and their errors in the JSON envelope.
pub fn extractor_configs(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(256 * 1024)
            .error_handler(|err, _req| errors::ApiError::bad_request("invalid_json", err.to_string()).into()),
    )
    .app_data(web::QueryConfig::default().error_handler(|err, _req| {
        errors::ApiError::bad_request("invalid_query", plain_query_error(&err.to_string())).into()
    }))
    .app_data(web::PathConfig::default().error_handler(|err, req| {
        errors::ApiError::bad_request("invalid_path", plain_path_error(&err.to_string(), req.path())).into()
    }))
    .app_data(web::FormConfig::default().limit(16 * 1024));
}

/// A path that did not parse, in words (no serde or Rust type names): `can not parse "abc" to a i64` becomes
/// `"abc" in /api/v1/campaigns/abc is not a number (ids are whole numbers)`.
fn plain_path_error(raw: &str, path: &str) -> String {
    let shown: String = path.chars().take(100).collect();
    match raw
        .split("can not parse \"")
        .nth(1)
        .and_then(|r| r.split_once("\" to a "))
    {
        Some((value, ty)) if ty.starts_with('i') || ty.starts_with('u') => {
            let value: String = value.chars().take(40).collect();
            format!("\"{value}\" in {shown} is not a number (ids are whole numbers)")
        }
        _ => format!("{shown} does not name anything here: check the id or code in it"),
    }
}

/// A query string that did not parse, in words: which parameter is unknown, or that a number was expected.
fn plain_query_error(raw: &str) -> String {
    let raw = raw.trim_start_matches("Query deserialize error: ");
    if raw.contains("invalid digit") || raw.contains("cannot parse integer") {
        "a query parameter that takes a number got something else".to_owned()
    } else if let Some(rest) = raw.strip_prefix("unknown field ") {
        format!("unknown query parameter {}", rest.replace('`', "\""))
    } else {
        format!("the query string is not valid: {raw}")
    }
}

/// Counts each request by method, route pattern and status and times it; writes its access line; answers with its
/// request id.
///
/// The access line (target `wxkit::access`) has `request_id`, `method`, `route` (the pattern: coupon codes and
/// invite tokens are credentials and stay out of logs), `status`, `latency_ms` and `client` (the address behind a
/// trusted proxy); `path` only when no route matched. Probes of `/healthz`, `/readyz` and `/metrics` are logged at
/// debug level: a load balancer asks every few seconds.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage as _;
    let started = std::time::Instant::now();
    let _in_flight = InFlight::enter();
    let method = method_label(req.method());
    let mut res = next.call(req).await?;
    // The route pattern, not the path: codes and ids must not become label values.
    let pattern = res.request().match_pattern();
    let route = pattern.as_deref().unwrap_or("unmatched");
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    record_request(method, route, status, elapsed);
    let request_id = res
        .request()
        .extensions()
        .get::<tracing_actix_web::RequestId>()
        .copied();
    let probe = matches!(route, "/healthz" | "/readyz" | "/metrics");
    // The access line's fields are built only when the line is written.
    let log = if probe {
        tracing::enabled!(target: "wxkit::access", tracing::Level::DEBUG)
    } else {
        tracing::enabled!(target: "wxkit::access", tracing::Level::INFO)
    };
    let mut id_buf = uuid::Uuid::encode_buffer();
    let id = request_id.map_or("", |id| uuid::Uuid::from(id).hyphenated().encode_lower(&mut id_buf));
    if log {
        let client = client::client(res.request())
            .ip
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let path = pattern.is_none().then(|| logged_path(res.request().path()));
        let latency_ms = (elapsed.as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
        if probe {
            tracing::debug!(target: "wxkit::access", request_id = id, method, route, status, latency_ms, client, "access");
        } else {
            tracing::info!(target: "wxkit::access", request_id = id, method, route, path = path.as_deref(), status, latency_ms, client, "access");
        }
    }
    if !id.is_empty()
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(id)
    {
        res.headers_mut()
            .insert(actix_web::http::header::HeaderName::from_static("x-request-id"), value);
    }
    Ok(res)
}

/// The request counter and latency histogram of one (method, route, status), looked up once per thread: building
/// the labels and finding the series in the registry is otherwise done on every request.
type Series = (::metrics::Counter, ::metrics::Histogram);
/// Route pattern → (method, status, series).
type SeriesByRoute = std::collections::HashMap<Box<str>, Vec<(&'static str, u16, Series)>>;

thread_local! {
    static SERIES: std::cell::RefCell<SeriesByRoute> = std::cell::RefCell::new(SeriesByRoute::new());
}

fn record_request(method: &'static str, route: &str, status: u16, elapsed: std::time::Duration) {
    let register = || -> Series {
        (
            ::metrics::counter!("wxkit_http_requests_total", "method" => method, "route" => route.to_owned(), "status" => status.to_string()),
            ::metrics::histogram!("wxkit_http_request_duration_seconds", "method" => method, "route" => route.to_owned()),
        )
    };
    let recorded = SERIES.try_with(|series| {
        let mut series = series.borrow_mut();
        let by_route = match series.get_mut(route) {
            Some(v) => v,
            // Routes are patterns (bounded by the app), methods a fixed set: the map stays small.
            None => series.entry(route.into()).or_default(),
        };
        let (counter, histogram) = match by_route.iter().position(|(m, s, _)| *m == method && *s == status) {
            Some(i) => &by_route[i].2,
            None => {
                by_route.push((method, status, register()));
                &by_route[by_route.len() - 1].2
            }
        };
        counter.increment(1);
        histogram.record(elapsed.as_secs_f64());
    });
    if recorded.is_err() {
        // The thread is shutting down: count without the cache.
        let (counter, histogram) = register();
        counter.increment(1);
        histogram.record(elapsed.as_secs_f64());
    }
}

static IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Requests being handled in this process now (a stopping server reports how many it waits for).
pub fn in_flight() -> usize {
    IN_FLIGHT.load(std::sync::atomic::Ordering::Relaxed)
}

/// One request in [`in_flight`], until dropped (also when the client goes away mid-request).
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The `method` label of the request metrics: a standard method by name, any other token `other`. Labels come from
/// fixed sets — a client that invents a method per request must not add a series per request (each is a counter plus
/// a 12-bucket histogram that is never dropped).
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Unknown paths: the JSON envelope for machines (API, WeChat's callbacks), an HTML page for people.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, errors::ApiError> {
    if errors::wants_page(&req) {
        Ok(pages::error_page_with(
            actix_web::http::StatusCode::NOT_FOUND,
            "页面不存在",
            "There is no such page: check the link.",
            &[
                pages::Action::home(),
                pages::Action::new("/coupons/mine", "我的优惠券 · My coupons"),
            ],
        ))
    } else {
        Err(errors::ApiError::not_found("no such route"))
    }
}

/// The span of each request: method, path and request id — never the query string, which carries OAuth codes and
/// push signatures (the default span of tracing-actix-web records the full target).
#[derive(Debug, Clone, Copy)]
pub struct RequestSpan;

/// A request path as logs may show it: an invite's token and a coupon's code are credentials (whoever holds the URL
/// can join a shop, or show the coupon at a till), so `/join/{token}` is logged as `/join/…`, `/c/{code}/qr.png`
/// as `/c/…/qr.png`.
pub fn logged_path(path: &str) -> String {
    for prefix in ["/join/", "/c/", "/api/v1/coupons/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let (secret, tail) = rest.split_once('/').map_or((rest, ""), |(a, b)| (a, b));
            if secret.is_empty() || secret == "buy" || secret == "mine" {
                return path.to_owned();
            }
            let slash = if rest.contains('/') { "/" } else { "" };
            return format!("{prefix}…{slash}{tail}");
        }
    }
    path.to_owned()
}

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage as _;
        let span = tracing::info_span!(
            "request",
            method = tracing::field::Empty,
            path = tracing::field::Empty,
            request_id = tracing::field::Empty
        );
        // Fields are formatted only for a span that is recorded (not on every request of a server logging at warn).
        if !span.is_disabled() {
            span.record("method", tracing::field::display(request.method()));
            span.record("path", tracing::field::display(logged_path(request.path())));
            if let Some(id) = request.extensions().get::<tracing_actix_web::RequestId>() {
                span.record("request_id", tracing::field::display(id));
            }
        }
        span
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        _span: tracing::Span,
        _outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        // Outcomes are logged by the access log and counted by the metrics middleware.
    }
}

#[cfg(test)]
mod plain_tests {
    use super::*;

    #[test]
    fn invite_tokens_stay_out_of_logs() {
        assert_eq!(logged_path("/join/0123456789abcdef0123456789abcdef"), "/join/…");
        assert_eq!(logged_path("/console/1"), "/console/1");
        assert_eq!(logged_path("/c/ABCDEFGH/qr.png"), "/c/…/qr.png");
        assert_eq!(logged_path("/c/ABCDEFGH"), "/c/…");
        assert_eq!(logged_path("/c/buy/2"), "/c/buy/2");
        assert_eq!(logged_path("/api/v1/coupons/ABC/void"), "/api/v1/coupons/…/void");
    }

    #[test]
    fn path_and_query_errors_speak_without_rust_types() {
        let m = plain_path_error(
            "Path deserialize error: can not parse \"abc\" to a i64",
            "/api/v1/campaigns/abc",
        );
        assert_eq!(
            m,
            "\"abc\" in /api/v1/campaigns/abc is not a number (ids are whole numbers)"
        );
        assert!(!plain_path_error("something else", "/x").contains("deserialize"));
        assert_eq!(
            plain_query_error("Query deserialize error: invalid digit found in string"),
            "a query parameter that takes a number got something else"
        );
        assert!(
            plain_query_error("Query deserialize error: unknown field `x`, expected `limit`")
                .starts_with("unknown query parameter \"x\"")
        );
    }
}
