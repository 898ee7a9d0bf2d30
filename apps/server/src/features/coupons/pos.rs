//! POS redemptions, several attempts at a time.
//!
//! On PostgreSQL a whole batch of attempts is **one prepared statement**: it looks up each attempt's staff member
//! (by token hash) and coupon (with its campaign), updates the coupons whose guard holds — the rule of
//! [`redemption_core::check_redeemable`]: issued, staff active and of the campaign's merchant, within the validity
//! window — and inserts their redemption and audit rows, all in one round trip and one commit. Exactly-once is still
//! the database's: the update is conditional (`status = 'issued'`, re-checked under the row lock) and
//! `redemptions.coupon_id` is unique. Attempts that did not redeem are judged by [`redemption_core::judge`] from
//! what the statement read and audited afterwards. On SQLite each attempt runs through
//! [`redemption_core::redeem`] in turn (an in-process database has no round trips to save).

use crate::db::schema::{audit_log, staff};
use crate::db::{DbConnection, DbError};
use crate::features::coupons::repo::{self as coupons_repo, CouponRow};
use crate::features::merchants::repo::{self as merchants_repo, CampaignRow, StaffRow};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Untyped};
use redemption_core::{Channel, Coupon, CouponCode, CouponWithCampaign, Judgement, Millis, Outcome, StaffId};
use std::collections::HashMap;

/// One POS attempt: who (the sha256 hex of their bearer token) and which code, as presented.
#[derive(Clone)]
pub struct PosAttempt {
    /// sha256 hex of the staff API token.
    pub token_hash: String,
    /// The code as the device sent it.
    pub code: String,
}

impl std::fmt::Debug for PosAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash identifies a bearer token: keep it out of logs.
        f.debug_struct("PosAttempt")
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

/// What one attempt came to.
#[derive(Debug)]
pub enum PosReply {
    /// No staff member holds that token.
    UnknownToken,
    /// The attempt was judged (and audited).
    Done(Box<PosDone>),
}

/// A judged attempt.
#[derive(Debug)]
pub struct PosDone {
    /// The staff member who made it.
    pub staff: StaffRow,
    /// Its outcome.
    pub outcome: Outcome,
    /// The coupon (after the redemption, when it redeemed) and its campaign, when the code was found.
    pub found: Option<CouponWithCampaign>,
    /// The coupon's WeChat card code, for card-backed coupons already in a card bag.
    pub card_code: Option<String>,
    /// For [`Outcome::AlreadyRedeemed`] by staff: that staff member's name.
    pub redeemed_by_name: Option<String>,
}

fn presented(code: &str) -> String {
    redemption_core::audit_code(code)
}

/// One reply per attempt: its outcome, or the error that kept it from being judged or recorded.
pub type PosResults = Vec<Result<PosReply, DbError>>;

/// Runs a batch of POS attempts at `now`; one result per attempt, in the order of `attempts`.
///
/// `Err` means the batch statement failed and **nothing** was written, so the attempts may be retried (one by one).
/// A per-attempt `Err` inside `Ok` comes after the batch committed — a follow-up for that attempt failed — and must
/// not be retried as part of the batch: an attempt that did redeem always gets its reply.
pub fn redeem_batch(conn: &mut DbConnection, attempts: &[PosAttempt], now: Millis) -> Result<PosResults, DbError> {
    match conn {
        DbConnection::Postgresql(_) => redeem_batch_pg(conn, attempts, now),
        // Each attempt is its own transaction here: one failing says nothing about the others. On MySQL too: its
        // per-attempt path (a conditional UPDATE and two inserts in one transaction) is the measured choice there
        // (docs/benchmarks.md, "POS on MariaDB").
        _ => match attempts {
            // One attempt that met a dead connection: a batch-level error, so that it runs again on a live one.
            [one] => match redeem_one_sequential(conn, one, now) {
                Err(e) if crate::db::is_connection_error(&e) => Err(e),
                reply => Ok(vec![reply]),
            },
            _ => Ok(attempts.iter().map(|a| redeem_one_sequential(conn, a, now)).collect()),
        },
    }
}

