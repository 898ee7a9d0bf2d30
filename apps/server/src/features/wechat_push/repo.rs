//! Server pushes, applied exactly once: the push's `(timestamp, nonce)`, its dedupe record and its effect commit in
//! one transaction, and the push is acknowledged only after that commit. A crash at any point before the commit
//! leaves nothing behind, so WeChat's re-send is applied; a re-send after the commit is recognised and changes
//! nothing.

use crate::db::schema::{audit_log, coupons, push_events, push_nonces};
use crate::db::{DbConnection, DbError};
use crate::features::coupons::repo::{self as coupons_repo, DbRedemptionStore};
use diesel::prelude::*;
use redemption_core::{Channel, Outcome};

/// The freshness record of one push.
#[derive(Clone, Debug)]
pub struct PushNonce {
    /// The `timestamp` query parameter, Unix seconds.
    pub timestamp: i64,
    /// The `nonce` query parameter.
    pub nonce: String,
    /// sha256 hex of the body as received.
    pub body_sha256: String,
}

/// What a push asks of us.
#[derive(Clone, Debug)]
pub enum PushEffect {
    /// `user_get_card` with an `OuterStr`: link the user's card code to our coupon.
    LinkCard {
        /// Our coupon code (`OuterStr`).
        coupon_code: String,
        /// `CardId`.
        card_id: String,
        /// `UserCardCode`.
        card_code: String,
        /// `FromUserName`: who got the card.
        from_user: String,
    },
    /// `user_consume_card`: the code was consumed at WeChat's side; redeem the linked coupon.
    ConsumeCard {
        /// `UserCardCode`.
        card_code: String,
    },
    /// A follow code's scene (`subscribe` with `qrscene_fc{id}`, or `SCAN`): give the user one coupon of the
    /// campaign, within its limits.
    FollowCoupon {
        /// The campaign.
        campaign_id: i64,
        /// `FromUserName`: who scanned.
        openid: String,
    },
    /// `trade_manage_remind_shipping` (the mini program's push): upload the order's shipping again.
    Reship {
        /// `merchant_trade_no`: our order number.
        out_trade_no: String,
    },
    /// Nothing to do (recorded so that re-sends are recognised).
    Nothing,
}

/// What a follow code's push did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowOutcome {
    /// A coupon was issued: its code and the campaign's title.
    Issued {
        /// The coupon code.
        code: String,
        /// The campaign's title.
        title: String,
    },
    /// The campaign's rules refused it (sold out, ended, the user has the most they may hold).
    Refused(redemption_core::IssueError),
    /// The campaign does not exist (any more).
    NoCampaign,
}

/// How a push was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushApplied {
    /// Applied now; what it did.
    Applied(&'static str),
    /// A follow code's push, applied now.
    Followed(FollowOutcome),
    /// Seen before (a re-send): nothing changed.
    Duplicate,
    /// The `(timestamp, nonce)` was used before with another body: a forged or replayed push.
    Replay,
}

