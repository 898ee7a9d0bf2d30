//! `GET /metrics` (Prometheus text format) and the admin view of the outbox.

use crate::http::auth;
use crate::http::errors::ApiError;
use crate::startup::AppState;
use crate::{db, features::outbox::repo};
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

/// `GET /metrics`: outbox backlog and failures (from the database: the same for every instance), this instance's
/// deliveries and POS batching. With `admin.token` set it needs the admin bearer token (Prometheus:
/// `authorization: {type: Bearer, credentials: ...}` in the scrape config); counts only, nothing secret.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.admin_token.is_some() {
        auth::require_admin(&req, &state)?;
    }
    let (pending, failed) = db::blocking(&state.db, repo::counts)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    };
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    metric(
        "wxkit_outbox_pending",
        "gauge",
        "Work owed to WeChat not yet delivered.",
        count(pending),
    );
    metric(
        "wxkit_outbox_failed",
        "gauge",
        "Work owed to WeChat that failed for good: an operator must look (GET /api/v1/admin/outbox?status=failed).",
        count(failed),
    );
    // Counters and histograms of this instance: HTTP requests by route and status, request latency, redemption
    // outcomes by channel, POS batch sizes, outbox deliveries, token refreshes, WeChat errors by endpoint.
    if let Some(Some(handle)) = HANDLE.get() {
        out.push_str(&handle.render());
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out))
}
