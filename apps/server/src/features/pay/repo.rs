//! `pay_orders`, `pay_notifications` and `pay_refunds`, and the coupons an order buys: reserved against the
//! campaign's limits when the order is placed, issued in the payment's transaction, released when it closes, void
//! when refunded.

pub use crate::db::OrderStatus;
use crate::db::schema::{campaigns, coupon_purchases, coupons, pay_notifications, pay_order_checks, pay_orders};
use crate::db::{DbConnection, DbError};
use diesel::prelude::*;
use redemption_core::{CouponCode, IssueError};

/// An order row.
#[derive(Clone, Debug, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = pay_orders)]
pub struct Order {
    /// Id.
    pub id: i64,
    /// Our order number.
    pub out_trade_no: String,
    /// The buyer.
    pub user_id: Option<i64>,
    /// The payer's openid (JSAPI).
    pub openid: Option<String>,
    /// What is bought.
    pub description: String,
    /// Fen.
    pub total_fee: i64,
    /// JSAPI | NATIVE | H5 (an H5 order keeps its cashier page in `code_url`).
    pub trade_type: String,
    /// created | paid | closed.
    #[diesel(deserialize_as = String)]
    pub status: OrderStatus,
    /// WeChat's prepay id.
    pub prepay_id: Option<String>,
    /// NATIVE: what the QR code carries.
    pub code_url: Option<String>,
    /// WeChat's transaction id, once paid.
    pub transaction_id: Option<String>,
    /// Unix ms.
    pub paid_at: Option<i64>,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix ms.
    pub created_at: i64,
    /// The mini program's appid for orders paid inside it; `None`: the official account's.
    pub appid: Option<String>,
}

/// An order that buys a campaign's coupon.
#[derive(Clone, Debug, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = coupon_purchases)]
pub struct Purchase {
    /// The order.
    pub out_trade_no: String,
    /// The campaign.
    pub campaign_id: i64,
    /// Who gets the coupon.
    pub buyer_openid: String,
    /// The coupon, once paid.
    pub coupon_code: Option<String>,
}

/// The purchase an order makes, if it buys a coupon.
pub fn purchase(conn: &mut DbConnection, out_trade_no: &str) -> Result<Option<Purchase>, DbError> {
    Ok(coupon_purchases::table
        .find(out_trade_no)
        .select(Purchase::as_select())
        .first(conn)
        .optional()?)
}

/// A new order (status `created`).
#[derive(Debug)]
pub struct NewOrder<'a> {
    /// Our order number.
    pub out_trade_no: &'a str,
    /// The buyer.
    pub user_id: Option<i64>,
    /// The payer (JSAPI).
    pub openid: Option<&'a str>,
    /// What is bought.
    pub description: &'a str,
    /// Fen.
    pub total_fee: i64,
    /// JSAPI | NATIVE | H5 (an H5 order keeps its cashier page in `code_url`).
    pub trade_type: &'a str,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix ms.
    pub now: i64,
    /// The campaign whose coupon it buys (reserved by [`place`]).
    pub campaign_id: Option<i64>,
    /// Who gets the bought coupon.
    pub buyer_openid: Option<&'a str>,
    /// The mini program's appid when it pays; `None`: the official account's.
    pub appid: Option<&'a str>,
    /// The most unpaid, unexpired orders a buyer may have open at once (`pay.max_open_orders`).
    pub max_open: i64,
}

/// Why an order for a coupon was not placed.
#[derive(Debug)]
pub enum PlaceRefused {
    /// No such campaign.
    NotFound,
    /// The campaign has no price.
    NotForSale,
    /// The price is not the order's amount (the campaign's price, in fen).
    PriceChanged(i64),
    /// A campaign rule refused it (sold out, the buyer's limit, ended).
    Rule(IssueError),
    /// The buyer already has an unpaid order for this campaign with time left: that one is to be paid (one open
    /// order per buyer and campaign; the purchase page reuses it).
    Open(Box<Order>),
    /// The buyer has this many unpaid orders open already (`pay.max_open_orders`).
    TooManyOpen(i64),
    /// The database failed.
    Db(DbError),
}

impl From<DbError> for PlaceRefused {
    fn from(e: DbError) -> Self {
        PlaceRefused::Db(e)
    }
}

impl From<diesel::result::Error> for PlaceRefused {
    fn from(e: diesel::result::Error) -> Self {
        PlaceRefused::Db(e.into())
    }
}