/// The portable path: token lookup, then [`redemption_core::redeem`] over [`coupons_repo::DbRedemptionStore`].
fn redeem_one_sequential(conn: &mut DbConnection, attempt: &PosAttempt, now: Millis) -> Result<PosReply, DbError> {
    let Some(staff) = merchants_repo::staff_by_token_hash(conn, &attempt.token_hash)? else {
        return Ok(PosReply::UnknownToken);
    };
    let (outcome, found) = redemption_core::redeem(
        &mut coupons_repo::DbRedemptionStore(conn),
        &attempt.code,
        Some(&staff.to_domain()),
        Channel::Pos,
        now,
    )?;
    let card_code = match (&outcome, &found) {
        (Outcome::Redeemed { .. }, Some((coupon, campaign))) if campaign.wechat_card_id.is_some() => {
            coupons_repo::coupon_by_code(conn, coupon.code.as_str())?.and_then(|(row, _)| row.wechat_card_code)
        }
        _ => None,
    };
    let redeemed_by_name = match &outcome {
        Outcome::AlreadyRedeemed { by: Some(id), .. } => merchants_repo::staff_by_id(conn, id.0)?.map(|s| s.name),
        _ => None,
    };
    Ok(PosReply::Done(Box::new(PosDone {
        staff,
        outcome,
        found,
        card_code,
        redeemed_by_name,
    })))
}

/// The batch statement's parameters. A static [`QueryId`] makes Diesel prepare it once per connection and reuse
/// the plan (Diesel's `sql_query` would be parsed and planned on every call).
#[derive(Debug)]
struct PosBatchQuery<'a> {
    now: Millis,
    token_hashes: &'a [String],
    lookup_codes: &'a [String],
    presented_codes: &'a [String],
}

/// Marker type for the prepared-statement cache.
#[derive(Debug)]
struct PosBatchQueryId;

impl QueryId for PosBatchQuery<'_> {
    type QueryId = PosBatchQueryId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for PosBatchQuery<'_> {
    type SqlType = Untyped;
}

impl RunQueryDsl<diesel::PgConnection> for PosBatchQuery<'_> {}

impl QueryFragment<Pg> for PosBatchQuery<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH p AS (SELECT ");
        out.push_bind_param::<BigInt, _>(&self.now)?;
        out.push_sql("::int8 AS now), req AS (SELECT r.ord, r.token_hash, r.code, r.presented FROM unnest(");
        out.push_bind_param::<Array<Text>, _>(self.token_hashes)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Text>, _>(self.lookup_codes)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Text>, _>(self.presented_codes)?;
        out.push_sql(POS_BATCH_SQL_TAIL);
        Ok(())
    }
}

