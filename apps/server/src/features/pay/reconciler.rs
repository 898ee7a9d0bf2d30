//! When a notify never comes: every `pay.reconcile_every_secs`, unpaid orders older than `pay.reconcile_after_secs`
//! are asked about at WeChat (`orderquery`, or v3's query). A paid one is settled through the same exactly-once path as a notify
//! (`repo::apply_payment`); one WeChat closed is closed here; one past its expiry is closed at WeChat, then here.
//! Several instances may run it at once: every step is idempotent and conditional, so they only repeat questions.
//!
//! Orders are visited round-robin: each look pushes the order's `next_check_at` back (doubling from
//! `every_secs`, at most [`MAX_BACKOFF_MS`]), so never-asked orders come first and a crowd of junk orders cannot keep
//! a paid order waiting. An order WeChat does not know (ORDER_NOT_EXIST: we crashed between storing it and placing it)
//! is closed here once it is past its expiry, releasing its reserved coupon.

use super::repo::{self, Applied};
use crate::db::{self, Db};
use std::sync::Arc;
use std::time::Duration;
use wechat_pay::TradeState;

/// Orders looked at per round.
const BATCH: i64 = 50;
/// The longest wait between two looks at one order.
pub const MAX_BACKOFF_MS: i64 = 10 * 60 * 1000;

/// When to look at an order again after its `checks`-th look: `every` doubled per look, capped.
pub fn next_check_at(now_ms: i64, checks: i32, every_secs: u32) -> i64 {
    let base = i64::from(every_secs.max(1)) * 1000;
    let shift = u32::try_from(checks.clamp(0, 16)).unwrap_or(16);
    now_ms + base.saturating_mul(1 << shift).min(MAX_BACKOFF_MS)
}

/// The reconciler, as a background job: a round every `every_secs`.
pub async fn job(
    pool: Db,
    pay: super::Payers,
    clock: Arc<dyn wechat_core::Clock>,
    after_secs: u32,
    every_secs: u32,
    public_base_url: String,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(u64::from(every_secs)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = round(&pool, &pay, clock.as_ref(), after_secs, every_secs).await {
            tracing::warn!(error = %e, "pay reconciler: round failed");
        }
        if let Err(e) = refunds_round(&pool, &pay, clock.as_ref(), after_secs, &public_base_url).await {
            tracing::warn!(error = %e, "pay reconciler: refunds round failed");
        }
    }
}

/// One round; returns how many orders it settled or closed.
pub async fn round(
    pool: &Db,
    payers: &super::Payers,
    clock: &dyn wechat_core::Clock,
    after_secs: u32,
    every_secs: u32,
) -> Result<usize, db::DbError> {
    let now = clock.now_ms();
    let before = now - i64::from(after_secs) * 1000;
    let orders = db::blocking(pool, move |conn| repo::unsettled(conn, before, now, BATCH)).await?;
    let mut changed = 0;
    for (order, checks) in orders {
        // The next look is scheduled before this one is made: an order whose question fails or hangs still moves
        // to the back of the line.
        let (id, next) = (order.id, next_check_at(now, checks, every_secs));
        db::blocking(pool, move |conn| repo::checked(conn, id, next)).await?;
        let Some(pay) = payers.for_appid(order.appid.as_deref()) else {
            tracing::warn!(out_trade_no = %order.out_trade_no, "pay reconciler: no client for the order's appid");
            continue;
        };
        let status = match pay.query(&order.out_trade_no).await {
            Ok(s) => s,
            Err(e) if matches!(e.err_code(), Some("ORDERNOTEXIST" | "ORDER_NOT_EXIST")) => {
                // Never placed at WeChat (a crash between our insert and the prepay call): nobody can pay it, so
                // once it is past its expiry it is closed and its coupon released.
                let now = clock.now_ms();
                if order.expires_at <= now / 1000 {
                    let no = order.out_trade_no.clone();
                    if db::blocking(pool, move |conn| repo::close(conn, &no, now)).await? {
                        tracing::info!(out_trade_no = %order.out_trade_no, "pay reconciler: order unknown to WeChat closed after its expiry");
                        changed += 1;
                    }
                } else {
                    tracing::debug!(out_trade_no = %order.out_trade_no, "pay reconciler: order not (yet) at WeChat");
                }
                continue;
            }
            Err(e) => {
                let level_warn = checks < 3;
                if level_warn {
                    tracing::warn!(out_trade_no = %order.out_trade_no, error = %e, "pay reconciler: orderquery failed");
                } else {
                    tracing::debug!(out_trade_no = %order.out_trade_no, error = %e, checks, "pay reconciler: orderquery failed again");
                }
                continue;
            }
        };
        let now = clock.now_ms();
        match status.trade_state {
            TradeState::Success | TradeState::Refund => {
                let (Some(txn), Some(fee)) = (status.transaction_id.clone(), status.total_fee) else {
                    continue;
                };
                let (no, fee) = (order.out_trade_no.clone(), i64::try_from(fee).unwrap_or(i64::MAX));
                let outcome = db::blocking(pool, move |conn| repo::apply_payment(conn, &no, &txn, fee, now)).await?;
                metrics::counter!("wxkit_pay_notifies_total", "outcome" => outcome.as_str()).increment(1);
                if outcome == Applied::Applied {
                    tracing::warn!(out_trade_no = %order.out_trade_no, "pay reconciler: paid order settled without its notify");
                    changed += 1;
                }
            }
            TradeState::Closed | TradeState::Revoked | TradeState::PayError => {
                let no = order.out_trade_no.clone();
                if db::blocking(pool, move |conn| repo::close(conn, &no, now)).await? {
                    changed += 1;
                }
            }
            _ if order.expires_at <= now / 1000 && now - order.created_at >= 300_000 => {
                // Past its time and unpaid: close it at WeChat first, so that it cannot be paid after all.
                match pay.close(&order.out_trade_no).await {
                    Ok(()) => {
                        let no = order.out_trade_no.clone();
                        if db::blocking(pool, move |conn| repo::close(conn, &no, now)).await? {
                            tracing::info!(out_trade_no = %order.out_trade_no, "pay reconciler: expired order closed");
                            changed += 1;
                        }
                    }
                    // ORDERPAID: the next round settles it.
                    Err(e) => {
                        tracing::warn!(out_trade_no = %order.out_trade_no, error = %e, "pay reconciler: closeorder failed")
                    }
                }
            }
            _ => {}
        }
    }
    Ok(changed)
}