/// Stores a new order; one that buys a campaign's coupon first reserves it, in the same transaction, against the
/// campaign's quantity (its `issued` counter, bumped conditionally — which also locks the campaign row, so
/// concurrent purchases queue) and the buyer's limit (coupons held plus open orders). An order that could not be
/// fulfilled is refused here, before any payment; a placed one is issued when paid, whatever happens meanwhile.
pub fn place(conn: &mut DbConnection, o: &NewOrder<'_>) -> Result<(), PlaceRefused> {
    let Some(campaign_id) = o.campaign_id else {
        // Reads (the open-orders cap), then writes: on SQLite the write lock is taken first, or a concurrent commit
        // between the two would fail the order at once with "database is locked" (seen under a loaded CI run).
        return crate::db::immediate_transaction::<_, PlaceRefused>(conn, |conn| {
            check_open_cap(conn, o, &[])?;
            Ok(create(conn, o)?)
        });
    };
    let Some(buyer) = o.buyer_openid else {
        return Err(PlaceRefused::Db(DbError::Task("a purchase needs its buyer".into())));
    };
    conn.transaction::<_, PlaceRefused, _>(|conn| {
        // The conditional bump comes first: it locks the campaign row, so the checks below see every concurrent
        // purchase of this campaign (on SQLite the write lock does the same).
        let bumped = diesel::update(
            campaigns::table.filter(
                campaigns::id
                    .eq(campaign_id)
                    .and(campaigns::price_fen.is_not_null())
                    .and(
                        campaigns::quantity
                            .is_null()
                            .or(campaigns::issued.lt(campaigns::quantity.assume_not_null())),
                    ),
            ),
        )
        .set(campaigns::issued.eq(campaigns::issued + 1))
        .execute(conn)?;
        let Some(row) = crate::features::merchants::repo::campaign(conn, campaign_id)? else {
            return Err(PlaceRefused::NotFound);
        };
        let Some(price) = row.price_fen else {
            return Err(PlaceRefused::NotForSale);
        };
        // One person, every channel: the official account's and the mini program's openids count together.
        let person = crate::features::auth::repo::person_openids(conn, buyer)?;
        if let Some(open) = open_order_for(conn, campaign_id, &person, o.now / 1000 + REUSE_MIN_LEFT_SECS)? {
            return Err(PlaceRefused::Open(Box::new(open)));
        }
        if bumped == 0 {
            return Err(PlaceRefused::Rule(IssueError::SoldOut));
        }
        if price != o.total_fee {
            return Err(PlaceRefused::PriceChanged(price));
        }
        check_open_cap(conn, o, &person)?;
        let coupons_held: i64 = coupons::table
            .filter(
                coupons::campaign_id
                    .eq(campaign_id)
                    .and(coupons::owner_openid.eq_any(&person)),
            )
            .count()
            .get_result(conn)?;
        let open_orders: i64 = pay_orders::table
            .filter(pay_orders::status.eq(OrderStatus::Created.as_str()))
            .filter(
                pay_orders::out_trade_no.eq_any(
                    coupon_purchases::table
                        .filter(coupon_purchases::campaign_id.eq(campaign_id))
                        .filter(coupon_purchases::buyer_openid.eq_any(&person))
                        .select(coupon_purchases::out_trade_no),
                ),
            )
            .count()
            .get_result(conn)?;
        let held = Some(u64::try_from(coupons_held + open_orders).unwrap_or(0));
        // `issued` already counts this reservation: check against the count before it.
        redemption_core::check_issuable(
            &row.to_domain_for_issuing(),
            u64::try_from(row.issued - 1).unwrap_or(0),
            held,
            o.now,
        )
        .map_err(PlaceRefused::Rule)?;
        create(conn, o)?;
        diesel::insert_into(coupon_purchases::table)
            .values((
                coupon_purchases::out_trade_no.eq(o.out_trade_no),
                coupon_purchases::campaign_id.eq(campaign_id),
                coupon_purchases::buyer_openid.eq(buyer),
                coupon_purchases::created_at.eq(o.now),
            ))
            .execute(conn)?;
        Ok(())
    })
}

/// An open order is offered again only while this much of its time is left (the buyer still has to pay it).
const REUSE_MIN_LEFT_SECS: i64 = 60;

/// The person's unpaid order for `campaign_id` that is still payable at `payable_at` (Unix seconds), if any.
fn open_order_for(
    conn: &mut DbConnection,
    campaign_id: i64,
    person: &[String],
    payable_at: i64,
) -> Result<Option<Order>, DbError> {
    Ok(pay_orders::table
        .filter(pay_orders::status.eq(OrderStatus::Created.as_str()))
        .filter(pay_orders::expires_at.gt(payable_at))
        .filter(
            pay_orders::out_trade_no.eq_any(
                coupon_purchases::table
                    .filter(coupon_purchases::campaign_id.eq(campaign_id))
                    .filter(coupon_purchases::buyer_openid.eq_any(person))
                    .select(coupon_purchases::out_trade_no),
            ),
        )
        .order(pay_orders::created_at.desc())
        .select(Order::as_select())
        .first(conn)
        .optional()?)
}

/// Refuses a new order when the buyer (by user, or any of the person's openids) already has `max_open` unpaid
/// orders: each reserves stock until it is paid or closed, so one account must not hoard a campaign.
fn check_open_cap(conn: &mut DbConnection, o: &NewOrder<'_>, person: &[String]) -> Result<(), PlaceRefused> {
    if o.max_open <= 0 {
        return Ok(());
    }
    let mut q = pay_orders::table
        .filter(pay_orders::status.eq(OrderStatus::Created.as_str()))
        .into_boxed();
    q = match o.user_id {
        Some(user_id) => q.filter(pay_orders::user_id.eq(user_id).or(pay_orders::openid.eq_any(person))),
        None => q.filter(pay_orders::openid.eq_any(person)),
    };
    let open: i64 = q.count().get_result(conn)?;
    if open >= o.max_open {
        return Err(PlaceRefused::TooManyOpen(open));
    }
    Ok(())
}

