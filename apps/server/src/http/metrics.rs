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
    process_gauges(&mut out, &platform.db);
    // Counters and histograms of this instance: HTTP requests by route and status, request latency, redemption
    // outcomes by channel, POS batch sizes, outbox deliveries, token refreshes, WeChat errors by endpoint.
    if let Some(Some(handle)) = HANDLE.get() {
        out.push_str(&handle.render());
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out))
}

/// This instance's process, database pool and build, in the Prometheus text format: resident memory, open and
/// allowed descriptors, CPU seconds, start time (Linux `/proc`; left out elsewhere), the pool's connections (in use,
/// idle, requests waiting for one, work queued for a database thread) and `wxkit_build_info{version, commit}`.
pub fn process_gauges(out: &mut String, db: &crate::db::Db) {
    let mut gauge = |name: &str, help: &str, kind: &str, value: f64| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    };
    let proc = read_proc();
    if let Some(rss) = proc.rss_bytes {
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            rss as f64,
        );
    }
    if let Some(fds) = proc.open_fds {
        gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            fds as f64,
        );
    }
    if let Some(max) = proc.max_fds {
        gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            "gauge",
            max as f64,
        );
    }
    if let Some(cpu) = proc.cpu_seconds {
        gauge(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            cpu,
        );
    }
    if let Some(start) = proc.start_time_seconds {
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            start,
        );
    }
    let state = db.pool().state();
    let in_use = state.connections.saturating_sub(state.idle_connections);
    gauge(
        "wxkit_db_pool_max",
        "Connections the database pool may open.",
        "gauge",
        f64::from(db.pool().max_size()),
    );
    gauge(
        "wxkit_db_pool_in_use",
        "Database connections checked out.",
        "gauge",
        f64::from(in_use),
    );
    gauge(
        "wxkit_db_pool_idle",
        "Database connections open and idle.",
        "gauge",
        f64::from(state.idle_connections),
    );
    gauge(
        "wxkit_db_pool_waiting",
        "Requests waiting for a database connection.",
        "gauge",
        crate::db::pool_waiting() as f64,
    );
    gauge(
        "wxkit_db_queue_depth",
        "Database work queued for a database thread.",
        "gauge",
        db.queued() as f64,
    );
    let _ = write!(
        out,
        "# HELP wxkit_build_info The running build.\n# TYPE wxkit_build_info gauge\n\
         wxkit_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION"),
        env!("WXKIT_COMMIT")
    );
}

#[derive(Default)]
struct ProcFigures {
    rss_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    cpu_seconds: Option<f64>,
    start_time_seconds: Option<f64>,
}

/// Linux's clock ticks per second for `/proc/*/stat` (USER_HZ: 100 on every architecture Linux runs wxkit on).
const USER_HZ: f64 = 100.0;

fn read_proc() -> ProcFigures {
    let mut f = ProcFigures::default();
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        f.rss_bytes = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024);
    }
    f.open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64);
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        f.max_fds = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok());
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces and parentheses): state is field 3.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            f.cpu_seconds = Some((utime + stime) / USER_HZ);
        }
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        if let (Some(start), Some(boot)) = (field(22), boot) {
            f.start_time_seconds = Some(boot + start / USER_HZ);
        }
    }
    f
}