/// The rest of the batch statement. `j` is the guard (the SQL form of `check_redeemable`, plus one winner per coupon
/// when a batch names a coupon twice: the earliest attempt); `upd` re-checks `status = 'issued'` under the row
/// lock, so a concurrent batch or scan-page redemption that won first makes this update skip the row.
const POS_BATCH_SQL_TAIL: &str = "::text[]) WITH ORDINALITY AS r(token_hash, code, presented, ord)), \
s AS (SELECT req.ord, st.id, st.merchant_id, st.openid, st.name, st.active, st.created_at \
      FROM req JOIN staff st ON st.api_token_hash = req.token_hash), \
c AS (SELECT req.ord, req.presented, cp.id, cp.campaign_id, cp.code, cp.owner_openid, cp.status, cp.redeemed_at, \
             cp.redeemed_by, cp.wechat_card_code, cp.version, cp.created_at, k.merchant_id AS k_merchant_id, \
             k.title AS k_title, k.description AS k_description, k.value_fen AS k_value_fen, \
             k.valid_from AS k_valid_from, k.valid_until AS k_valid_until, k.quantity AS k_quantity, \
             k.per_user_limit AS k_per_user_limit, k.wechat_card_id AS k_wechat_card_id, k.issued AS k_issued, \
             k.created_at AS k_created_at \
      FROM req JOIN coupons cp ON cp.code = req.code JOIN campaigns k ON k.id = cp.campaign_id), \
j AS (SELECT DISTINCT ON (c.id) c.id, c.ord, c.presented, s.id AS staff_id \
      FROM c JOIN s ON s.ord = c.ord CROSS JOIN p \
      WHERE c.status = 'issued' AND s.active AND s.merchant_id = c.k_merchant_id \
        AND c.k_valid_from <= p.now AND p.now <= c.k_valid_until \
      ORDER BY c.id, c.ord), \
upd AS (UPDATE coupons SET status = 'redeemed', redeemed_at = p.now, redeemed_by = j.staff_id, \
               version = coupons.version + 1 \
        FROM j CROSS JOIN p WHERE coupons.id = j.id AND coupons.status = 'issued' \
        RETURNING coupons.id, coupons.campaign_id, coupons.wechat_card_code, coupons.owner_openid, j.ord, j.staff_id, \
                  j.presented, p.now, coupons.code), \
red AS (INSERT INTO redemptions (coupon_id, staff_id, channel, created_at) \
        SELECT id, staff_id, 'pos', now FROM upd RETURNING id, coupon_id), \
obb AS (INSERT INTO outbox (kind, dedupe_key, coupon_id, payload, status, attempts, next_attempt_at, lease_until, \
                            created_at, updated_at) \
        SELECT 'busifavor_use', 'busifavor_use:' || upd.id, upd.id, \
               json_build_object('stock_id', ws.stock_id, 'coupon_code', upd.code, 'openid', cb.openid, \
                                 'use_request_no', red.id::text)::text, \
               'pending', 0, upd.now, 0, upd.now, upd.now \
        FROM upd JOIN red ON red.coupon_id = upd.id \
             JOIN coupon_card_bag cb ON cb.coupon_id = upd.id AND cb.received_at IS NOT NULL \
             JOIN wechat_pay_stocks ws ON ws.campaign_id = upd.campaign_id \
        ON CONFLICT (dedupe_key) DO NOTHING), \
ob AS (INSERT INTO outbox (kind, dedupe_key, coupon_id, payload, status, attempts, next_attempt_at, lease_until, \
                           created_at, updated_at) \
       SELECT 'card_consume', 'card_consume:' || upd.id, upd.id, \
              json_build_object('card_id', k.wechat_card_id, 'code', upd.wechat_card_code)::text, \
              'pending', 0, upd.now, 0, upd.now, upd.now \
       FROM upd JOIN campaigns k ON k.id = upd.campaign_id \
       WHERE k.wechat_card_id IS NOT NULL AND upd.wechat_card_code IS NOT NULL \
       ON CONFLICT (dedupe_key) DO NOTHING), \
obm AS (INSERT INTO outbox (kind, dedupe_key, coupon_id, payload, status, attempts, next_attempt_at, lease_until, \
                            created_at, updated_at) \
        SELECT 'redeemed_message', 'redeemed_message:' || upd.id, upd.id, json_build_object('coupon_id', upd.id)::text, \
               'pending', 0, upd.now, 0, upd.now, upd.now \
        FROM upd JOIN campaign_messages m ON m.campaign_id = upd.campaign_id \
        WHERE upd.owner_openid IS NOT NULL \
        ON CONFLICT (dedupe_key) DO NOTHING), \
aud AS (INSERT INTO audit_log (action, coupon_code, coupon_id, staff_id, outcome, channel, created_at) \
        SELECT 'redeem', presented, id, staff_id, 'redeemed', 'pos', now FROM upd) \
SELECT req.ord, s.id AS s_id, s.merchant_id AS s_merchant_id, s.openid AS s_openid, s.name AS s_name, \
       s.active AS s_active, s.created_at AS s_created_at, \
       c.id AS c_id, c.campaign_id AS c_campaign_id, c.code AS c_code, c.owner_openid AS c_owner_openid, \
       c.status AS c_status, c.redeemed_at AS c_redeemed_at, c.redeemed_by AS c_redeemed_by, \
       c.wechat_card_code AS c_wechat_card_code, c.version AS c_version, c.created_at AS c_created_at, \
       c.k_merchant_id, c.k_title, c.k_description, c.k_value_fen, c.k_valid_from, c.k_valid_until, c.k_quantity, \
       c.k_per_user_limit, c.k_wechat_card_id, c.k_issued, c.k_created_at, \
       (upd.id IS NOT NULL) AS redeemed \
FROM req LEFT JOIN s ON s.ord = req.ord LEFT JOIN c ON c.ord = req.ord LEFT JOIN upd ON upd.ord = req.ord \
ORDER BY req.ord";

