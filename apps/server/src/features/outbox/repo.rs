//! The outbox: work owed to WeChat after a local commit, written in the same transaction as its cause, claimed
//! under a lease (so that several instances never deliver one item at the same time) and delivered by
//! [`super::worker`].

use crate::db::schema::outbox;
use crate::db::{DbConnection, DbError};
use diesel::prelude::*;

crate::text_enum! {
    /// An outbox item's status (`outbox.status`).
    ItemStatus {
        /// Owed to WeChat: delivered by the worker when due.
        Pending => "pending",
        /// WeChat confirmed it (or answered that it was already done).
        Done => "done",
        /// A final refusal, or attempts used up: an operator must look.
        Failed => "failed",
    }
}
use serde::Serialize;

/// Consume a card code on WeChat after our coupon was redeemed.
pub const KIND_CARD_CONSUME: &str = "card_consume";
/// A "核销成功" message to the customer whose coupon was redeemed.
pub const KIND_REDEEMED_MESSAGE: &str = "redeemed_message";
/// Upload a mini-program payment's shipping information (小程序发货信息管理): WeChat holds its funds until then.
pub const KIND_UPLOAD_SHIPPING: &str = "upload_shipping";
/// Redeem (核销) a 商家券 coupon at WeChat Pay after our coupon was redeemed.
pub const KIND_BUSIFAVOR_USE: &str = "busifavor_use";
/// Deactivate (使券失效) a 商家券 coupon at WeChat Pay after our coupon was voided.
pub const KIND_BUSIFAVOR_DEACTIVATE: &str = "busifavor_deactivate";
/// Raise a 商家券 stock's budget at WeChat Pay after its campaign's quantity grew.
pub const KIND_BUSIFAVOR_BUDGET: &str = "busifavor_budget";

/// The payload of a `busifavor_budget` item.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct BusifavorBudget {
    /// The stock.
    pub stock_id: String,
    /// The campaign's new quantity: WeChat's budget is raised to it (never lowered: we cap issuing ourselves).
    pub target: u64,
    /// One per campaign and quantity: a retry is the same request.
    pub request_no: String,
}

/// Queues the budget raise of a campaign's stock, inside the edit's transaction (once per campaign and quantity).
pub fn enqueue_busifavor_budget(
    conn: &mut DbConnection,
    campaign_id: i64,
    item: &BusifavorBudget,
    now: i64,
) -> Result<(), DbError> {
    let key = format!("{KIND_BUSIFAVOR_BUDGET}:c{campaign_id}:{}", item.target);
    enqueue_keyed(conn, KIND_BUSIFAVOR_BUDGET, &key, None, item, now)
}

/// The payload of a `busifavor_use` item.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct BusifavorUse {
    /// The stock.
    pub stock_id: String,
    /// Our coupon code, which is the WeChat code (MERCHANT_API).
    pub coupon_code: String,
    /// The holder the coupon was sent to.
    pub openid: String,
    /// The redemption's id: a retry is the same request.
    pub use_request_no: String,
}

/// The payload of a `busifavor_deactivate` item.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct BusifavorDeactivate {
    /// The stock.
    pub stock_id: String,
    /// Our coupon code.
    pub coupon_code: String,
    /// One per coupon (`V` + its id): a retry is the same request.
    pub request_no: String,
    /// Why, for the merchant's records at WeChat.
    pub reason: String,
}

/// Queues the 商家券 use of a redeemed coupon, inside the redemption's transaction (once per coupon).
pub fn enqueue_busifavor_use(
    conn: &mut DbConnection,
    coupon_id: i64,
    item: &BusifavorUse,
    now: i64,
) -> Result<(), DbError> {
    enqueue(conn, KIND_BUSIFAVOR_USE, coupon_id, item, now)
}

/// Queues the 商家券 deactivation of a voided coupon, inside the void's transaction (once per coupon).
pub fn enqueue_busifavor_deactivate(
    conn: &mut DbConnection,
    coupon_id: i64,
    item: &BusifavorDeactivate,
    now: i64,
) -> Result<(), DbError> {
    enqueue(conn, KIND_BUSIFAVOR_DEACTIVATE, coupon_id, item, now)
}

/// An outbox row.
#[derive(Clone, Debug, Queryable, Serialize)]
pub struct OutboxRow {
    /// Id.
    pub id: i64,
    /// What to do (`card_consume`).
    pub kind: String,
    /// One item per cause.
    pub dedupe_key: String,
    /// The coupon it concerns, if any.
    pub coupon_id: Option<i64>,
    /// JSON, per kind.
    pub payload: String,
    /// `pending`, `done` or `failed`.
    #[diesel(deserialize_as = String)]
    pub status: ItemStatus,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// Not before, ms.
    pub next_attempt_at: i64,
    /// The instance delivering it now.
    #[serde(skip)]
    pub lease_owner: Option<String>,
    /// Lease end, ms.
    #[serde(skip)]
    pub lease_until: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Created, ms.
    pub created_at: i64,
    /// Last change, ms.
    pub updated_at: i64,
}