/// Stores a new order, and its place in the reconciler's schedule (first in line).
fn create(conn: &mut DbConnection, o: &NewOrder<'_>) -> Result<(), DbError> {
    let id: i64 = crate::insert_returning!(
        conn,
        diesel::insert_into(pay_orders::table).values((
            pay_orders::out_trade_no.eq(o.out_trade_no),
            pay_orders::user_id.eq(o.user_id),
            pay_orders::openid.eq(o.openid),
            pay_orders::description.eq(o.description),
            pay_orders::total_fee.eq(o.total_fee),
            pay_orders::trade_type.eq(o.trade_type),
            pay_orders::status.eq(OrderStatus::Created.as_str()),
            pay_orders::expires_at.eq(o.expires_at),
            pay_orders::created_at.eq(o.now),
            pay_orders::updated_at.eq(o.now),
            pay_orders::appid.eq(o.appid),
        )),
        pay_orders::table,
        pay_orders::id
    )?;
    diesel::insert_into(pay_order_checks::table)
        .values(pay_order_checks::order_id.eq(id))
        .execute(conn)?;
    Ok(())
}

/// Records what WeChat answered to the unified order.
pub fn set_prepay(
    conn: &mut DbConnection,
    out_trade_no: &str,
    prepay_id: Option<&str>,
    code_url: Option<&str>,
    now: i64,
) -> Result<(), DbError> {
    diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(out_trade_no)))
        .set((
            pay_orders::prepay_id.eq(prepay_id),
            pay_orders::code_url.eq(code_url),
            pay_orders::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// An order by number.
pub fn get(conn: &mut DbConnection, out_trade_no: &str) -> Result<Option<Order>, DbError> {
    Ok(pay_orders::table
        .filter(pay_orders::out_trade_no.eq(out_trade_no))
        .select(Order::as_select())
        .first(conn)
        .optional()?)
}

/// created → closed, releasing a reserved coupon in the same transaction. True if it moved.
pub fn close(conn: &mut DbConnection, out_trade_no: &str, now: i64) -> Result<bool, DbError> {
    conn.transaction::<_, DbError, _>(|conn| {
        let moved = diesel::update(
            pay_orders::table
                .filter(pay_orders::out_trade_no.eq(out_trade_no))
                .filter(pay_orders::status.eq(OrderStatus::Created.as_str())),
        )
        .set((
            pay_orders::status.eq(OrderStatus::Closed.as_str()),
            pay_orders::updated_at.eq(now),
        ))
        .execute(conn)?
            == 1;
        if moved && let Some(campaign_id) = purchase(conn, out_trade_no)?.map(|p| p.campaign_id) {
            diesel::update(campaigns::table.filter(campaigns::id.eq(campaign_id).and(campaigns::issued.gt(0))))
                .set(campaigns::issued.eq(campaigns::issued - 1))
                .execute(conn)?;
        }
        Ok(moved)
    })
}

/// What a verified payment notify did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The order is now paid (this delivery did it).
    Applied,
    /// Already paid by this transaction: nothing changed.
    Duplicate,
    /// The amount is not the order's: not paid, recorded for an operator.
    AmountMismatch,
    /// No such order of ours.
    UnknownOrder,
    /// The order is closed, or paid by another transaction: not applied, recorded for an operator.
    NotPayable,
    /// Paid after its campaign ended: paid, no coupon, its refund recorded (sent by the refund worker).
    RefundedAfterEnd,
}

impl Applied {
    /// The recorded outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Applied => "applied",
            Applied::Duplicate => "duplicate",
            Applied::AmountMismatch => "amount_mismatch",
            Applied::UnknownOrder => "unknown_order",
            Applied::NotPayable => "not_payable",
            Applied::RefundedAfterEnd => "refunded_after_end",
        }
    }
}

/// Applies a verified, successful payment notify in one transaction: the conditional `created → paid` update
/// (keyed by the order and its transaction id, unique) and the notification record commit together, so concurrent,
/// repeated or reordered deliveries change the order once.
pub fn apply_payment(
    conn: &mut DbConnection,
    out_trade_no: &str,
    transaction_id: &str,
    total_fee: i64,
    now: i64,
) -> Result<Applied, DbError> {
    conn.transaction::<_, DbError, _>(|conn| {
        // The write comes first: on SQLite it takes the write lock at once (waiting its turn under busy_timeout)
        // instead of upgrading a read snapshot that a concurrent delivery may have made stale.
        let moved = diesel::update(
            pay_orders::table
                .filter(pay_orders::out_trade_no.eq(out_trade_no))
                .filter(pay_orders::status.eq(OrderStatus::Created.as_str()))
                .filter(pay_orders::total_fee.eq(total_fee)),
        )
        .set((
            pay_orders::status.eq(OrderStatus::Paid.as_str()),
            pay_orders::transaction_id.eq(transaction_id),
            pay_orders::paid_at.eq(now),
            pay_orders::updated_at.eq(now),
        ))
        .execute(conn)?;
        let outcome = if moved == 1 {
            // A bought coupon is issued with the payment, or not at all (its unit was reserved when the order was
            // placed, so no limit can refuse it now) — unless the shop ended the campaign before the payment: then
            // the money goes back (a refund recorded here, sent by the refund worker) and no coupon is issued.
            let purchased = purchase(conn, out_trade_no)?;
            let ended = match &purchased {
                Some(p) => campaigns::table
                    .find(p.campaign_id)
                    .select(campaigns::ended_at)
                    .first::<Option<i64>>(conn)
                    .optional()?
                    .flatten()
                    .is_some_and(|e| e <= now),
                None => false,
            };
            if let (true, Some(p)) = (ended, &purchased) {
                refund_after_end(conn, out_trade_no, p.campaign_id, total_fee, now)?;
                Applied::RefundedAfterEnd
            } else {
                issue_bought(conn, out_trade_no, transaction_id, now)?;
                Applied::Applied
            }
        } else {
            match get(conn, out_trade_no)? {
                None => Applied::UnknownOrder,
                Some(o) if o.total_fee != total_fee => Applied::AmountMismatch,
                Some(o) if o.status == OrderStatus::Paid && o.transaction_id.as_deref() == Some(transaction_id) => {
                    Applied::Duplicate
                }
                Some(_) => Applied::NotPayable,
            }
        };
        diesel::insert_into(pay_notifications::table)
            .values((
                pay_notifications::out_trade_no.eq(out_trade_no),
                pay_notifications::transaction_id.eq(transaction_id),
                pay_notifications::total_fee.eq(total_fee),
                pay_notifications::outcome.eq(outcome.as_str()),
                pay_notifications::created_at.eq(now),
            ))
            .execute(conn)?;
        Ok(outcome)
    })
}