/// One row of the batch statement: an attempt, its staff member and coupon as read, and whether it redeemed.
#[derive(Debug, QueryableByName)]
struct PosBatchRow {
    #[diesel(sql_type = BigInt)]
    ord: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    s_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    s_merchant_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    s_openid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    s_name: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    s_active: Option<bool>,
    #[diesel(sql_type = Nullable<BigInt>)]
    s_created_at: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    c_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    c_campaign_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    c_code: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c_owner_openid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c_status: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    c_redeemed_at: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    c_redeemed_by: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    c_wechat_card_code: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    c_version: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    c_created_at: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    k_merchant_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    k_title: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    k_description: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    k_value_fen: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    k_valid_from: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    k_valid_until: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    k_quantity: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    k_per_user_limit: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    k_wechat_card_id: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    k_issued: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    k_created_at: Option<i64>,
    #[diesel(sql_type = Bool)]
    redeemed: bool,
}

impl PosBatchRow {
    fn staff(&self, token_hash: &str) -> Option<StaffRow> {
        Some(StaffRow {
            id: self.s_id?,
            merchant_id: self.s_merchant_id?,
            openid: self.s_openid.clone()?,
            name: self.s_name.clone()?,
            active: self.s_active?,
            api_token_hash: token_hash.to_owned(),
            created_at: self.s_created_at?,
            // Not needed by a redemption (the POS reads who and where, not how they joined).
            user_id: None,
            pending: false,
            invite_id: None,
        })
    }

    fn coupon(&self) -> Option<(CouponRow, CampaignRow)> {
        let coupon = CouponRow {
            id: self.c_id?,
            campaign_id: self.c_campaign_id?,
            code: self.c_code.clone()?,
            owner_openid: self.c_owner_openid.clone(),
            status: self.c_status.clone()?,
            redeemed_at: self.c_redeemed_at,
            redeemed_by: self.c_redeemed_by,
            wechat_card_code: self.c_wechat_card_code.clone(),
            version: self.c_version?,
            created_at: self.c_created_at?,
        };
        let campaign = CampaignRow {
            id: coupon.campaign_id,
            merchant_id: self.k_merchant_id?,
            title: self.k_title.clone()?,
            description: self.k_description.clone(),
            value_fen: self.k_value_fen,
            valid_from: self.k_valid_from?,
            valid_until: self.k_valid_until?,
            quantity: self.k_quantity,
            per_user_limit: self.k_per_user_limit,
            wechat_card_id: self.k_wechat_card_id.clone(),
            issued: self.k_issued?,
            created_at: self.k_created_at?,
            // Redemption looks at neither the price nor an early end (ending voids or keeps coupons; validity
            // stays the campaign's).
            price_fen: None,
            ended_at: None,
            end_sold: None,
            end_reason: None,
        };
        Some((coupon, campaign))
    }
}

