//! Coupons, redemptions and their audit rows on both backends: issuing under the campaign's limits, lookups, and
//! the exactly-once redemption write ([`DbRedemptionStore`]). Exactly-once rules live in the database.

use crate::db::schema::{audit_log, campaign_messages, campaigns, coupon_card_bag, coupons, redemptions};
use crate::db::{DbConnection, DbError};
use crate::features::merchants::repo::{CampaignRow, campaign};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use redemption_core::{
    AuditEntry, Campaign, CampaignId, Channel, Coupon, CouponCode, CouponId, CouponStatus, IssueError, Millis,
    RedemptionStore, StaffId,
};

/// A coupon row.
#[derive(Clone, Debug, Queryable)]
pub struct CouponRow {
    /// Id.
    pub id: i64,
    /// Campaign.
    pub campaign_id: i64,
    /// Code.
    pub code: String,
    /// Owner.
    pub owner_openid: Option<String>,
    /// Status.
    pub status: String,
    /// Redeemed at, ms.
    pub redeemed_at: Option<i64>,
    /// Redeemed by (staff id).
    pub redeemed_by: Option<i64>,
    /// The WeChat card code, for card-backed coupons.
    pub wechat_card_code: Option<String>,
    /// Version (bumped on every change).
    pub version: i64,
    /// Created, ms.
    pub created_at: i64,
}

impl CouponRow {
    /// The domain view. A code or status that is not ours reads as void: never as redeemable.
    pub fn to_domain(&self) -> Option<Coupon> {
        Some(Coupon {
            id: CouponId(self.id),
            campaign_id: CampaignId(self.campaign_id),
            code: CouponCode::parse(&self.code)?,
            owner_openid: self.owner_openid.clone(),
            status: CouponStatus::parse(&self.status).unwrap_or(CouponStatus::Void),
            redeemed_at: self.redeemed_at,
            redeemed_by: self.redeemed_by.map(StaffId),
            created_at: self.created_at,
        })
    }
}