/// Issues the coupon a paid order bought (if it bought one), in the payment's transaction.
fn issue_bought(conn: &mut DbConnection, out_trade_no: &str, transaction_id: &str, now: i64) -> Result<(), DbError> {
    if let Some(p) = purchase(conn, out_trade_no)? {
        let code = CouponCode::generate();
        let coupon_id: i64 = crate::insert_returning!(
            conn,
            diesel::insert_into(coupons::table).values((
                coupons::campaign_id.eq(p.campaign_id),
                coupons::code.eq(code.as_str()),
                coupons::owner_openid.eq(&p.buyer_openid),
                coupons::status.eq("issued"),
                coupons::version.eq(0i64),
                coupons::created_at.eq(now),
            )),
            coupons::table,
            coupons::id
        )?;
        diesel::update(coupon_purchases::table.find(out_trade_no))
            .set(coupon_purchases::coupon_code.eq(code.as_str()))
            .execute(conn)?;
        // Paid in the mini program: WeChat holds the funds until the shipping is uploaded — owed to
        // WeChat, so through the outbox, in this transaction.
        if let Some(order) = get(conn, out_trade_no)?
            && order.appid.is_some()
            && let Some(openid) = order.openid.clone()
        {
            crate::features::outbox::repo::enqueue_upload_shipping(
                conn,
                coupon_id,
                &crate::features::outbox::repo::UploadShipping {
                    transaction_id: transaction_id.to_owned(),
                    openid,
                    item_desc: order.description.clone(),
                },
                now,
            )?;
        }
    }
    Ok(())
}