/// An attempt between the statement and its reply.
struct Pending {
    staff: StaffRow,
    found: Option<CouponWithCampaign>,
    card_code: Option<String>,
    judgement: Judgement,
}

fn redeem_batch_pg(conn: &mut DbConnection, attempts: &[PosAttempt], now: Millis) -> Result<PosResults, DbError> {
    let token_hashes: Vec<String> = attempts.iter().map(|a| a.token_hash.clone()).collect();
    let presented_codes: Vec<String> = attempts.iter().map(|a| presented(&a.code)).collect();
    // Codes are stored canonical (upper case); one that does not parse cannot match and is looked up as ''.
    let lookup_codes: Vec<String> = attempts
        .iter()
        .map(|a| CouponCode::parse(&a.code).map_or_else(String::new, |c| c.as_str().to_owned()))
        .collect();
    let DbConnection::Postgresql(pg) = &mut *conn else {
        return Err(DbError::Task("the POS batch statement is PostgreSQL's".into()));
    };
    let rows: Vec<PosBatchRow> = PosBatchQuery {
        now,
        token_hashes: &token_hashes,
        lookup_codes: &lookup_codes,
        presented_codes: &presented_codes,
    }
    .load(pg)?;
    // From here on the batch has committed: failures are reported per attempt, never retried as a batch.
    if rows.len() != attempts.len() {
        let message = format!("POS batch returned {} rows for {} attempts", rows.len(), attempts.len());
        return Ok(attempts.iter().map(|_| Err(DbError::Task(message.clone()))).collect());
    }

    let mut pending: Vec<Option<Pending>> = Vec::with_capacity(rows.len());
    for (row, attempt) in rows.iter().zip(attempts) {
        debug_assert_eq!(usize::try_from(row.ord).ok(), Some(pending.len() + 1));
        let Some(staff) = row.staff(&attempt.token_hash) else {
            pending.push(None);
            continue;
        };
        let (found, card_code) = match row.coupon() {
            Some((c, k)) => (
                c.to_domain().map(|coupon| (coupon, k.to_domain())),
                c.wechat_card_code.clone(),
            ),
            None => (None, None),
        };
        let judgement = redemption_core::judge(found.as_ref(), Some(&staff.to_domain()), now, row.redeemed);
        pending.push(Some(Pending {
            staff,
            found,
            card_code,
            judgement,
        }));
    }

    match settle(conn, &pending, attempts, now) {
        Ok(settled) => Ok(pending
            .into_iter()
            .zip(settled)
            .map(|(p, settled)| {
                Ok(match (p, settled) {
                    (Some(p), Some((outcome, name))) => reply(p, outcome, name),
                    _ => PosReply::UnknownToken,
                })
            })
            .collect()),
        Err(e) => {
            // The follow-ups failed: the attempts that redeemed need none of them and still get their reply.
            let message = format!("recording the POS outcomes failed: {e}");
            Ok(pending
                .into_iter()
                .map(|p| match p {
                    None => Ok(PosReply::UnknownToken),
                    Some(p) => match direct_outcome(&p.judgement, now) {
                        Some(outcome @ Outcome::Redeemed { .. }) => Ok(reply(p, outcome, None)),
                        _ => Err(DbError::Task(message.clone())),
                    },
                })
                .collect())
        }
    }
}

/// The outcome of a judgement that needs no re-read (None: a lost race).
fn direct_outcome(judgement: &Judgement, now: Millis) -> Option<Outcome> {
    match judgement {
        Judgement::Redeemed(o) | Judgement::Refused(o) => Some(o.clone()),
        Judgement::GuardMismatch { rules_say } => {
            tracing::error!(
                rules_say = rules_say.name(),
                "POS batch guard redeemed a coupon the rules refuse: the SQL guard and check_redeemable disagree"
            );
            Some(Outcome::Redeemed { at: now })
        }
        Judgement::LostRace => None,
    }
}