/// Why issuing failed.
#[derive(Debug, thiserror::Error)]
pub enum IssueFailure {
    /// No such campaign.
    #[error("campaign not found")]
    NotFound,
    /// A campaign rule refused it.
    #[error(transparent)]
    Rule(#[from] IssueError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<DieselError> for IssueFailure {
    fn from(e: DieselError) -> Self {
        IssueFailure::Db(DbError::Query(e))
    }
}

/// Issues a coupon: in one transaction, a conditional increment of the campaign's `issued` counter (which also
/// locks the campaign row, serialising concurrent issuers) and the insert. Quantity and per-user limits hold under
/// concurrency.
pub fn issue_coupon(
    conn: &mut DbConnection,
    campaign_id: i64,
    owner: Option<&str>,
    now: Millis,
) -> Result<(CouponRow, CampaignRow), IssueFailure> {
    conn.transaction(|conn| {
        let bumped = diesel::update(
            campaigns::table.filter(
                campaigns::id.eq(campaign_id).and(
                    campaigns::quantity
                        .is_null()
                        .or(campaigns::issued.lt(campaigns::quantity.assume_not_null())),
                ),
            ),
        )
        .set(campaigns::issued.eq(campaigns::issued + 1))
        .execute(conn)?;
        let Some(row) = campaign(conn, campaign_id)? else {
            return Err(IssueFailure::NotFound);
        };
        let domain = row.to_domain_for_issuing();
        if bumped == 0 {
            return Err(IssueError::SoldOut.into());
        }
        // The per-user limit counts the person: every openid of the owner's user row (official account and mini
        // program, linked by unionid), so one person cannot take a limit-1 coupon once per channel.
        let held = match owner {
            Some(o) => {
                let person = crate::features::auth::repo::person_openids(conn, o)?;
                Some(
                    coupons::table
                        .filter(
                            coupons::campaign_id
                                .eq(campaign_id)
                                .and(coupons::owner_openid.eq_any(&person)),
                        )
                        .count()
                        .get_result::<i64>(conn)? as u64,
                )
            }
            None => None,
        };
        // `issued` already counts this coupon: check against the count before it.
        redemption_core::check_issuable(&domain, (row.issued - 1).max(0) as u64, held, now)?;
        let code = CouponCode::generate();
        let coupon: CouponRow = crate::insert_returning!(
            conn,
            diesel::insert_into(coupons::table).values((
                coupons::campaign_id.eq(campaign_id),
                coupons::code.eq(code.as_str()),
                coupons::owner_openid.eq(owner),
                coupons::status.eq(CouponStatus::Issued.as_str()),
                coupons::version.eq(0i64),
                coupons::created_at.eq(now),
            )),
            coupons::table,
            coupons::all_columns
        )?;
        Ok((coupon, row))
    })
}

/// A coupon and its campaign by code.
pub fn coupon_by_code(conn: &mut DbConnection, code: &str) -> Result<Option<(CouponRow, CampaignRow)>, DbError> {
    Ok(coupons::table
        .inner_join(campaigns::table)
        .filter(coupons::code.eq(code))
        .select((coupons::all_columns, campaigns::all_columns))
        .first(conn)
        .optional()?)
}

/// A card-backed coupon by its WeChat card code.
pub fn coupon_by_card_code(conn: &mut DbConnection, card_code: &str) -> Result<Option<CouponRow>, DbError> {
    Ok(coupons::table
        .filter(coupons::wechat_card_code.eq(card_code))
        .first(conn)
        .optional()?)
}

/// A customer's coupons, newest first.
pub fn coupons_of_owner(conn: &mut DbConnection, openid: &str) -> Result<Vec<(CouponRow, CampaignRow)>, DbError> {
    Ok(coupons::table
        .inner_join(campaigns::table)
        .filter(coupons::owner_openid.eq(openid))
        .order(coupons::id.desc())
        .select((coupons::all_columns, campaigns::all_columns))
        .load(conn)?)
}

/// A person's coupons, newest first: held under any of their openids (official account, mini program), so a
/// voucher bought on a computer is in the list the same person opens inside WeChat.
pub fn coupons_of_person(conn: &mut DbConnection, openid: &str) -> Result<Vec<(CouponRow, CampaignRow)>, DbError> {
    let person = crate::features::auth::repo::person_openids(conn, openid)?;
    Ok(coupons::table
        .inner_join(campaigns::table)
        .filter(coupons::owner_openid.eq_any(&person))
        .order(coupons::id.desc())
        .select((coupons::all_columns, campaigns::all_columns))
        .load(conn)?)
}

/// Voids an issued coupon.
pub fn void_coupon(conn: &mut DbConnection, code: &str) -> Result<bool, DbError> {
    let n = diesel::update(coupons::table.filter(coupons::code.eq(code).and(coupons::status.eq("issued"))))
        .set((coupons::status.eq("void"), coupons::version.eq(coupons::version + 1)))
        .execute(conn)?;
    Ok(n == 1)
}

/// Counts (for tests and operations): redemptions of a coupon, audit rows of a coupon.
pub fn redemption_and_audit_counts(conn: &mut DbConnection, coupon_id: i64) -> Result<(i64, i64), DbError> {
    let r = redemptions::table
        .filter(redemptions::coupon_id.eq(coupon_id))
        .count()
        .get_result(conn)?;
    let a = audit_log::table
        .filter(audit_log::coupon_id.eq(coupon_id))
        .count()
        .get_result(conn)?;
    Ok((r, a))
}

/// [`RedemptionStore`] on a connection.
#[derive(Debug)]
pub struct DbRedemptionStore<'a>(pub &'a mut DbConnection);

impl RedemptionStore for DbRedemptionStore<'_> {
    type Error = DbError;

    fn find_coupon(&mut self, code: &CouponCode) -> Result<Option<(Coupon, Campaign)>, DbError> {
        Ok(coupon_by_code(self.0, code.as_str())?
            .and_then(|(c, k)| c.to_domain().map(|coupon| (coupon, k.to_domain()))))
    }

    fn try_redeem(
        &mut self,
        coupon: CouponId,
        staff_id: Option<StaffId>,
        channel: Channel,
        now: Millis,
        audit: &AuditEntry,
    ) -> Result<bool, DbError> {
        if let DbConnection::Postgresql(pg) = &mut *self.0 {
            // One prepared statement, one round trip, atomic: the same three writes as below, chained by RETURNING.
            let n = RedeemWrite {
                coupon_id: coupon.0,
                now,
                staff_id: staff_id.map(|s| s.0),
                channel: channel.as_str(),
                code: &audit.code,
                outcome: audit.outcome,
            }
            .execute(pg)?;
            return Ok(n == 1);
        }
        crate::db::short_transaction(self.0, |conn| {
            redeem_writes(conn, coupon, staff_id, channel, now, audit)
        })
    }

    fn record(&mut self, e: &AuditEntry) -> Result<(), DbError> {
        insert_audit(self.0, e)
    }
}