/// An order paid after its campaign ended: no coupon, its reserved unit released, and its money going back (a
/// refund recorded `requested` with `updated_at = 0`, which the refund worker sends; one number per order, so a
/// replayed payment cannot record two).
fn refund_after_end(
    conn: &mut DbConnection,
    out_trade_no: &str,
    campaign_id: i64,
    total_fee: i64,
    now: i64,
) -> Result<(), DbError> {
    diesel::update(campaigns::table.filter(campaigns::id.eq(campaign_id).and(campaigns::issued.gt(0))))
        .set(campaigns::issued.eq(campaigns::issued - 1))
        .execute(conn)?;
    diesel::insert_into(pay_refunds::table)
        .values((
            pay_refunds::out_refund_no.eq(format!("E{out_trade_no}")),
            pay_refunds::out_trade_no.eq(out_trade_no),
            pay_refunds::refund_fee.eq(total_fee),
            pay_refunds::reason.eq(Some(super::ending::ENDED_REFUND_REASON)),
            pay_refunds::status.eq("requested"),
            pay_refunds::created_at.eq(now),
            pay_refunds::updated_at.eq(0i64),
            pay_refunds::voided_coupon.eq(false),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records a signed notify that was not applied because it names another appid or merchant (our key signed it, so
/// it is no forgery: an operator should see it).
pub fn record_mismatch(
    conn: &mut DbConnection,
    out_trade_no: &str,
    transaction_id: &str,
    total_fee: i64,
    now: i64,
) -> Result<(), DbError> {
    diesel::insert_into(pay_notifications::table)
        .values((
            pay_notifications::out_trade_no.eq(out_trade_no),
            pay_notifications::transaction_id.eq(transaction_id),
            pay_notifications::total_fee.eq(total_fee),
            pay_notifications::outcome.eq("merchant_mismatch"),
            pay_notifications::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// A recorded notify.
#[derive(Clone, Debug, Queryable, serde::Serialize)]
pub struct Notification {
    /// Id.
    pub id: i64,
    /// The order.
    pub out_trade_no: String,
    /// WeChat's transaction.
    pub transaction_id: String,
    /// Fen.
    pub total_fee: i64,
    /// What it did.
    pub outcome: String,
    /// Unix ms.
    pub created_at: i64,
}

/// Recorded notifies, newest first (optionally of one outcome).
pub fn notifications(conn: &mut DbConnection, outcome: Option<&str>, limit: i64) -> Result<Vec<Notification>, DbError> {
    let mut q = pay_notifications::table.into_boxed();
    if let Some(o) = outcome {
        q = q.filter(pay_notifications::outcome.eq(o.to_owned()));
    }
    Ok(q.order(pay_notifications::id.desc()).limit(limit).load(conn)?)
}

/// An unsettled order and how often the reconciler has asked about it.
pub type Unsettled = (Order, i32);

/// Unpaid orders placed before `placed_before_ms` whose next look is due at `now_ms`, never-checked first, then the
/// longest-waiting: the reconciler's work. Round-robin by `next_check_at`, so no set of orders can hold the head.
pub fn unsettled(
    conn: &mut DbConnection,
    placed_before_ms: i64,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<Unsettled>, DbError> {
    Ok(pay_orders::table
        .inner_join(pay_order_checks::table)
        .filter(pay_orders::status.eq(OrderStatus::Created.as_str()))
        .filter(pay_orders::created_at.lt(placed_before_ms))
        .filter(pay_order_checks::next_check_at.le(now_ms))
        .order((pay_order_checks::next_check_at.asc(), pay_orders::created_at.asc()))
        .limit(limit)
        .select((Order::as_select(), pay_order_checks::checks))
        .load(conn)?)
}

/// Records a look at an unsettled order: one more check, the next not before `next_at_ms`.
pub fn checked(conn: &mut DbConnection, order_id: i64, next_at_ms: i64) -> Result<(), DbError> {
    diesel::update(pay_order_checks::table.find(order_id))
        .set((
            pay_order_checks::next_check_at.eq(next_at_ms),
            pay_order_checks::checks.eq(pay_order_checks::checks + 1),
        ))
        .execute(conn)?;
    Ok(())
}

use crate::db::schema::pay_refunds;

/// Why a refund was not recorded.
#[derive(Debug)]
pub enum RefundRefused {
    /// No such order.
    NotFound,
    /// The order is not paid.
    NotPaid(String),
    /// It would exceed what was paid: (already refunded or in progress, paid).
    TooMuch(i64, i64),
    /// The bought coupon was redeemed (refund it only with `force`).
    Redeemed(String),
    /// The database failed.
    Db(DbError),
}

impl From<DbError> for RefundRefused {
    fn from(e: DbError) -> Self {
        RefundRefused::Db(e)
    }
}

impl From<diesel::result::Error> for RefundRefused {
    fn from(e: diesel::result::Error) -> Self {
        RefundRefused::Db(e.into())
    }
}

/// Records a requested refund if the order is paid and the refunds (requested or succeeded) stay within its amount.
/// The order row is written first, so concurrent refunds of one order queue on its lock (a row lock on PostgreSQL,
/// the write lock on SQLite) and cannot both pass the sum check. A bought coupon is voided in the same transaction
/// (so it cannot be refunded and used); one already redeemed refuses the refund unless `force`. Returns the order.
pub fn request_refund(
    conn: &mut DbConnection,
    out_trade_no: &str,
    out_refund_no: &str,
    refund_fee: i64,
    reason: Option<&str>,
    force: bool,
    now: i64,
) -> Result<Order, RefundRefused> {
    conn.transaction::<_, RefundRefused, _>(|conn| {
        let touched = diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(out_trade_no)))
            .set(pay_orders::updated_at.eq(now))
            .execute(conn)?;
        if touched == 0 {
            return Err(RefundRefused::NotFound);
        }
        let Some(order) = get(conn, out_trade_no)? else {
            return Err(RefundRefused::NotFound);
        };
        if order.status != OrderStatus::Paid {
            return Err(RefundRefused::NotPaid(order.status.to_string()));
        }
        let fees: Vec<i64> = pay_refunds::table
            .filter(pay_refunds::out_trade_no.eq(out_trade_no))
            .filter(pay_refunds::status.eq_any(["requested", "succeeded"]))
            .select(pay_refunds::refund_fee)
            .load(conn)?;
        let taken: i64 = fees.iter().sum();
        if taken + refund_fee > order.total_fee {
            return Err(RefundRefused::TooMuch(taken, order.total_fee));
        }
        // The bought coupon is voided first, conditionally, and the row count decides: a POS redemption committing
        // in between makes the update touch nothing (PostgreSQL re-reads the row after the redemption's commit), and
        // the coupon is looked at again — a refund and a redemption of one coupon never both succeed.
        let mut voided = false;
        if let Some(code) = &purchase(conn, out_trade_no)?.and_then(|p| p.coupon_code) {
            voided = diesel::update(coupons::table.filter(coupons::code.eq(code).and(coupons::status.eq("issued"))))
                .set((coupons::status.eq("void"), coupons::version.eq(coupons::version + 1)))
                .execute(conn)?
                == 1;
            if voided {
                crate::features::coupons::busifavor::queue_deactivate_code(conn, code, "refunded", now)?;
            }
            if !voided {
                let status: Option<String> = coupons::table
                    .filter(coupons::code.eq(code))
                    .select(coupons::status)
                    .first(conn)
                    .optional()?;
                if status.as_deref() == Some("redeemed") && !force {
                    return Err(RefundRefused::Redeemed(code.clone()));
                }
            }
        }
        diesel::insert_into(pay_refunds::table)
            .values((
                pay_refunds::out_refund_no.eq(out_refund_no),
                pay_refunds::out_trade_no.eq(out_trade_no),
                pay_refunds::refund_fee.eq(refund_fee),
                pay_refunds::reason.eq(reason),
                pay_refunds::status.eq("requested"),
                pay_refunds::created_at.eq(now),
                pay_refunds::updated_at.eq(now),
                pay_refunds::voided_coupon.eq(voided),
            ))
            .execute(conn)?;
        Ok(order)
    })
}

/// Moves a refund on from `requested` (to `failed` when WeChat refused it, `succeeded` / `closed` on its notify or
/// query); true if it moved. Also stores WeChat's refund id when given. A refund that did not happen gives back only
/// what it took: the bought coupon, if this refund voided it and no other refund of the order stands (one that does
/// takes the duty over). A coupon voided by someone else (an operator, for fraud) stays void.
pub fn settle_refund(
    conn: &mut DbConnection,
    out_refund_no: &str,
    status: &str,
    refund_id: Option<&str>,
    now: i64,
) -> Result<bool, DbError> {
    conn.transaction::<_, DbError, _>(|conn| {
        let moved = diesel::update(
            pay_refunds::table
                .filter(pay_refunds::out_refund_no.eq(out_refund_no))
                .filter(pay_refunds::status.eq("requested")),
        )
        .set((
            pay_refunds::status.eq(status),
            pay_refunds::refund_id.eq(refund_id),
            pay_refunds::updated_at.eq(now),
        ))
        .execute(conn)?
            == 1;
        if moved && status != "succeeded" {
            give_back(conn, out_refund_no)?;
        }
        Ok(moved)
    })
}

/// A refund that did not happen gives back the coupon it voided (see [`settle_refund`]).
fn give_back(conn: &mut DbConnection, out_refund_no: &str) -> Result<(), DbError> {
    let (out_trade_no, voided): (String, bool) = pay_refunds::table
        .filter(pay_refunds::out_refund_no.eq(out_refund_no))
        .select((pay_refunds::out_trade_no, pay_refunds::voided_coupon))
        .first(conn)?;
    if !voided {
        return Ok(());
    }
    diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(out_refund_no)))
        .set(pay_refunds::voided_coupon.eq(false))
        .execute(conn)?;
    let standing: Option<i64> = pay_refunds::table
        .filter(pay_refunds::out_trade_no.eq(&out_trade_no))
        .filter(pay_refunds::status.eq_any(["requested", "succeeded"]))
        .select(pay_refunds::id)
        .first(conn)
        .optional()?;
    if let Some(id) = standing {
        diesel::update(pay_refunds::table.find(id))
            .set(pay_refunds::voided_coupon.eq(true))
            .execute(conn)?;
    } else if let Some(code) = purchase(conn, &out_trade_no)?.and_then(|p| p.coupon_code) {
        diesel::update(coupons::table.filter(coupons::code.eq(code).and(coupons::status.eq("void"))))
            .set((coupons::status.eq("issued"), coupons::version.eq(coupons::version + 1)))
            .execute(conn)?;
    }
    Ok(())
}

/// What a refund notify (or a refund query) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundNotified {
    /// A requested refund settled.
    Settled,
    /// Already in that state: nothing to do.
    Duplicate,
    /// Our state said otherwise (`was`): WeChat's wins.
    Corrected {
        /// What we had.
        was: String,
    },
    /// A refund we never asked for (made on the merchant platform): recorded.
    Unknown,
}

impl RefundNotified {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            RefundNotified::Settled => "settled",
            RefundNotified::Duplicate => "duplicate",
            RefundNotified::Corrected { .. } => "corrected",
            RefundNotified::Unknown => "unknown",
        }
    }
}

/// What WeChat says of a refund.
#[derive(Debug)]
pub struct RefundFact<'a> {
    /// Our refund number.
    pub out_refund_no: &'a str,
    /// Our order number.
    pub out_trade_no: &'a str,
    /// Fen.
    pub refund_fee: i64,
    /// `succeeded`, `closed` or `failed`.
    pub status: &'a str,
    /// WeChat's refund id.
    pub refund_id: &'a str,
}