/// An attempt's outcome and, for [`Outcome::AlreadyRedeemed`] by staff, that staff member's name.
type Settled = (Outcome, Option<String>);

/// After the batch statement: re-reads the coupons of lost races, audits every attempt that did not redeem (one
/// multi-row insert) and looks up who redeemed the already-redeemed ones. Per attempt: its outcome and, for
/// [`Outcome::AlreadyRedeemed`] by staff, that staff member's name (None for unknown tokens).
fn settle(
    conn: &mut DbConnection,
    pending: &[Option<Pending>],
    attempts: &[PosAttempt],
    now: Millis,
) -> Result<Vec<Option<Settled>>, DbError> {
    // Attempts that lost a race report the winner: re-read each such coupon once (the batch has committed).
    let mut reread: HashMap<String, Option<Coupon>> = HashMap::new();
    for p in pending.iter().flatten() {
        if let (Judgement::LostRace, Some((coupon, _))) = (&p.judgement, &p.found)
            && !reread.contains_key(coupon.code.as_str())
        {
            let now_row = coupons_repo::coupon_by_code(conn, coupon.code.as_str())?;
            reread.insert(
                coupon.code.as_str().to_owned(),
                now_row.and_then(|(c, _)| c.to_domain()),
            );
        }
    }

    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(pending.len());
    let mut audits = Vec::new();
    for (p, attempt) in pending.iter().zip(attempts) {
        let Some(p) = p else {
            outcomes.push(None);
            continue;
        };
        let outcome = direct_outcome(&p.judgement, now).unwrap_or_else(|| {
            let code = p.found.as_ref().map(|(c, _)| c.code.as_str()).unwrap_or_default();
            redemption_core::lost_race_outcome(reread.get(code).and_then(Option::as_ref))
        });
        if !matches!(outcome, Outcome::Redeemed { .. }) {
            // The redeemed attempts' audit rows were written by the statement itself.
            audits.push((
                audit_log::action.eq("redeem"),
                audit_log::coupon_code.eq(Some(presented(&attempt.code))),
                audit_log::coupon_id.eq(p.found.as_ref().map(|(c, _)| c.id.0)),
                audit_log::staff_id.eq(Some(p.staff.id)),
                audit_log::outcome.eq(outcome.name()),
                audit_log::channel.eq(Some(Channel::Pos.as_str())),
                audit_log::created_at.eq(now),
            ));
        }
        outcomes.push(Some(outcome));
    }
    if !audits.is_empty()
        && let DbConnection::Postgresql(pg) = &mut *conn
    {
        // One multi-row insert (a PostgreSQL statement: the two-backend connection has no batch insert).
        diesel::insert_into(audit_log::table).values(&audits).execute(pg)?;
    }

    // Names of the staff who redeemed the coupons that were already redeemed (for the 409 body).
    let winner_ids: Vec<i64> = outcomes
        .iter()
        .flatten()
        .filter_map(|o| match o {
            Outcome::AlreadyRedeemed { by: Some(id), .. } => Some(id.0),
            _ => None,
        })
        .collect();
    let names: HashMap<i64, String> = if winner_ids.is_empty() {
        HashMap::new()
    } else {
        staff::table
            .filter(staff::id.eq_any(&winner_ids))
            .select((staff::id, staff::name))
            .load::<(i64, String)>(conn)?
            .into_iter()
            .collect()
    };
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.map(|outcome| {
                let name = match &outcome {
                    Outcome::AlreadyRedeemed { by: Some(id), .. } => names.get(&id.0).cloned(),
                    _ => None,
                };
                (outcome, name)
            })
        })
        .collect())
}

