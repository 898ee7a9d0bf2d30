//! Work owed to WeChat after a local commit: the queue (`repo`), its worker and the operators' view.

pub mod openapi;
pub mod repo;
mod routes;
pub mod service;
pub mod worker;

pub use worker::{Outbox, OutboxOptions};

use crate::configuration::Settings;
use crate::db;
use crate::http::errors::ApiError;
use crate::http::metrics::{Gauge, GaugeSource};
use crate::platform::Platform;
use crate::platform::jobs::Jobs;
use crate::platform::wechat::WechatApps;
use actix_web::web;

/// What the outbox capability holds.
pub struct State {
    platform: Platform,
    /// The worker's handle (woken after a commit that queued work).
    pub outbox: Outbox,
    targets: worker::Targets,
    options: OutboxOptions,
    retention: crate::configuration::RetentionSettings,
}
crate::slice_state!(State);

/// The outbox capability's state; its worker starts with [`jobs`].
pub fn init(platform: &Platform, apps: &WechatApps, settings: &Settings) -> State {
    State {
        platform: platform.clone(),
        outbox: Outbox::new(),
        targets: worker::Targets {
            cards: apps.official.cards(),
            messages: apps.official.messages(),
            miniprogram: apps.miniprogram.as_ref().map(wechat::MiniProgram::client),
            public_base_url: platform.public_base_url.clone(),
            busifavor: apps.busifavor.clone(),
        },
        options: OutboxOptions::from_settings(&settings.outbox),
        retention: settings.retention.clone(),
    }
}

/// Starts the worker, and the retention job when `retention.*` asks for one (this slice runs it: delivered outbox
/// items and audit rows are the records that only grow).
pub fn jobs(state: &State, jobs: &mut Jobs) {
    let day_ms = 86_400_000i64;
    let (outbox_days, audit_days) = (state.retention.outbox_days, state.retention.audit_log_days);
    if outbox_days > 0 || audit_days > 0 {
        let platform = state.platform.clone();
        jobs.every("retention", std::time::Duration::from_secs(3600), move || {
            let platform = platform.clone();
            async move {
                let now = platform.now_ms();
                let horizon = |days: u32| (days > 0).then(|| now - i64::from(days) * day_ms);
                let (outbox_before, audit_before) = (horizon(outbox_days), horizon(audit_days));
                match db::blocking(&platform.db, move |conn| repo::prune(conn, outbox_before, audit_before)).await {
                    Ok((outbox, audit)) => {
                        tracing::info!(
                            outbox_items = outbox,
                            audit_rows = audit,
                            "retention: pruned old records"
                        )
                    }
                    Err(e) => tracing::warn!(error = %e, "retention: cannot prune (tried again in an hour)"),
                }
            }
        });
    }
    // 商家券: the work a redemption racing a card-bag arrival could leave unqueued (see `busifavor::sweep`).
    let platform = state.platform.clone();
    // Not at start-up (the interval's first tick is immediate): a minute in, and every minute after.
    let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    jobs.every("busifavor-sweep", std::time::Duration::from_secs(60), move || {
        let platform = platform.clone();
        let first = !started.swap(true, std::sync::atomic::Ordering::Relaxed);
        async move {
            if first {
                return;
            }
            let now = platform.now_ms();
            if let Err(e) = db::blocking(&platform.db, move |conn| {
                crate::features::coupons::busifavor::sweep(conn, now)
            })
            .await
            {
                tracing::warn!(error = %e, "busifavor sweep: cannot look (tried again in a minute)");
            }
        }
    });
    jobs.spawn(
        "outbox",
        state.outbox.worker(
            state.db.clone(),
            state.targets.clone(),
            state.options.clone(),
            state.clock.clone(),
        ),
    );
}

/// The API of this capability (under `/api/v1`).
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/outbox").route(web::get().to(routes::list_outbox)))
        .service(web::resource("/admin/outbox/{id}/retry").route(web::post().to(routes::retry_outbox)));
}

/// The outbox's backlog and failures in `/metrics` (from the database: the same on every instance).
#[derive(Debug)]
pub struct OutboxGauges(pub Platform);

#[async_trait::async_trait]
impl GaugeSource for OutboxGauges {
    async fn gauges(&self) -> Result<Vec<Gauge>, ApiError> {
        let (pending, failed) = db::blocking(&self.0.db, repo::counts).await.map_err(ApiError::from)?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(vec![
            Gauge {
                name: "wxkit_outbox_pending",
                help: "Work owed to WeChat not yet delivered.",
                value: count(pending),
            },
            Gauge {
                name: "wxkit_outbox_failed",
                help: "Work owed to WeChat that failed for good: an operator must look (GET /api/v1/admin/outbox?status=failed).",
                value: count(failed),
            },
        ])
    }
}
