//! Ending a campaign early, keeping faith with its buyers: what the end would touch (a dry run), and the end itself
//! in one transaction — issuing and buying stop, sold unused coupons are kept (usable until the campaign's own
//! date) or refunded (each refund recorded `requested` and sent by the refund worker, so none is lost to a crash
//! and none is sent twice), unsold ones are voided when refunding, and open orders are closed at WeChat as soon as
//! WeChat allows (5 minutes after they were placed). An order paid anyway after the end is refunded by
//! [`super::repo::apply_payment`].

use super::repo::{self, OrderStatus, RefundRefused};
use crate::db::schema::{audit_log, campaigns, coupon_purchases, coupons, pay_order_checks, pay_orders, pay_refunds};
use crate::db::{DbConnection, DbError};
use crate::features::merchants::repo::CampaignRow;
use diesel::prelude::*;
use serde::Serialize;

/// The reason a refund of an ended campaign carries (WeChat shows it to the buyer; at most 80 bytes).
pub const ENDED_REFUND_REASON: &str = "活动已提前结束 campaign ended early";

/// What to do with sold, unused coupons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SoldChoice {
    /// They stay usable until the campaign's own end date.
    Keep,
    /// Each is refunded (and so voided); unsold unused coupons are voided too.
    Refund,
}

impl SoldChoice {
    /// Parses `keep` or `refund`.
    pub fn parse(s: &str) -> Option<SoldChoice> {
        match s {
            "keep" => Some(SoldChoice::Keep),
            "refund" => Some(SoldChoice::Refund),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            SoldChoice::Keep => "keep",
            SoldChoice::Refund => "refund",
        }
    }
}

/// What ending a campaign touches: the answer of a dry run, and of the end itself.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct EndPlan {
    /// Bought, paid, not redeemed nor voided.
    pub sold_unused: i64,
    /// What refunding them gives back, fen (what is paid and not yet refunded).
    pub sold_amount_fen: i64,
    /// Issued without a purchase (given away), unused.
    pub unsold_unused: i64,
    /// Orders placed and not paid yet: closed at WeChat by the end.
    pub open_orders: i64,
    /// Refunds the end recorded (0 in a dry run, or when keeping).
    pub refunds_requested: i64,
}

/// Who ends it (kept in the audit row).
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    /// `admin`, `console` or `cli`.
    pub channel: &'a str,
    /// The person, for console actions.
    pub user_id: Option<i64>,
}

/// The paid orders of a campaign whose coupon is unused: (out_trade_no, what is left to refund).
fn sold_unused(conn: &mut DbConnection, campaign_id: i64) -> Result<Vec<(String, i64)>, DbError> {
    let orders: Vec<(String, i64)> = coupon_purchases::table
        .inner_join(pay_orders::table.on(pay_orders::out_trade_no.eq(coupon_purchases::out_trade_no)))
        .inner_join(coupons::table.on(coupons::code.nullable().eq(coupon_purchases::coupon_code)))
        .filter(coupon_purchases::campaign_id.eq(campaign_id))
        .filter(pay_orders::status.eq(OrderStatus::Paid.as_str()))
        .filter(coupons::status.eq("issued"))
        .select((pay_orders::out_trade_no, pay_orders::total_fee))
        .order(pay_orders::id)
        .load(conn)?;
    let mut out = Vec::with_capacity(orders.len());
    for (no, total) in orders {
        let taken: Vec<i64> = pay_refunds::table
            .filter(pay_refunds::out_trade_no.eq(&no))
            .filter(pay_refunds::status.eq_any(["requested", "succeeded"]))
            .select(pay_refunds::refund_fee)
            .load(conn)?;
        let left = total - taken.iter().sum::<i64>();
        if left > 0 {
            out.push((no, left));
        }
    }
    Ok(out)
}

fn open_orders(conn: &mut DbConnection, campaign_id: i64) -> Result<Vec<(i64, i64)>, DbError> {
    Ok(coupon_purchases::table
        .inner_join(pay_orders::table.on(pay_orders::out_trade_no.eq(coupon_purchases::out_trade_no)))
        .filter(coupon_purchases::campaign_id.eq(campaign_id))
        .filter(pay_orders::status.eq(OrderStatus::Created.as_str()))
        .select((pay_orders::id, pay_orders::created_at))
        .load(conn)?)
}