/// The reply to a judged attempt (the coupon as it is after a redemption, for the winner).
fn reply(p: Pending, outcome: Outcome, redeemed_by_name: Option<String>) -> PosReply {
    let found = match (&outcome, p.found) {
        (Outcome::Redeemed { at }, Some((coupon, campaign))) => Some((
            redemption_core::after_redemption(&coupon, Some(StaffId(p.staff.id)), *at),
            campaign,
        )),
        (_, found) => found,
    };
    PosReply::Done(Box::new(PosDone {
        staff: p.staff,
        outcome,
        found,
        card_code: p.card_code,
        redeemed_by_name,
    }))
}

/// POS attempts batched onto the pool ([`crate::platform::batcher`]): attempts that arrive while every slot is busy
/// share the next statement and its commit; each reply is sent after its batch committed.
#[derive(Clone, Debug)]
pub struct PosBatcher {
    batcher: Batcher<PosAttempt, Result<PosReply, DbError>>,
}

pub use crate::platform::batcher::BatchStats;
use crate::platform::batcher::Batcher;

impl PosBatcher {
    /// Starts the dispatcher on the current tokio runtime.
    pub fn start(
        pool: crate::db::Db,
        slots: usize,
        max_batch: usize,
        clock: std::sync::Arc<dyn wechat_core::Clock>,
    ) -> PosBatcher {
        let batcher = Batcher::start(
            slots,
            max_batch,
            move |attempts: Vec<PosAttempt>| run_jobs(&pool, &attempts, clock.as_ref()),
            |size| metrics::histogram!("wxkit_pos_batch_size").record(size as f64),
        );
        PosBatcher { batcher }
    }

    /// Batches and attempts so far (for benchmarks and operations).
    pub fn stats(&self) -> BatchStats {
        self.batcher.stats()
    }

    /// Runs one attempt (in whatever batch it joins) and returns its reply.
    pub async fn redeem(&self, attempt: PosAttempt) -> Result<PosReply, DbError> {
        self.batcher
            .submit(attempt)
            .await
            .map_err(|e| DbError::Task(e.to_string()))?
    }
}

fn run_jobs(pool: &crate::db::Db, attempts: &[PosAttempt], clock: &dyn wechat_core::Clock) -> PosResults {
    with_fallback(attempts, |batch| run_on_live_connection(pool, batch, clock))
}