/// The guarded redemption UPDATE of [`redeem_writes`] as one fixed statement, so that MySQL prepares it once per
/// connection.
#[cfg(feature = "mysql")]
#[derive(Debug)]
struct MysqlRedeemUpdate {
    coupon_id: i64,
    now: i64,
    staff_id: Option<i64>,
}

#[cfg(feature = "mysql")]
impl diesel::query_builder::QueryId for MysqlRedeemUpdate {
    type QueryId = MysqlRedeemUpdate;
    const HAS_STATIC_QUERY_ID: bool = true;
}

#[cfg(feature = "mysql")]
impl RunQueryDsl<diesel::MysqlConnection> for MysqlRedeemUpdate {}

#[cfg(feature = "mysql")]
impl diesel::query_builder::QueryFragment<diesel::mysql::Mysql> for MysqlRedeemUpdate {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::mysql::Mysql>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Nullable};
        out.push_sql("UPDATE coupons SET status = 'redeemed', redeemed_at = ");
        out.push_bind_param::<BigInt, _>(&self.now)?;
        out.push_sql(", redeemed_by = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.staff_id)?;
        out.push_sql(", version = version + 1 WHERE id = ");
        out.push_bind_param::<BigInt, _>(&self.coupon_id)?;
        out.push_sql(" AND status = 'issued'");
        Ok(())
    }
}

/// What a redeemed coupon owes WeChat, read in one statement: the campaign's card id and the coupon's card code (a
/// consume), the owner (a message), when its 商家券 copy reached the card bag (a use), and whether the campaign tells
/// its customers (a message).
type Owed = (Option<String>, Option<String>, Option<String>, Option<i64>, Option<i64>);

/// The portable redemption write (SQLite and MySQL): the guarded update, the redemption and audit rows, and what the
/// redemption owes WeChat — in the caller's transaction.
fn redeem_writes(
    conn: &mut DbConnection,
    coupon: CouponId,
    staff_id: Option<StaffId>,
    channel: Channel,
    now: Millis,
    audit: &AuditEntry,
) -> Result<bool, DbError> {
    // The conditional update is the gate: only one transaction sees 'issued'.
    let update =
        diesel::update(coupons::table.filter(coupons::id.eq(coupon.0).and(coupons::status.eq("issued")))).set((
            coupons::status.eq("redeemed"),
            coupons::redeemed_at.eq(now),
            coupons::redeemed_by.eq(staff_id.map(|s| s.0)),
            coupons::version.eq(coupons::version + 1),
        ));
    let n = match conn {
        // The same UPDATE as a statement MySQL keeps prepared: Diesel prepares every UPDATE anew (a changeset may
        // leave out `None`s), which on MySQL is a round trip of its own.
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(my) => MysqlRedeemUpdate {
            coupon_id: coupon.0,
            now,
            staff_id: staff_id.map(|s| s.0),
        }
        .execute(my)?,
        _ => update.execute(conn)?,
    };
    if n == 0 {
        return Ok(false);
    }
    // The unique coupon_id is the second lock: a bug above could not produce two redemptions.
    diesel::insert_into(redemptions::table)
        .values((
            redemptions::coupon_id.eq(coupon.0),
            redemptions::staff_id.eq(staff_id.map(|s| s.0)),
            redemptions::channel.eq(channel.as_str()),
            redemptions::created_at.eq(now),
        ))
        .execute(conn)?;
    // The successful attempt's audit row commits with the redemption: one commit per redemption.
    insert_audit(conn, audit)?;
    // What the redemption owes WeChat, read in one statement (one round trip, not four: on MySQL every
    // statement is one).
    let owed: Owed = coupons::table
        .inner_join(campaigns::table.left_join(campaign_messages::table))
        .left_join(coupon_card_bag::table)
        .filter(coupons::id.eq(coupon.0))
        .select((
            campaigns::wechat_card_id,
            coupons::wechat_card_code,
            coupons::owner_openid,
            coupon_card_bag::received_at.nullable(),
            campaign_messages::campaign_id.nullable(),
        ))
        .first(conn)?;
    let (card_id, card_code, owner, in_card_bag, message) = owed;
    // A card-backed coupon redeemed here owes WeChat a consume: queued in this transaction (outbox).
    if channel != Channel::Wechat
        && let (Some(card_id), Some(code)) = (card_id, card_code)
    {
        crate::features::outbox::repo::enqueue_card_consume(
            conn,
            coupon.0,
            &crate::features::outbox::repo::CardConsume { card_id, code },
            now,
        )?;
    }
    // A coupon in a WeChat card bag as a 商家券 owes WeChat a use (use_request_no = this redemption's id).
    if in_card_bag.is_some() {
        super::busifavor::queue_use(conn, coupon.0, now)?;
    }
    // A campaign that tells its customers: the message is rendered now and queued in this transaction.
    if owner.is_some() && message.is_some() {
        crate::features::merchants::messages::queue_redeemed_message(conn, coupon.0, now)?;
    }
    Ok(true)
}

