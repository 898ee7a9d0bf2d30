//! When a notify never comes: every `pay.reconcile_every_secs`, unpaid orders older than `pay.reconcile_after_secs`
//! are asked about at WeChat (`orderquery`, or v3's query). A paid one is settled through the same exactly-once path as a notify
//! (`repo::apply_payment`); one WeChat closed is closed here; one past its expiry is closed at WeChat, then here.
//! Several instances may run it at once: every step is idempotent and conditional, so they only repeat questions.

use super::repo::{self, Applied};
use crate::db::{self, Db};
use std::sync::Arc;
use std::time::Duration;
use wechat_pay::TradeState;

/// Orders looked at per round.
const BATCH: i64 = 50;

/// The reconciler, as a background job: a round every `every_secs`.
pub async fn job(pool: Db, pay: super::Payers, clock: Arc<dyn wechat_core::Clock>, after_secs: u32, every_secs: u32) {
    let mut tick = tokio::time::interval(Duration::from_secs(u64::from(every_secs)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = round(&pool, &pay, clock.as_ref(), after_secs).await {
            tracing::warn!(error = %e, "pay reconciler: round failed");
        }
    }
}

/// One round; returns how many orders it settled or closed.
pub async fn round(
    pool: &Db,
    payers: &super::Payers,
    clock: &dyn wechat_core::Clock,
    after_secs: u32,
) -> Result<usize, db::DbError> {
    let now = clock.now_ms();
    let before = now - i64::from(after_secs) * 1000;
    let orders = db::blocking(pool, move |conn| repo::unsettled(conn, before, BATCH)).await?;
    let mut changed = 0;
    for order in orders {
        let Some(pay) = payers.for_appid(order.appid.as_deref()) else {
            tracing::warn!(out_trade_no = %order.out_trade_no, "pay reconciler: no client for the order's appid");
            continue;
        };
        let status = match pay.query(&order.out_trade_no).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(out_trade_no = %order.out_trade_no, error = %e, "pay reconciler: orderquery failed");
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