/// Runs one batch on a pooled connection. When the connection turns out to be dead (its backend was terminated:
/// the statement never ran), it is discarded and the batch runs again on another one — at most once per pooled
/// connection plus one fresh, so that a pool full of dead connections costs no request its answer. A redemption
/// whose commit was lost with the connection is safe to run again: the guarded update redeems a coupon once.
fn run_on_live_connection(
    pool: &crate::db::Db,
    batch: &[PosAttempt],
    clock: &dyn wechat_core::Clock,
) -> Result<PosResults, DbError> {
    let tries = pool.max_size() + 1;
    let mut last = None;
    for _ in 0..tries {
        let mut conn = crate::db::checkout(pool)?;
        if batch.len() > 1 && !matches!(**conn, DbConnection::Postgresql(_)) {
            // No batch statement here: each attempt is its own transaction, so each runs — and, meeting a dead
            // connection, runs again — alone.
            drop(conn);
            return Ok(batch
                .iter()
                .map(|a| {
                    run_on_live_connection(pool, std::slice::from_ref(a), clock)
                        .and_then(|mut r| r.pop().unwrap_or_else(|| Err(DbError::Task("empty POS reply".into()))))
                })
                .collect());
        }
        match redeem_batch(&mut conn, batch, clock.now_ms()) {
            Err(e) if conn.note_error(&e) => last = Some(e),
            Ok(results) => {
                // A follow-up that failed on a connection that died after the commit: discard the connection.
                for e in results.iter().filter_map(|r| r.as_ref().err()) {
                    if conn.note_error(e) {
                        break;
                    }
                }
                return Ok(results);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| DbError::Task("no live database connection".into())))
}

/// Runs `attempts` as one batch; if the batch fails (the outer `Err`: nothing was written) for a reason other than a
/// lost connection and there was more than one attempt, runs each alone, so that one bad attempt — or a deadlock between two batches that share coupons —
/// fails alone. Per-attempt errors of a batch that ran are passed on, never retried. One result per attempt, in order.
fn with_fallback<T>(
    attempts: &[PosAttempt],
    mut run: impl FnMut(&[PosAttempt]) -> Result<Vec<Result<T, DbError>>, DbError>,
) -> Vec<Result<T, DbError>> {
    match run(attempts) {
        Ok(results) if results.len() == attempts.len() => results,
        Ok(results) => {
            let message = format!("{} replies for {} attempts", results.len(), attempts.len());
            attempts.iter().map(|_| Err(DbError::Task(message.clone()))).collect()
        }
        // A connection failure was already retried on other connections: running each attempt alone would only
        // wait on the database again, once per attempt.
        Err(e) if attempts.len() > 1 && !crate::db::is_connection_error(&e) => {
            tracing::warn!(error = %e, attempts = attempts.len(), "POS batch failed; retrying its attempts singly");
            attempts
                .iter()
                .map(|a| {
                    run(std::slice::from_ref(a))
                        .and_then(|mut r| r.pop().unwrap_or_else(|| Err(DbError::Task("empty POS reply".into()))))
                })
                .collect()
        }
        // One answer per attempt: the same failure for each (a caller left without one would see a 500).
        Err(e) => {
            let (message, unavailable) = (e.to_string(), crate::db::is_connection_error(&e));
            let mut results = vec![Err(e)];
            results.extend(attempts.iter().skip(1).map(|_| {
                Err(if unavailable {
                    DbError::Unavailable(message.clone())
                } else {
                    DbError::Task(message.clone())
                })
            }));
            results
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(code: &str) -> PosAttempt {
        PosAttempt {
            token_hash: "h".into(),
            code: code.into(),
        }
    }

    #[test]
    fn a_failed_batch_is_retried_attempt_by_attempt() {
        let attempts = vec![attempt("a"), attempt("poison"), attempt("c")];
        let mut calls = Vec::new();
        let results = with_fallback(&attempts, |batch| {
            calls.push(batch.len());
            if batch.iter().any(|a| a.code == "poison") {
                Err(DbError::Task("bad attempt".into()))
            } else {
                Ok(batch.iter().map(|a| Ok(a.code.clone())).collect())
            }
        });
        assert_eq!(calls, vec![3, 1, 1, 1]);
        assert_eq!(results[0].as_ref().ok(), Some(&"a".to_owned()));
        assert!(results[1].is_err());
        assert_eq!(results[2].as_ref().ok(), Some(&"c".to_owned()));
    }

    #[test]
    fn a_single_failure_is_not_retried_and_a_short_reply_fails_every_attempt() {
        let mut calls = 0;
        let results: Vec<Result<String, _>> = with_fallback(&[attempt("x")], |_| {
            calls += 1;
            Err(DbError::Task("down".into()))
        });
        assert_eq!((calls, results.len()), (1, 1));
        assert!(results[0].is_err());
        let results = with_fallback(&[attempt("x"), attempt("y")], |_| Ok(vec![Ok("only one".to_owned())]));
        assert!(results.iter().all(Result::is_err));
        assert_eq!(results.len(), 2);
    }

    #[test]
    fn per_attempt_errors_of_a_batch_that_ran_are_not_retried() {
        let mut calls = 0;
        let results = with_fallback(&[attempt("won"), attempt("audit failed")], |batch| {
            calls += 1;
            Ok(batch
                .iter()
                .map(|a| match a.code.as_str() {
                    "won" => Ok("200"),
                    _ => Err(DbError::Task("audit insert failed".into())),
                })
                .collect())
        });
        assert_eq!(
            calls, 1,
            "the batch committed: running it again would turn the winner's 200 into a 409"
        );
        assert_eq!(results[0].as_ref().ok(), Some(&"200"));
        assert!(results[1].is_err());
    }
}