/// Unused coupons of the campaign that nobody bought.
fn unsold_unused(conn: &mut DbConnection, campaign_id: i64) -> Result<i64, DbError> {
    let bought = coupon_purchases::table
        .filter(coupon_purchases::campaign_id.eq(campaign_id))
        .filter(coupon_purchases::coupon_code.is_not_null())
        .select(coupon_purchases::coupon_code.assume_not_null());
    Ok(coupons::table
        .filter(coupons::campaign_id.eq(campaign_id))
        .filter(coupons::status.eq("issued"))
        .filter(coupons::code.ne_all(bought))
        .count()
        .get_result(conn)?)
}

/// What ending the campaign now would touch; `None` when there is no such campaign.
pub fn plan(conn: &mut DbConnection, campaign_id: i64) -> Result<Option<(CampaignRow, EndPlan)>, DbError> {
    let Some(campaign) = crate::features::merchants::repo::campaign(conn, campaign_id)? else {
        return Ok(None);
    };
    let sold = sold_unused(conn, campaign_id)?;
    let plan = EndPlan {
        sold_unused: i64::try_from(sold.len()).unwrap_or(i64::MAX),
        sold_amount_fen: sold.iter().map(|(_, f)| f).sum(),
        unsold_unused: unsold_unused(conn, campaign_id)?,
        open_orders: i64::try_from(open_orders(conn, campaign_id)?.len()).unwrap_or(i64::MAX),
        refunds_requested: 0,
    };
    Ok(Some((campaign, plan)))
}

/// How an end went.
#[derive(Debug)]
pub enum Ended {
    /// Ended now: the campaign afterwards, what the end touched.
    Now(CampaignRow, EndPlan),
    /// It had ended before: nothing changed.
    Already(CampaignRow),
    /// No such campaign.
    NotFound,
}

/// Ends the campaign at `now` with `choice` for sold coupons, in one transaction (see the module). Refund rows are
/// recorded with `updated_at = 0`, the mark of refunds not yet sent: [`send_new_refunds`] (right after, and the
/// reconciler's next round in any case) sends them.
pub fn end(
    conn: &mut DbConnection,
    campaign_id: i64,
    choice: SoldChoice,
    reason: Option<&str>,
    actor: Actor<'_>,
    now: i64,
) -> Result<Ended, DbError> {
    crate::db::write_transaction(conn, |conn| end_once(conn, campaign_id, choice, reason, actor, now))
}