fn insert_audit(conn: &mut DbConnection, e: &AuditEntry) -> Result<(), DbError> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::action.eq("redeem"),
            audit_log::coupon_code.eq(&e.code),
            audit_log::coupon_id.eq(e.coupon_id.map(|c| c.0)),
            audit_log::staff_id.eq(e.staff_id.map(|s| s.0)),
            audit_log::outcome.eq(e.outcome),
            audit_log::channel.eq(e.channel.as_str()),
            audit_log::created_at.eq(e.at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The PostgreSQL redemption write as one statement. A static [`QueryId`](diesel::query_builder::QueryId) lets
/// Diesel prepare it once per connection (a `sql_query` would be parsed and planned on every call).
#[derive(Debug)]
struct RedeemWrite<'a> {
    coupon_id: i64,
    now: Millis,
    staff_id: Option<i64>,
    channel: &'a str,
    code: &'a str,
    outcome: &'a str,
}

impl diesel::query_builder::QueryId for RedeemWrite<'_> {
    type QueryId = RedeemWrite<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<diesel::PgConnection> for RedeemWrite<'_> {}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for RedeemWrite<'_> {
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Nullable, Text};
        out.push_sql("WITH p AS (SELECT ");
        out.push_bind_param::<BigInt, _>(&self.coupon_id)?;
        out.push_sql("::int8 AS coupon_id, ");
        out.push_bind_param::<BigInt, _>(&self.now)?;
        out.push_sql("::int8 AS now, ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.staff_id)?;
        out.push_sql("::int8 AS staff_id, ");
        out.push_bind_param::<Text, _>(self.channel)?;
        out.push_sql("::text AS channel, ");
        out.push_bind_param::<Text, _>(self.code)?;
        out.push_sql("::text AS code, ");
        out.push_bind_param::<Text, _>(self.outcome)?;
        out.push_sql(
            "::text AS outcome), \
             upd AS (UPDATE coupons SET status = 'redeemed', redeemed_at = p.now, redeemed_by = p.staff_id, \
                     version = coupons.version + 1 FROM p WHERE coupons.id = p.coupon_id AND coupons.status = 'issued' \
                     RETURNING coupons.id, coupons.campaign_id, coupons.wechat_card_code, coupons.owner_openid, \
                               coupons.code), \
             red AS (INSERT INTO redemptions (coupon_id, staff_id, channel, created_at) \
                     SELECT upd.id, p.staff_id, p.channel, p.now FROM upd CROSS JOIN p RETURNING id, coupon_id), \
             obb AS (INSERT INTO outbox (kind, dedupe_key, coupon_id, payload, status, attempts, next_attempt_at, \
                                         lease_until, created_at, updated_at) \
                     SELECT 'busifavor_use', 'busifavor_use:' || upd.id, upd.id, \
                            json_build_object('stock_id', ws.stock_id, 'coupon_code', upd.code, 'openid', cb.openid, \
                                              'use_request_no', red.id::text)::text, \
                            'pending', 0, p.now, 0, p.now, p.now \
                     FROM upd JOIN red ON red.coupon_id = upd.id \
                          JOIN coupon_card_bag cb ON cb.coupon_id = upd.id AND cb.received_at IS NOT NULL \
                          JOIN wechat_pay_stocks ws ON ws.campaign_id = upd.campaign_id CROSS JOIN p \
                     ON CONFLICT (dedupe_key) DO NOTHING), \
             ob AS (INSERT INTO outbox (kind, dedupe_key, coupon_id, payload, status, attempts, next_attempt_at, \
                                        lease_until, created_at, updated_at) \
                    SELECT 'card_consume', 'card_consume:' || upd.id, upd.id, \
                           json_build_object('card_id', k.wechat_card_id, 'code', upd.wechat_card_code)::text, \
                           'pending', 0, p.now, 0, p.now, p.now \
                    FROM upd JOIN campaigns k ON k.id = upd.campaign_id CROSS JOIN p \
                    WHERE p.channel <> 'wechat' AND k.wechat_card_id IS NOT NULL AND upd.wechat_card_code IS NOT NULL \
                    ON CONFLICT (dedupe_key) DO NOTHING), \
             obm AS (INSERT INTO outbox (kind, dedupe_key, coupon_id, payload, status, attempts, next_attempt_at, \
                                         lease_until, created_at, updated_at) \
                     SELECT 'redeemed_message', 'redeemed_message:' || upd.id, upd.id, \
                            json_build_object('coupon_id', upd.id)::text, 'pending', 0, p.now, 0, p.now, p.now \
                     FROM upd JOIN campaign_messages m ON m.campaign_id = upd.campaign_id CROSS JOIN p \
                     WHERE upd.owner_openid IS NOT NULL \
                     ON CONFLICT (dedupe_key) DO NOTHING) \
             INSERT INTO audit_log (action, coupon_code, coupon_id, staff_id, outcome, channel, created_at) \
             SELECT 'redeem', p.code, red.coupon_id, p.staff_id, p.outcome, p.channel, p.now FROM red CROSS JOIN p",
        );
        Ok(())
    }
}