/// Applies what WeChat says of a refund: settles a requested one; where our state contradicts it (a refund we marked
/// failed that WeChat made after all, one we never asked for), WeChat's state wins — the coupon is voided again when
/// the money went back, and an audit row says what changed. Applied once: a repeat is a [`RefundNotified::Duplicate`].
pub fn apply_refund_fact(conn: &mut DbConnection, f: &RefundFact<'_>, now: i64) -> Result<RefundNotified, DbError> {
    // SQLite: the write lock up front — deliveries of one notify at once read, then write; a deferred
    // transaction would fail the second with SQLITE_BUSY at its lock upgrade instead of waiting its turn.
    crate::db::write_transaction(conn, |conn| {
        conn.transaction::<_, DbError, _>(|conn| {
            let current: Option<String> = pay_refunds::table
                .filter(pay_refunds::out_refund_no.eq(f.out_refund_no))
                .select(pay_refunds::status)
                .first(conn)
                .optional()?;
            let outcome = match current.as_deref() {
                Some("requested") => {
                    let moved = settle_refund(conn, f.out_refund_no, f.status, Some(f.refund_id), now)?;
                    return Ok(if moved {
                        RefundNotified::Settled
                    } else {
                        RefundNotified::Duplicate
                    });
                }
                Some(s) if s == f.status => return Ok(RefundNotified::Duplicate),
                Some(was) => {
                    // Conditional on what was read: of two deliveries at once, one corrects, the other finds it done.
                    let moved = diesel::update(
                        pay_refunds::table
                            .filter(pay_refunds::out_refund_no.eq(f.out_refund_no))
                            .filter(pay_refunds::status.eq(was)),
                    )
                    .set((
                        pay_refunds::status.eq(f.status),
                        pay_refunds::refund_id.eq(f.refund_id),
                        pay_refunds::updated_at.eq(now),
                    ))
                    .execute(conn)?
                        == 1;
                    if !moved {
                        return Ok(RefundNotified::Duplicate);
                    }
                    RefundNotified::Corrected { was: was.to_owned() }
                }
                None => {
                    if get(conn, f.out_trade_no)?.is_none() {
                        return Ok(RefundNotified::Unknown);
                    }
                    diesel::insert_into(pay_refunds::table)
                        .values((
                            pay_refunds::out_refund_no.eq(f.out_refund_no),
                            pay_refunds::out_trade_no.eq(f.out_trade_no),
                            pay_refunds::refund_fee.eq(f.refund_fee),
                            pay_refunds::status.eq(f.status),
                            pay_refunds::refund_id.eq(f.refund_id),
                            pay_refunds::created_at.eq(now),
                            pay_refunds::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    RefundNotified::Unknown
                }
            };
            let code = purchase(conn, f.out_trade_no)?.and_then(|p| p.coupon_code);
            if f.status == "succeeded" {
                // The money went back: the coupon it bought is void, whoever gave it back meanwhile.
                if let Some(code) = &code {
                    let voided =
                        diesel::update(coupons::table.filter(coupons::code.eq(code).and(coupons::status.eq("issued"))))
                            .set((coupons::status.eq("void"), coupons::version.eq(coupons::version + 1)))
                            .execute(conn)?
                            == 1;
                    if voided {
                        crate::features::coupons::busifavor::queue_deactivate_code(conn, code, "refunded", now)?;
                        diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(f.out_refund_no)))
                            .set(pay_refunds::voided_coupon.eq(true))
                            .execute(conn)?;
                    }
                }
            } else if current.as_deref() == Some("succeeded") {
                give_back(conn, f.out_refund_no)?;
            }
            let detail = match &outcome {
                RefundNotified::Corrected { was } => {
                    format!("refund {}: ours said {was}, WeChat says {}", f.out_refund_no, f.status)
                }
                _ => format!(
                    "refund {} we never asked for: WeChat says {}",
                    f.out_refund_no, f.status
                ),
            };
            diesel::insert_into(crate::db::schema::audit_log::table)
                .values((
                    crate::db::schema::audit_log::action.eq("refund_reconciled"),
                    crate::db::schema::audit_log::coupon_code.eq(code),
                    crate::db::schema::audit_log::outcome.eq(outcome.as_str()),
                    crate::db::schema::audit_log::channel.eq("pay"),
                    crate::db::schema::audit_log::created_at.eq(now),
                    crate::db::schema::audit_log::detail.eq(detail),
                ))
                .execute(conn)?;
            Ok(outcome)
        })
    })
}