/// The payload of a `card_consume` item.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CardConsume {
    /// The WeChat card.
    pub card_id: String,
    /// The user's card code.
    pub code: String,
}

/// The payload of a `redeemed_message` item: the coupon; the message is rendered from it when delivered.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RedeemedMessage {
    /// The redeemed coupon.
    pub coupon_id: i64,
}

/// Queues a card consume for a redeemed coupon. Call it inside the redemption's transaction. A second call for the
/// same coupon changes nothing.
pub fn enqueue_card_consume(
    conn: &mut DbConnection,
    coupon_id: i64,
    item: &CardConsume,
    now: i64,
) -> Result<(), DbError> {
    enqueue(conn, KIND_CARD_CONSUME, coupon_id, item, now)
}

/// The payload of an `upload_shipping` item: the payment and what was delivered.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct UploadShipping {
    /// WeChat's transaction id.
    pub transaction_id: String,
    /// The payer (the mini program's openid).
    pub openid: String,
    /// What was bought.
    pub item_desc: String,
}

/// Queues the shipping upload of a coupon bought in the mini program, inside the payment's transaction (once per
/// coupon).
pub fn enqueue_upload_shipping(
    conn: &mut DbConnection,
    coupon_id: i64,
    item: &UploadShipping,
    now: i64,
) -> Result<(), DbError> {
    enqueue(conn, KIND_UPLOAD_SHIPPING, coupon_id, item, now)
}

/// Asks for a coupon's shipping upload again (WeChat's `trade_manage_remind_shipping`): its item is due now, whatever
/// it was. True when there was one.
pub fn requeue_upload_shipping(conn: &mut DbConnection, coupon_id: i64, now: i64) -> Result<bool, DbError> {
    Ok(
        diesel::update(outbox::table.filter(outbox::dedupe_key.eq(format!("{KIND_UPLOAD_SHIPPING}:{coupon_id}"))))
            .set((
                outbox::status.eq(ItemStatus::Pending.as_str()),
                outbox::attempts.eq(0),
                outbox::next_attempt_at.eq(now),
                outbox::updated_at.eq(now),
            ))
            .execute(conn)?
            == 1,
    )
}

/// Queues the "核销成功" message of a redeemed coupon, inside the redemption's transaction (once per coupon).
pub fn enqueue_redeemed_message(
    conn: &mut DbConnection,
    coupon_id: i64,
    item: &RedeemedMessage,
    now: i64,
) -> Result<(), DbError> {
    enqueue(conn, KIND_REDEEMED_MESSAGE, coupon_id, item, now)
}

fn enqueue(
    conn: &mut DbConnection,
    kind: &'static str,
    coupon_id: i64,
    item: &impl Serialize,
    now: i64,
) -> Result<(), DbError> {
    enqueue_keyed(conn, kind, &format!("{kind}:{coupon_id}"), Some(coupon_id), item, now)
}

/// Queues an item once per `key` (a second call with the same key changes nothing).
fn enqueue_keyed(
    conn: &mut DbConnection,
    kind: &'static str,
    key: &str,
    coupon_id: Option<i64>,
    item: &impl Serialize,
    now: i64,
) -> Result<(), DbError> {
    let payload = serde_json::to_string(item).map_err(|e| DbError::Task(e.to_string()))?;
    let row = (
        outbox::kind.eq(kind),
        outbox::dedupe_key.eq(key),
        outbox::coupon_id.eq(coupon_id),
        outbox::payload.eq(payload),
        outbox::status.eq(ItemStatus::Pending.as_str()),
        outbox::attempts.eq(0),
        outbox::next_attempt_at.eq(now),
        outbox::lease_until.eq(0i64),
        outbox::created_at.eq(now),
        outbox::updated_at.eq(now),
    );
    crate::insert_or_ignore!(conn, outbox::table, row)?;
    Ok(())
}

/// Claims up to `limit` due items for `owner` until `now + lease_ms`. An item is claimed by one instance at a
/// time: the claim is a conditional update on the lease.
pub fn claim_due(
    conn: &mut DbConnection,
    owner: &str,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, DbError> {
    let due: Vec<i64> = outbox::table
        .filter(
            outbox::status
                .eq(ItemStatus::Pending.as_str())
                .and(outbox::next_attempt_at.le(now))
                .and(outbox::lease_until.le(now)),
        )
        .order(outbox::next_attempt_at)
        .select(outbox::id)
        .limit(limit)
        .load(conn)?;
    let mut claimed = Vec::with_capacity(due.len());
    for id in due {
        let n = diesel::update(
            outbox::table.filter(
                outbox::id
                    .eq(id)
                    .and(outbox::status.eq(ItemStatus::Pending.as_str()))
                    .and(outbox::lease_until.le(now)),
            ),
        )
        .set((
            outbox::lease_owner.eq(owner),
            outbox::lease_until.eq(now + lease_ms),
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::updated_at.eq(now),
        ))
        .execute(conn)?;
        if n == 1 {
            claimed.push(outbox::table.find(id).first(conn)?);
        }
    }
    Ok(claimed)
}

/// What became of a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    /// WeChat confirmed.
    Done,
    /// Try again at the given time.
    Retry {
        /// Not before, ms.
        at: i64,
        /// Why it failed.
        error: String,
    },
    /// A final error: an operator must look at it.
    Failed {
        /// Why.
        error: String,
    },
}