fn end_once(
    conn: &mut DbConnection,
    campaign_id: i64,
    choice: SoldChoice,
    reason: Option<&str>,
    actor: Actor<'_>,
    now: i64,
) -> Result<Ended, DbError> {
    conn.transaction(|conn| {
        let moved = diesel::update(campaigns::table.filter(campaigns::id.eq(campaign_id).and(campaigns::ended_at.is_null())))
            .set((
                campaigns::ended_at.eq(now),
                campaigns::end_sold.eq(choice.as_str()),
                campaigns::end_reason.eq(reason),
            ))
            .execute(conn)?;
        let Some((campaign, mut plan)) = plan(conn, campaign_id)? else {
            return Ok(Ended::NotFound);
        };
        if moved == 0 {
            return Ok(Ended::Already(campaign));
        }
        if choice == SoldChoice::Refund {
            for (i, (no, left)) in sold_unused(conn, campaign_id)?.into_iter().enumerate() {
                // One number per order and end: a retried end cannot record a second refund.
                let rno = format!("E{no}");
                match repo::request_refund(conn, &no, &rno, left, Some(ENDED_REFUND_REASON), false, now) {
                    Ok(_) => plan.refunds_requested += 1,
                    // Redeemed or refunded meanwhile: nothing to give back for this one.
                    Err(RefundRefused::Redeemed(_) | RefundRefused::TooMuch(..) | RefundRefused::NotPaid(_)) => {
                        tracing::info!(order = i, "ending: an order changed meanwhile; not refunded");
                    }
                    Err(RefundRefused::NotFound) => {}
                    Err(RefundRefused::Db(e)) => return Err(e),
                }
                diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(&rno)))
                    .set(pay_refunds::updated_at.eq(0i64))
                    .execute(conn)?;
            }
            let bought = coupon_purchases::table
                .filter(coupon_purchases::campaign_id.eq(campaign_id))
                .filter(coupon_purchases::coupon_code.is_not_null())
                .select(coupon_purchases::coupon_code.assume_not_null());
            diesel::update(
                coupons::table
                    .filter(coupons::campaign_id.eq(campaign_id))
                    .filter(coupons::status.eq("issued"))
                    .filter(coupons::code.ne_all(bought)),
            )
            .set((coupons::status.eq("void"), coupons::version.eq(coupons::version + 1)))
            .execute(conn)?;
        }
        // Voided coupons in WeChat card bags (商家券) are deactivated there.
        crate::features::coupons::busifavor::queue_deactivate_voided(conn, campaign_id, "campaign ended", now)?;
        // Open orders: nobody may pay them now; the reconciler closes each at WeChat once WeChat allows it.
        for (order_id, created_at) in open_orders(conn, campaign_id)? {
            diesel::update(pay_orders::table.find(order_id))
                .set(pay_orders::expires_at.eq(now / 1000))
                .execute(conn)?;
            diesel::update(pay_order_checks::table.find(order_id))
                .set(pay_order_checks::next_check_at.eq((created_at + 300_000).max(now)))
                .execute(conn)?;
        }
        let detail = format!(
            "campaign {campaign_id}: sold {}: {} sold unused (¥{:.2}), {} refunds, {} unsold unused{}, {} open orders closing{}",
            choice.as_str(),
            plan.sold_unused,
            plan.sold_amount_fen as f64 / 100.0,
            plan.refunds_requested,
            plan.unsold_unused,
            if choice == SoldChoice::Refund { " voided" } else { " kept" },
            plan.open_orders,
            reason.map(|r| format!(": {r}")).unwrap_or_default(),
        );
        diesel::insert_into(audit_log::table)
            .values((
                audit_log::action.eq("end_campaign"),
                audit_log::outcome.eq("ended"),
                audit_log::channel.eq(Some(actor.channel)),
                audit_log::detail.eq(Some(detail)),
                audit_log::actor_user_id.eq(actor.user_id),
                audit_log::merchant_id.eq(Some(campaign.merchant_id)),
                audit_log::created_at.eq(now),
            ))
            .execute(conn)?;
        Ok(Ended::Now(campaign, plan))
    })
}

/// Sends the refunds recorded but never sent (`updated_at = 0`: an end's, or an order paid after its campaign
/// ended), in batches until none is left. Each is asked about first and sent with its own number, so a refund
/// WeChat already has is never sent twice. Returns how many were looked at.
pub async fn send_new_refunds(
    pool: &crate::db::Db,
    payers: &super::Payers,
    clock: &dyn wechat_core::Clock,
    public_base_url: &str,
) -> Result<usize, DbError> {
    let mut seen = 0;
    loop {
        let now = clock.now_ms();
        let batch = crate::db::blocking(pool, move |conn| repo::pending_refunds(conn, 1, now, 50)).await?;
        if batch.is_empty() {
            return Ok(seen);
        }
        seen += batch.len();
        for r in &batch {
            if let Err(e) =
                super::service::settle_pending_refund(payers, pool, r, public_base_url, clock.now_ms()).await
            {
                // Left `requested`: the reconciler asks again.
                tracing::warn!(out_refund_no = %r.out_refund_no, error = %e, "refund not sent yet; the reconciler retries it");
            }
        }
    }
}

/// Sends new refunds in the background (the reconciler sends whatever this does not).
pub fn kick(
    pool: crate::db::Db,
    payers: Option<super::Payers>,
    clock: std::sync::Arc<dyn wechat_core::Clock>,
    public_base_url: String,
) {
    let Some(payers) = payers else {
        return;
    };
    tokio::spawn(async move {
        if let Err(e) = send_new_refunds(&pool, &payers, clock.as_ref(), &public_base_url).await {
            tracing::warn!(error = %e, "could not send new refunds now; the reconciler sends them");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_the_reason_fits_wechat() {
        assert_eq!(SoldChoice::parse("keep"), Some(SoldChoice::Keep));
        assert_eq!(SoldChoice::parse("refund"), Some(SoldChoice::Refund));
        assert_eq!(SoldChoice::parse("REFUND"), None);
        assert!(ENDED_REFUND_REASON.len() <= 80);
    }
}