/// A refund still `requested`, with what it takes to ask again.
#[derive(Clone, Debug)]
pub struct PendingRefund {
    /// Our refund number.
    pub out_refund_no: String,
    /// Our order number.
    pub out_trade_no: String,
    /// Fen.
    pub refund_fee: i64,
    /// Shown to the buyer.
    pub reason: Option<String>,
    /// The order's amount.
    pub total_fee: i64,
    /// The order's appid (`None`: the official account's).
    pub appid: Option<String>,
}

/// Requested refunds last touched before `before_ms`, oldest first; each returned one is touched now, so the next
/// round looks at others first.
pub fn pending_refunds(
    conn: &mut DbConnection,
    before_ms: i64,
    now: i64,
    limit: i64,
) -> Result<Vec<PendingRefund>, DbError> {
    conn.transaction::<_, DbError, _>(|conn| {
        let rows: Vec<(String, String, i64, Option<String>)> = pay_refunds::table
            .filter(pay_refunds::status.eq("requested"))
            .filter(pay_refunds::updated_at.lt(before_ms))
            .order(pay_refunds::updated_at.asc())
            .limit(limit)
            .select((
                pay_refunds::out_refund_no,
                pay_refunds::out_trade_no,
                pay_refunds::refund_fee,
                pay_refunds::reason,
            ))
            .load(conn)?;
        let mut out = Vec::with_capacity(rows.len());
        for (out_refund_no, out_trade_no, refund_fee, reason) in rows {
            diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(&out_refund_no)))
                .set(pay_refunds::updated_at.eq(now))
                .execute(conn)?;
            let Some(order) = get(conn, &out_trade_no)? else {
                continue;
            };
            out.push(PendingRefund {
                out_refund_no,
                out_trade_no,
                refund_fee,
                reason,
                total_fee: order.total_fee,
                appid: order.appid,
            });
        }
        Ok(out)
    })
}

/// A refund's amount and status.
pub fn refund(conn: &mut DbConnection, out_refund_no: &str) -> Result<Option<(String, i64, String)>, DbError> {
    Ok(pay_refunds::table
        .filter(pay_refunds::out_refund_no.eq(out_refund_no))
        .select((pay_refunds::out_trade_no, pay_refunds::refund_fee, pay_refunds::status))
        .first(conn)
        .optional()?)
}

/// The refunds of an order: (out_refund_no, fee, status).
pub fn refunds_of(conn: &mut DbConnection, out_trade_no: &str) -> Result<Vec<(String, i64, String)>, DbError> {
    Ok(pay_refunds::table
        .filter(pay_refunds::out_trade_no.eq(out_trade_no))
        .order(pay_refunds::id.asc())
        .select((pay_refunds::out_refund_no, pay_refunds::refund_fee, pay_refunds::status))
        .load(conn)?)
}

/// Orders, newest first (optionally of one status).
pub fn list(conn: &mut DbConnection, status: Option<&str>, limit: i64) -> Result<Vec<Order>, DbError> {
    let mut q = pay_orders::table.select(Order::as_select()).into_boxed();
    if let Some(s) = status {
        q = q.filter(pay_orders::status.eq(s.to_owned()));
    }
    Ok(q.order(pay_orders::id.desc()).limit(limit).load(conn)?)
}