/// What the holder reads when the shop ended the coupon's campaign early: whether the coupon stays usable (and
/// until when), or what happened to their money. `None` when the campaign did not end early.
pub fn ended_early_note(conn: &mut DbConnection, code: &str) -> Result<Option<String>, DbError> {
    use crate::db::schema::{coupon_purchases, pay_refunds};
    let Some((coupon, campaign)) = coupon_by_code(conn, code)? else {
        return Ok(None);
    };
    if campaign.ended_at.is_none() {
        return Ok(None);
    }
    let order: Option<String> = coupon_purchases::table
        .filter(coupon_purchases::coupon_code.eq(code))
        .select(coupon_purchases::out_trade_no)
        .first(conn)
        .optional()?;
    let refunds: Vec<(i64, String)> = match &order {
        Some(no) => pay_refunds::table
            .filter(pay_refunds::out_trade_no.eq(no))
            .filter(pay_refunds::status.eq_any(["requested", "succeeded"]))
            .select((pay_refunds::refund_fee, pay_refunds::status))
            .load(conn)?,
        None => Vec::new(),
    };
    let money = |fen: i64| crate::http::pages::money(u64::try_from(fen).ok());
    let note = match (coupon.status.as_str(), refunds.as_slice()) {
        ("issued", _) => format!(
            "活动已提前结束 · The shop ended this offer early: your coupon stays usable until {} ({})",
            crate::platform::time::beijing(campaign.valid_until),
            crate::http::pages::TZ_LABEL
        ),
        (_, []) if coupon.status == "void" && order.is_none() => {
            "活动已提前结束，此券已作废 · The shop ended this offer early: this coupon can no longer be used".to_owned()
        }
        (_, []) => "活动已提前结束 · The shop ended this offer early".to_owned(),
        (_, r) => {
            let fee: i64 = r.iter().map(|(f, _)| f).sum();
            if r.iter().all(|(_, s)| s == "succeeded") {
                format!(
                    "活动已提前结束，已退款 {} 原路退回 · The shop ended this offer early: {} was refunded to how you paid",
                    money(fee),
                    money(fee)
                )
            } else {
                format!(
                    "活动已提前结束，{} 正在退款，原路退回 · The shop ended this offer early: {} is being refunded to how you paid",
                    money(fee),
                    money(fee)
                )
            }
        }
    };
    Ok(Some(note))
}
