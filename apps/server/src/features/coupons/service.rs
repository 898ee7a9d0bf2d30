//! The redemption use cases of the scan page and the POS. The policy they share: our database is the source of truth
//! — the redemption commits first, and a card-backed coupon's WeChat consume is queued in the same transaction
//! (outbox) — then the outbox worker is woken; nobody waits on WeChat. (WeChat's own `user_consume_card` push redeems
//! inside the push's transaction: `features::wechat_push::repo`.)

use super::State;
use super::pos::{PosAttempt, PosReply};
use super::repo::DbRedemptionStore;
use crate::db::{self, DbError};
use redemption_core::{Channel, CouponWithCampaign, Outcome, Staff};

/// A staff member confirms on the scan page.
pub async fn redeem_on_scan_page(
    state: &State,
    code: String,
    staff: Option<Staff>,
) -> Result<(Outcome, Option<CouponWithCampaign>), DbError> {
    let now = state.clock.now_ms();
    let result = db::blocking(&state.db, move |conn| {
        redemption_core::redeem(
            &mut DbRedemptionStore(conn),
            &code,
            staff.as_ref(),
            Channel::ScanPage,
            now,
        )
    })
    .await?;
    after(state, Channel::ScanPage, &result.0, result.1.as_ref());
    Ok(result)
}

/// A POS device redeems (batched with concurrent attempts: one statement, one commit).
pub async fn redeem_at_pos(state: &State, attempt: PosAttempt) -> Result<PosReply, DbError> {
    let reply = state.pos.redeem(attempt).await?;
    if let PosReply::Done(done) = &reply {
        after(state, Channel::Pos, &done.outcome, done.found.as_ref());
    }
    Ok(reply)
}

fn after(state: &State, channel: Channel, outcome: &Outcome, found: Option<&CouponWithCampaign>) {
    if let (Outcome::Redeemed { .. }, Some((_, campaign))) = (outcome, found)
        && campaign.wechat_card_id.is_some()
    {
        state.outbox.wake();
    }
    crate::http::metrics::record_redemption(channel, outcome);
}