/// Keeps WeChat's refund id on a requested refund (its status stays until the notify).
pub fn set_refund_id(conn: &mut DbConnection, out_refund_no: &str, refund_id: &str) -> Result<(), DbError> {
    diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(out_refund_no)))
        .set(pay_refunds::refund_id.eq(refund_id))
        .execute(conn)?;
    Ok(())
}

/// Which orders to list.
#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    /// Only orders buying this merchant's coupons.
    pub merchant_id: Option<i64>,
    /// Only orders buying this campaign's coupons.
    pub campaign_id: Option<i64>,
    /// `created`, `paid`, `closed`, or `refunded` (paid, with a refund that succeeded).
    pub status: Option<String>,
    /// Placed at or after, ms.
    pub since: Option<i64>,
    /// Placed before, ms.
    pub until: Option<i64>,
    /// Only this order.
    pub out_trade_no: Option<String>,
}

/// An order as the lists show it: what it bought and what went back.
#[derive(Clone, Debug)]
pub struct OrderLine {
    /// The order.
    pub order: Order,
    /// The campaign whose coupon it buys.
    pub campaign_id: Option<i64>,
    /// Its title.
    pub campaign_title: Option<String>,
    /// Its merchant.
    pub merchant_id: Option<i64>,
    /// The coupon it bought.
    pub coupon_code: Option<String>,
    /// Refunds that succeeded, fen.
    pub refunded_fen: i64,
    /// Refunds asked for and not settled yet, fen.
    pub refunding_fen: i64,
}

impl OrderLine {
    /// The status people read: `refunded` / `partially_refunded` for a paid order with refunds that succeeded.
    pub fn shown_status(&self) -> &'static str {
        match self.order.status {
            OrderStatus::Paid if self.refunded_fen >= self.order.total_fee => "refunded",
            OrderStatus::Paid if self.refunded_fen > 0 => "partially_refunded",
            OrderStatus::Paid => "paid",
            OrderStatus::Created => "created",
            OrderStatus::Closed => "closed",
        }
    }
}

/// Orders newest first, before id `before`, at most `n`.
pub fn orders_page(
    conn: &mut DbConnection,
    f: &OrderFilter,
    before: Option<i64>,
    n: i64,
) -> Result<Vec<OrderLine>, DbError> {
    let mut q = pay_orders::table
        .left_join(coupon_purchases::table.on(coupon_purchases::out_trade_no.eq(pay_orders::out_trade_no)))
        .left_join(campaigns::table.on(campaigns::id.nullable().eq(coupon_purchases::campaign_id.nullable())))
        .select((
            Order::as_select(),
            coupon_purchases::campaign_id.nullable(),
            campaigns::title.nullable(),
            campaigns::merchant_id.nullable(),
            coupon_purchases::coupon_code.nullable(),
        ))
        .order(pay_orders::id.desc())
        .limit(n)
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(pay_orders::id.lt(b));
    }
    if let Some(m) = f.merchant_id {
        q = q.filter(campaigns::merchant_id.nullable().eq(m));
    }
    if let Some(c) = f.campaign_id {
        q = q.filter(coupon_purchases::campaign_id.nullable().eq(c));
    }
    if let Some(s) = f.since {
        q = q.filter(pay_orders::created_at.ge(s));
    }
    if let Some(u) = f.until {
        q = q.filter(pay_orders::created_at.lt(u));
    }
    if let Some(no) = &f.out_trade_no {
        q = q.filter(pay_orders::out_trade_no.eq(no.clone()));
    }
    let refunded = diesel::dsl::exists(
        pay_refunds::table
            .filter(pay_refunds::out_trade_no.eq(pay_orders::out_trade_no))
            .filter(pay_refunds::status.eq("succeeded")),
    );
    match f.status.as_deref() {
        Some("refunded") => q = q.filter(pay_orders::status.eq("paid")).filter(refunded),
        Some("paid") => {
            q = q
                .filter(pay_orders::status.eq("paid"))
                .filter(diesel::dsl::not(refunded))
        }
        Some(s) => q = q.filter(pay_orders::status.eq(s.to_owned())),
        None => {}
    }
    type Row = (Order, Option<i64>, Option<String>, Option<i64>, Option<String>);
    let rows: Vec<Row> = q.load(conn)?;
    let nos: Vec<&str> = rows.iter().map(|r| r.0.out_trade_no.as_str()).collect();
    let refunds: Vec<(String, i64, String)> = if nos.is_empty() {
        Vec::new()
    } else {
        pay_refunds::table
            .filter(pay_refunds::out_trade_no.eq_any(&nos))
            .select((pay_refunds::out_trade_no, pay_refunds::refund_fee, pay_refunds::status))
            .load(conn)?
    };
    Ok(rows
        .into_iter()
        .map(|(order, campaign_id, campaign_title, merchant_id, coupon_code)| {
            let sum = |status: &str| -> i64 {
                refunds
                    .iter()
                    .filter(|(no, _, st)| *no == order.out_trade_no && st == status)
                    .map(|(_, f, _)| f)
                    .sum()
            };
            OrderLine {
                refunded_fen: sum("succeeded"),
                refunding_fen: sum("requested"),
                campaign_id,
                campaign_title,
                merchant_id,
                coupon_code,
                order,
            }
        })
        .collect())
}

/// The statuses [`OrderFilter::status`] takes.
pub const ORDER_STATUSES: [&str; 4] = ["created", "paid", "refunded", "closed"];