/// Records the result of a delivery made under `owner`'s lease. Returns false when the lease was lost (another
/// instance took the item over after the lease ran out).
pub fn settle(conn: &mut DbConnection, id: i64, owner: &str, result: &Settle, now: i64) -> Result<bool, DbError> {
    let target = outbox::table.filter(outbox::id.eq(id).and(outbox::lease_owner.eq(owner)));
    let n = match result {
        Settle::Done => diesel::update(target)
            .set((
                outbox::status.eq(ItemStatus::Done.as_str()),
                outbox::lease_until.eq(0i64),
                outbox::last_error.eq(None::<String>),
                outbox::updated_at.eq(now),
            ))
            .execute(conn)?,
        Settle::Retry { at, error } => diesel::update(target)
            .set((
                outbox::next_attempt_at.eq(*at),
                outbox::lease_until.eq(0i64),
                outbox::last_error.eq(Some(error)),
                outbox::updated_at.eq(now),
            ))
            .execute(conn)?,
        Settle::Failed { error } => diesel::update(target)
            .set((
                outbox::status.eq(ItemStatus::Failed.as_str()),
                outbox::lease_until.eq(0i64),
                outbox::last_error.eq(Some(error)),
                outbox::updated_at.eq(now),
            ))
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// Items, newest first, optionally of one status.
pub fn list(conn: &mut DbConnection, status: Option<&str>, limit: i64) -> Result<Vec<OutboxRow>, DbError> {
    let mut q = outbox::table.order(outbox::id.desc()).limit(limit).into_boxed();
    if let Some(s) = status {
        q = q.filter(outbox::status.eq(s.to_owned()));
    }
    Ok(q.load(conn)?)
}

/// How many items are pending and failed.
pub fn counts(conn: &mut DbConnection) -> Result<(i64, i64), DbError> {
    let pending = outbox::table
        .filter(outbox::status.eq(ItemStatus::Pending.as_str()))
        .count()
        .get_result(conn)?;
    let failed = outbox::table
        .filter(outbox::status.eq(ItemStatus::Failed.as_str()))
        .count()
        .get_result(conn)?;
    Ok((pending, failed))
}

/// Deletes delivered items last updated before `outbox_before` and audit rows created before `audit_before` (Unix
/// ms; `None` keeps them). Pending and failed items are never deleted: they are work owed or work to look at.
pub fn prune(
    conn: &mut DbConnection,
    outbox_before: Option<i64>,
    audit_before: Option<i64>,
) -> Result<(usize, usize), DbError> {
    use crate::db::schema::audit_log;
    let outbox = match outbox_before {
        Some(before) => diesel::delete(
            outbox::table.filter(
                outbox::status
                    .eq(ItemStatus::Done.as_str())
                    .and(outbox::updated_at.lt(before)),
            ),
        )
        .execute(conn)?,
        None => 0,
    };
    let audit = match audit_before {
        Some(before) => diesel::delete(audit_log::table.filter(audit_log::created_at.lt(before))).execute(conn)?,
        None => 0,
    };
    Ok((outbox, audit))
}

/// Ends every lease `owner` holds on items still pending (a stopping instance hands its claimed work back).
pub fn release_leases(conn: &mut DbConnection, owner: &str) -> Result<usize, DbError> {
    Ok(diesel::update(
        outbox::table.filter(
            outbox::lease_owner
                .eq(owner)
                .and(outbox::status.eq(ItemStatus::Pending.as_str()))
                .and(outbox::lease_until.gt(0i64)),
        ),
    )
    .set(outbox::lease_until.eq(0i64))
    .execute(conn)?)
}

/// Puts a failed item back in the queue (after an operator fixed the cause). False when it is not failed.
pub fn retry(conn: &mut DbConnection, id: i64, now: i64) -> Result<bool, DbError> {
    let n = diesel::update(outbox::table.filter(outbox::id.eq(id).and(outbox::status.eq(ItemStatus::Failed.as_str()))))
        .set((
            outbox::status.eq(ItemStatus::Pending.as_str()),
            outbox::next_attempt_at.eq(now),
            outbox::lease_until.eq(0i64),
            outbox::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(n == 1)
}