/// Inserts in a savepoint, so that a duplicate key does not abort the enclosing PostgreSQL transaction.
fn insert_once(
    conn: &mut DbConnection,
    insert: impl FnOnce(&mut DbConnection) -> QueryResult<usize>,
) -> Result<bool, DbError> {
    match conn.transaction(insert) {
        Ok(_) => Ok(true),
        Err(e) if crate::db::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Records and applies a push in one transaction.
pub fn apply_push(
    conn: &mut DbConnection,
    nonce: &PushNonce,
    dedupe_key: &str,
    effect: &PushEffect,
    now: i64,
) -> Result<PushApplied, DbError> {
    conn.transaction::<_, DbError, _>(|conn| {
        let fresh = insert_once(conn, |c| {
            diesel::insert_into(push_nonces::table)
                .values((
                    push_nonces::timestamp.eq(nonce.timestamp),
                    push_nonces::nonce.eq(&nonce.nonce),
                    push_nonces::body_sha256.eq(&nonce.body_sha256),
                    push_nonces::created_at.eq(now),
                ))
                .execute(c)
        })?;
        if !fresh {
            let seen: String = push_nonces::table
                .find((nonce.timestamp, &nonce.nonce))
                .select(push_nonces::body_sha256)
                .first(conn)?;
            return Ok(if seen == nonce.body_sha256 {
                PushApplied::Duplicate
            } else {
                PushApplied::Replay
            });
        }
        let first = insert_once(conn, |c| {
            diesel::insert_into(push_events::table)
                .values((push_events::dedupe_key.eq(dedupe_key), push_events::created_at.eq(now)))
                .execute(c)
        })?;
        if !first {
            return Ok(PushApplied::Duplicate);
        }
        if let PushEffect::FollowCoupon { campaign_id, openid } = effect {
            use crate::features::coupons::repo::IssueFailure;
            let outcome = match coupons_repo::issue_coupon(conn, *campaign_id, Some(openid.as_str()), now) {
                Ok((coupon, campaign)) => FollowOutcome::Issued {
                    code: coupon.code,
                    title: campaign.title,
                },
                Err(IssueFailure::Rule(rule)) => FollowOutcome::Refused(rule),
                Err(IssueFailure::NotFound) => FollowOutcome::NoCampaign,
                Err(IssueFailure::Db(e)) => return Err(e),
            };
            return Ok(PushApplied::Followed(outcome));
        }
        let done = match effect {
            PushEffect::Nothing | PushEffect::FollowCoupon { .. } => "nothing to do",
            PushEffect::Reship { out_trade_no } => {
                let code: Option<String> = crate::db::schema::coupon_purchases::table
                    .find(out_trade_no)
                    .select(crate::db::schema::coupon_purchases::coupon_code)
                    .first::<Option<String>>(conn)
                    .optional()?
                    .flatten();
                let coupon = match code {
                    Some(code) => coupons_repo::coupon_by_code(conn, &code)?.map(|(c, _)| c.id),
                    None => None,
                };
                match coupon {
                    Some(id) if crate::features::outbox::repo::requeue_upload_shipping(conn, id, now)? => {
                        "shipping upload asked again"
                    }
                    _ => "a shipping reminder for an order we did not ship",
                }
            }
            PushEffect::ConsumeCard { card_code } => match coupons_repo::coupon_by_card_code(conn, card_code)? {
                None => "consumed card code is not linked to a coupon",
                Some(row) => {
                    let (outcome, _) =
                        redemption_core::redeem(&mut DbRedemptionStore(conn), &row.code, None, Channel::Wechat, now)?;
                    metrics::counter!(
                        "wxkit_redemptions_total",
                        "channel" => Channel::Wechat.as_str(),
                        "outcome" => outcome.name()
                    )
                    .increment(1);
                    match outcome {
                        Outcome::Redeemed { .. } => "coupon redeemed at WeChat's side",
                        _ => "card consumed at WeChat's side; coupon was not redeemable",
                    }
                }
            },
            PushEffect::LinkCard {
                coupon_code,
                card_id,
                card_code,
                from_user,
            } => link_card(conn, coupon_code, card_id, card_code, from_user, now)?,
        };
        Ok(PushApplied::Applied(done))
    })
}

/// Links a card code to a coupon if, and only if, the coupon's campaign is backed by that very card, the coupon is
/// still issued, the user who got the card owns the coupon (when it has an owner), and neither the coupon nor the
/// card code is linked to something else. `OuterStr` is not covered by the cardExt signature — any WeChat user can
/// put any coupon code there — so every check matters. Each decision is audited.
fn link_card(
    conn: &mut DbConnection,
    coupon_code: &str,
    card_id: &str,
    card_code: &str,
    from_user: &str,
    now: i64,
) -> Result<&'static str, DbError> {
    let code = coupon_code.trim().to_ascii_uppercase();
    let found = coupons_repo::coupon_by_code(conn, &code)?;
    let refusal = match &found {
        None => Some("refused_unknown_coupon"),
        Some((_, campaign)) if campaign.wechat_card_id.is_none() => Some("refused_not_card_backed"),
        Some((_, campaign)) if campaign.wechat_card_id.as_deref() != Some(card_id) => Some("refused_wrong_card"),
        Some((coupon, _)) if coupon.owner_openid.as_deref().is_some_and(|o| o != from_user) => {
            Some("refused_not_owner")
        }
        Some((coupon, _)) if coupon.status != "issued" => Some("refused_not_issued"),
        Some((coupon, _)) if coupon.wechat_card_code.as_deref() == Some(card_code) => None,
        Some((coupon, _)) if coupon.wechat_card_code.is_some() => Some("refused_already_linked"),
        Some(_) => coupons_repo::coupon_by_card_code(conn, card_code)?.map(|_| "refused_card_code_in_use"),
    };
    let coupon_id = found.as_ref().map(|(c, _)| c.id);
    let outcome = match refusal {
        Some(reason) => reason,
        None => {
            if let Some(id) = coupon_id {
                diesel::update(coupons::table.filter(coupons::id.eq(id).and(coupons::wechat_card_code.is_null())))
                    .set(coupons::wechat_card_code.eq(card_code))
                    .execute(conn)?;
            }
            "linked"
        }
    };
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::action.eq("card_link"),
            audit_log::coupon_code.eq(Some(redemption_core::audit_code(coupon_code))),
            audit_log::coupon_id.eq(coupon_id),
            audit_log::staff_id.eq(None::<i64>),
            audit_log::outcome.eq(outcome),
            audit_log::channel.eq(Some(Channel::Wechat.as_str())),
            audit_log::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(if outcome == "linked" {
        "card code linked to the coupon"
    } else {
        "card link refused (audited)"
    })
}

/// Forgets nonces older than the timestamp window (a push that old is refused as stale anyway) and dedupe records
/// older than `keep_events_ms`. Returns the rows removed.
pub fn prune(conn: &mut DbConnection, now_ms: i64, window_secs: i64, keep_events_ms: i64) -> Result<usize, DbError> {
    let oldest_ts = now_ms / 1000 - window_secs - 60;
    let n = diesel::delete(push_nonces::table.filter(push_nonces::timestamp.lt(oldest_ts))).execute(conn)?;
    let m =
        diesel::delete(push_events::table.filter(push_events::created_at.lt(now_ms - keep_events_ms))).execute(conn)?;
    Ok(n + m)
}