/// Refunds still `requested` after `after_secs` (their notify lost, or WeChat's answer unclear): asked about, settled
/// as WeChat says, or sent again with the same number when WeChat never got them. Each is looked at again after
/// another `after_secs` at the earliest.
pub async fn refunds_round(
    pool: &Db,
    payers: &super::Payers,
    clock: &dyn wechat_core::Clock,
    after_secs: u32,
    public_base_url: &str,
) -> Result<usize, db::DbError> {
    let now = clock.now_ms();
    let before = now - i64::from(after_secs) * 1000;
    let pending = db::blocking(pool, move |conn| repo::pending_refunds(conn, before, now, BATCH)).await?;
    let mut settled = 0;
    for r in &pending {
        match super::service::settle_pending_refund(payers, pool, r, public_base_url, clock.now_ms()).await {
            Ok(Some(outcome)) => {
                metrics::counter!("wxkit_pay_refund_notifies_total", "outcome" => outcome.as_str()).increment(1);
                tracing::info!(out_refund_no = %r.out_refund_no, outcome = outcome.as_str(), "pay reconciler: refund settled by query");
                settled += 1;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(out_refund_no = %r.out_refund_no, error = %e, "pay reconciler: refund query failed")
            }
        }
    }
    Ok(settled)
}

/// The daily reconciliation: once a minute, when Beijing time has passed `at` (hour, minute) and yesterday has no
/// report yet, yesterday is reconciled (several instances may both do it: the report is replaced, not doubled).
pub async fn bills_job(pool: Db, payers: super::Payers, clock: Arc<dyn wechat_core::Clock>, at: (u32, u32)) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = clock.now_ms();
        let Some(beijing) = chrono::DateTime::from_timestamp_millis(now)
            .map(|t| t.with_timezone(&crate::platform::time::beijing_offset()))
        else {
            continue;
        };
        use chrono::Timelike as _;
        if (beijing.hour(), beijing.minute()) < at {
            continue;
        }
        let yesterday = (beijing.date_naive() - chrono::Duration::days(1))
            .format("%Y-%m-%d")
            .to_string();
        let day = yesterday.clone();
        match db::blocking(&pool, move |conn| super::bills::stored(conn, &day)).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "daily reconciliation: cannot read the reports");
                continue;
            }
        }
        match super::service::reconcile_day(&payers, &pool, &yesterday, now).await {
            Ok(report) => {
                tracing::info!(date = %report.date, clean = report.clean, differences = report.differences.len(), "daily reconciliation done")
            }
            Err(e) => {
                tracing::warn!(date = %yesterday, error = %e, "daily reconciliation failed; tried again in a minute")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_back_off_doubling_up_to_the_cap() {
        assert_eq!(next_check_at(0, 0, 30), 30_000);
        assert_eq!(next_check_at(0, 1, 30), 60_000);
        assert_eq!(next_check_at(0, 3, 30), 240_000);
        assert_eq!(next_check_at(0, 10, 30), MAX_BACKOFF_MS);
        assert_eq!(next_check_at(5, i32::MAX, 30), 5 + MAX_BACKOFF_MS);
        assert_eq!(next_check_at(0, -1, 0), 1000);
    }
}
