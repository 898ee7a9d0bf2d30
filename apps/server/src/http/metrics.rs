//! `GET /metrics` (Prometheus text format) and the admin view of the outbox.

use crate::http::auth::{self, AuthKeys};
use crate::http::errors::ApiError;
use crate::platform::Platform;
use actix_web::{HttpRequest, HttpResponse, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::fmt::Write as _;
use std::sync::OnceLock;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls reuse it). Latency histograms get buckets from
/// 1 ms to 10 s, POS batch sizes from 1 to 256.
pub fn install_recorder() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("wxkit_pos_batch_size".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                )
            })
            .map(PrometheusBuilder::build_recorder);
        match recorder {
            Ok(recorder) => {
                let handle = recorder.handle();
                // Another recorder may be installed by an embedding service: then its registry gets our metrics.
                if metrics::set_global_recorder(recorder).is_err() {
                    tracing::warn!("a metrics recorder is already installed; /metrics shows only wxkit's own gauges");
                    return None;
                }
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot build the metrics recorder");
                None
            }
        }
    });
}

/// Counts a redemption attempt's outcome by channel.
pub fn record_redemption(channel: redemption_core::Channel, outcome: &redemption_core::Outcome) {
    metrics::counter!(
        "wxkit_redemptions_total",
        "channel" => channel.as_str(),
        "outcome" => outcome.name()
    )
    .increment(1);
}

/// A gauge read at scrape time (from the database: the same for every instance).
#[derive(Clone, Debug)]
pub struct Gauge {
    /// The metric's name.
    pub name: &'static str,
    /// Its help line.
    pub help: &'static str,
    /// Its value.
    pub value: u64,
}

/// Gauges a capability contributes to `/metrics` (the kernel names none).
#[async_trait::async_trait]
pub trait GaugeSource: Send + Sync {
    /// The current values.
    async fn gauges(&self) -> Result<Vec<Gauge>, ApiError>;
}

/// Every capability's gauges, registered once as application data.
#[derive(Clone, Default)]
pub struct Gauges(pub Vec<std::sync::Arc<dyn GaugeSource>>);

impl std::fmt::Debug for Gauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauges").field("sources", &self.0.len()).finish()
    }
}

/// `GET /metrics`: the capabilities' gauges (outbox backlog and failures), this instance's deliveries and POS
/// batching. With `admin.token` set it needs the admin bearer token (Prometheus:
/// `authorization: {type: Bearer, credentials: ...}` in the scrape config); counts only, nothing secret.
pub async fn metrics(
    req: HttpRequest,
    platform: web::Data<Platform>,
    keys: web::Data<AuthKeys>,
    gauges: web::Data<Gauges>,
) -> Result<HttpResponse, ApiError> {
    if keys.admin_token.is_some() {
        auth::require_admin(&req, &platform, &keys)?;
    }
    let mut out = String::new();
    for source in &gauges.0 {
        for g in source.gauges().await? {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n",
                name = g.name,
                help = g.help,
                value = g.value
            );
        }
    }
    // Counters and histograms of this instance: HTTP requests by route and status, request latency, redemption
    // outcomes by channel, POS batch sizes, outbox deliveries, token refreshes, WeChat errors by endpoint.
    if let Some(Some(handle)) = HANDLE.get() {
        out.push_str(&handle.render());
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out))
}
