//! The console's queries: who runs which merchant, invites, staff with their figures, the dashboard's numbers, and
//! the audit rows of console actions.

use crate::db::schema::{
    audit_log, campaigns, coupon_purchases, coupons, invites, merchant_members, merchants, pay_orders, pay_refunds,
    redemptions, staff, users,
};
use crate::db::{DbConnection, DbError};
use crate::features::merchants::repo::{MerchantRow, StaffRow};
use diesel::prelude::*;

/// What a person is at a merchant, from most to least power.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Everything, roles and refunds included.
    Owner,
    /// Everything but roles and refunds.
    Manager,
    /// Redeems coupons; no console.
    Staff,
}

impl Role {
    /// Parses `owner`, `manager`, `staff`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "manager" => Some(Role::Manager),
            "staff" => Some(Role::Staff),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Manager => "manager",
            Role::Staff => "staff",
        }
    }

    /// Its name in both languages.
    pub fn words(self) -> &'static str {
        match self {
            Role::Owner => "店主 · owner",
            Role::Manager => "店长 · manager",
            Role::Staff => "店员 · staff",
        }
    }
}

/// The merchants a person runs (owner or manager), by name.
pub fn memberships(conn: &mut DbConnection, user_id: i64) -> Result<Vec<(MerchantRow, Role)>, DbError> {
    let rows: Vec<(MerchantRow, String)> = merchant_members::table
        .inner_join(merchants::table)
        .filter(merchant_members::user_id.eq(user_id))
        .select((merchants::all_columns, merchant_members::role))
        .order(merchants::id)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(m, r)| Role::parse(&r).map(|r| (m, r)))
        .collect())
}

/// A person's role at a merchant (owner or manager), if any.
pub fn role_at(
    conn: &mut DbConnection,
    merchant_id: i64,
    user_id: i64,
) -> Result<Option<(MerchantRow, Role)>, DbError> {
    Ok(memberships(conn, user_id)?
        .into_iter()
        .find(|(m, _)| m.id == merchant_id))
}

/// Makes a person owner or manager of a merchant (a second invite never lowers a role).
pub fn add_member(
    conn: &mut DbConnection,
    merchant_id: i64,
    user_id: i64,
    role: Role,
    now: i64,
) -> Result<(), DbError> {
    let existing: Option<String> = merchant_members::table
        .find((merchant_id, user_id))
        .select(merchant_members::role)
        .first(conn)
        .optional()?;
    match existing.as_deref().and_then(Role::parse) {
        Some(had) if had <= role => Ok(()),
        Some(_) => {
            diesel::update(merchant_members::table.find((merchant_id, user_id)))
                .set(merchant_members::role.eq(role.as_str()))
                .execute(conn)?;
            Ok(())
        }
        None => {
            diesel::insert_into(merchant_members::table)
                .values((
                    merchant_members::merchant_id.eq(merchant_id),
                    merchant_members::user_id.eq(user_id),
                    merchant_members::role.eq(role.as_str()),
                    merchant_members::created_at.eq(now),
                ))
                .execute(conn)?;
            Ok(())
        }
    }
}

/// People who run a merchant, with their user rows.
pub fn members(
    conn: &mut DbConnection,
    merchant_id: i64,
) -> Result<Vec<(crate::features::auth::repo::User, Role)>, DbError> {
    let rows: Vec<(crate::features::auth::repo::User, String)> = merchant_members::table
        .inner_join(users::table)
        .filter(merchant_members::merchant_id.eq(merchant_id))
        .select((crate::features::auth::repo::User::as_select(), merchant_members::role))
        .order(merchant_members::created_at)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(u, r)| Role::parse(&r).map(|r| (u, r)))
        .collect())
}

/// An invite row (without its QR image).
#[derive(Clone, Debug, Queryable)]
pub struct InviteRow {
    /// Id.
    pub id: i64,
    /// Merchant.
    pub merchant_id: i64,
    /// staff | manager | owner.
    pub role: String,
    /// How many may join with it.
    pub max_uses: i64,
    /// How many did.
    pub uses: i64,
    /// Joining waits for the owner's approval.
    pub needs_approval: bool,
    /// Ms.
    pub expires_at: i64,
    /// Ms, when revoked.
    pub revoked_at: Option<i64>,
    /// Ms.
    pub created_at: i64,
}

impl InviteRow {
    /// Whether it can still be used at `now`.
    pub fn usable(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at && self.uses < self.max_uses
    }
}

type InviteColumns = (
    invites::id,
    invites::merchant_id,
    invites::role,
    invites::max_uses,
    invites::uses,
    invites::needs_approval,
    invites::expires_at,
    invites::revoked_at,
    invites::created_at,
);

const INVITE_COLUMNS: InviteColumns = (
    invites::id,
    invites::merchant_id,
    invites::role,
    invites::max_uses,
    invites::uses,
    invites::needs_approval,
    invites::expires_at,
    invites::revoked_at,
    invites::created_at,
);

/// A new invite.
#[derive(Debug)]
pub struct NewInvite<'a> {
    /// Merchant.
    pub merchant_id: i64,
    /// sha256 hex of the token.
    pub token_hash: &'a str,
    /// The role it gives.
    pub role: Role,
    /// How many may join.
    pub max_uses: i64,
    /// Wait for approval.
    pub needs_approval: bool,
    /// Ms.
    pub expires_at: i64,
    /// Who made it (`None`: the platform admin).
    pub created_by: Option<i64>,
    /// Its QR code.
    pub qr_png: &'a [u8],
}

/// Stores an invite; returns its id.
pub fn create_invite(conn: &mut DbConnection, i: &NewInvite<'_>, now: i64) -> Result<i64, DbError> {
    Ok(crate::insert_returning!(
        conn,
        diesel::insert_into(invites::table).values((
            invites::merchant_id.eq(i.merchant_id),
            invites::token_hash.eq(i.token_hash),
            invites::role.eq(i.role.as_str()),
            invites::max_uses.eq(i.max_uses),
            invites::uses.eq(0i64),
            invites::needs_approval.eq(i.needs_approval),
            invites::expires_at.eq(i.expires_at),
            invites::created_by.eq(i.created_by),
            invites::created_at.eq(now),
            invites::qr_png.eq(i.qr_png),
        )),
        invites::table,
        invites::id
    )?)
}

/// A merchant's invites, newest first.
pub fn invites_of(conn: &mut DbConnection, merchant_id: i64) -> Result<Vec<InviteRow>, DbError> {
    Ok(invites::table
        .filter(invites::merchant_id.eq(merchant_id))
        .select(INVITE_COLUMNS)
        .order(invites::id.desc())
        .limit(50)
        .load(conn)?)
}

/// An invite by its token's hash, with its merchant.
pub fn invite_by_hash(conn: &mut DbConnection, token_hash: &str) -> Result<Option<(InviteRow, MerchantRow)>, DbError> {
    Ok(invites::table
        .inner_join(merchants::table.on(merchants::id.eq(invites::merchant_id)))
        .filter(invites::token_hash.eq(token_hash))
        .select((INVITE_COLUMNS, merchants::all_columns))
        .first(conn)
        .optional()?)
}

/// An invite's QR code, if the invite is the merchant's.
pub fn invite_qr(conn: &mut DbConnection, merchant_id: i64, id: i64) -> Result<Option<Vec<u8>>, DbError> {
    Ok(invites::table
        .filter(invites::id.eq(id).and(invites::merchant_id.eq(merchant_id)))
        .select(invites::qr_png)
        .first(conn)
        .optional()?)
}

/// Revokes a merchant's invite; true if it was usable-or-not but not yet revoked.
pub fn revoke_invite(conn: &mut DbConnection, merchant_id: i64, id: i64, now: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        invites::table.filter(
            invites::id
                .eq(id)
                .and(invites::merchant_id.eq(merchant_id))
                .and(invites::revoked_at.is_null()),
        ),
    )
    .set(invites::revoked_at.eq(now))
    .execute(conn)?
        == 1)
}

/// Takes one use of an invite if it is still usable at `now` (a conditional update: two people joining at once on a
/// single-use invite cannot both get in). True if taken.
pub fn take_invite_use(conn: &mut DbConnection, id: i64, now: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        invites::table.filter(
            invites::id
                .eq(id)
                .and(invites::revoked_at.is_null())
                .and(invites::expires_at.gt(now))
                .and(invites::uses.lt(invites::max_uses)),
        ),
    )
    .set(invites::uses.eq(invites::uses + 1))
    .execute(conn)?
        == 1)
}

/// A staff member as the console lists them.
#[derive(Clone, Debug)]
pub struct StaffLine {
    /// The row.
    pub staff: StaffRow,
    /// Their avatar (joined by invite, when WeChat gave one).
    pub avatar_url: Option<String>,
    /// How many coupons they redeemed.
    pub redemptions: i64,
}

/// A merchant's staff (removed ones last), with avatars and redemption counts.
pub fn staff_lines(conn: &mut DbConnection, merchant_id: i64) -> Result<Vec<StaffLine>, DbError> {
    let rows: Vec<(StaffRow, Option<String>)> = staff::table
        .left_join(users::table.on(staff::user_id.eq(users::id.nullable())))
        .filter(staff::merchant_id.eq(merchant_id))
        .select((staff::all_columns, users::avatar_url.nullable()))
        .order((staff::active.desc(), staff::pending.desc(), staff::id))
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|(s, _)| s.id).collect();
    let counts: Vec<(Option<i64>, i64)> = redemptions::table
        .filter(redemptions::staff_id.eq_any(&ids))
        .group_by(redemptions::staff_id)
        .select((redemptions::staff_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(s, avatar)| StaffLine {
            redemptions: counts.iter().find(|(id, _)| *id == Some(s.id)).map_or(0, |(_, n)| *n),
            avatar_url: avatar.filter(|a| a.starts_with("https://")),
            staff: s,
        })
        .collect())
}

/// Approves a pending staff member of the merchant; true if one was pending.
pub fn approve_staff(conn: &mut DbConnection, merchant_id: i64, id: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        staff::table.filter(
            staff::id
                .eq(id)
                .and(staff::merchant_id.eq(merchant_id))
                .and(staff::pending.eq(true)),
        ),
    )
    .set((staff::pending.eq(false), staff::active.eq(true)))
    .execute(conn)?
        == 1)
}

/// Removes a staff member of the merchant (active or pending); true if one was.
pub fn remove_staff(conn: &mut DbConnection, merchant_id: i64, id: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        staff::table.filter(
            staff::id
                .eq(id)
                .and(staff::merchant_id.eq(merchant_id))
                .and(staff::active.eq(true).or(staff::pending.eq(true))),
        ),
    )
    .set((staff::pending.eq(false), staff::active.eq(false)))
    .execute(conn)?
        == 1)
}

/// The dashboard's figures for one period.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Coupons redeemed.
    pub redemptions: i64,
    /// Paid, fen (orders paid in the period).
    pub sales_fen: i64,
    /// Orders paid.
    pub orders: i64,
    /// Refunded, fen (refunds succeeded or under way, asked for in the period).
    pub refunds_fen: i64,
    /// Coupons issued (given or bought).
    pub issued: i64,
}

/// A merchant's figures between `from` and `to` (ms).
pub fn figures(conn: &mut DbConnection, merchant_id: i64, from: i64, to: i64) -> Result<Figures, DbError> {
    let of_merchant = campaigns::table
        .filter(campaigns::merchant_id.eq(merchant_id))
        .select(campaigns::id);
    let redeemed: i64 = redemptions::table
        .inner_join(coupons::table.on(coupons::id.eq(redemptions::coupon_id)))
        .filter(coupons::campaign_id.eq_any(of_merchant))
        .filter(redemptions::created_at.ge(from).and(redemptions::created_at.lt(to)))
        .count()
        .get_result(conn)?;
    let bought = coupon_purchases::table
        .filter(coupon_purchases::campaign_id.eq_any(of_merchant))
        .select(coupon_purchases::out_trade_no);
    let paid: Vec<i64> = pay_orders::table
        .filter(pay_orders::out_trade_no.eq_any(bought))
        .filter(pay_orders::paid_at.ge(from).and(pay_orders::paid_at.lt(to)))
        .select(pay_orders::total_fee)
        .load(conn)?;
    let bought = coupon_purchases::table
        .filter(coupon_purchases::campaign_id.eq_any(of_merchant))
        .select(coupon_purchases::out_trade_no);
    let refunds: Vec<i64> = pay_refunds::table
        .filter(pay_refunds::out_trade_no.eq_any(bought))
        .filter(pay_refunds::status.eq_any(["requested", "succeeded"]))
        .filter(pay_refunds::created_at.ge(from).and(pay_refunds::created_at.lt(to)))
        .select(pay_refunds::refund_fee)
        .load(conn)?;
    let issued: i64 = coupons::table
        .filter(coupons::campaign_id.eq_any(of_merchant))
        .filter(coupons::created_at.ge(from).and(coupons::created_at.lt(to)))
        .count()
        .get_result(conn)?;
    Ok(Figures {
        redemptions: redeemed,
        sales_fen: paid.iter().sum(),
        orders: i64::try_from(paid.len()).unwrap_or(i64::MAX),
        refunds_fen: refunds.iter().sum(),
        issued,
    })
}

/// Coupons of the merchant that can still be used at `now` (issued, campaign not over).
pub fn outstanding(conn: &mut DbConnection, merchant_id: i64, now: i64) -> Result<i64, DbError> {
    let live = campaigns::table
        .filter(campaigns::merchant_id.eq(merchant_id))
        .filter(campaigns::valid_until.ge(now))
        .select(campaigns::id);
    Ok(coupons::table
        .filter(coupons::campaign_id.eq_any(live))
        .filter(coupons::status.eq("issued"))
        .count()
        .get_result(conn)?)
}

/// The merchant's coupons whose code ends with `tail` (the last group a customer reads out), newest first.
pub fn coupons_ending_with(
    conn: &mut DbConnection,
    merchant_id: i64,
    tail: &str,
    limit: i64,
) -> Result<
    Vec<(
        crate::features::coupons::repo::CouponRow,
        crate::features::merchants::repo::CampaignRow,
    )>,
    DbError,
> {
    let pattern = format!("%{tail}");
    Ok(coupons::table
        .inner_join(campaigns::table)
        .filter(campaigns::merchant_id.eq(merchant_id))
        .filter(coupons::code.like(pattern))
        .select((coupons::all_columns, campaigns::all_columns))
        .order(coupons::id.desc())
        .limit(limit)
        .load(conn)?)
}

/// An audit row of a console action.
pub fn audit(
    conn: &mut DbConnection,
    action: &str,
    merchant_id: i64,
    actor: i64,
    detail: &str,
    coupon: Option<(i64, &str)>,
    now: i64,
) -> Result<(), DbError> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::action.eq(action),
            audit_log::outcome.eq("done"),
            audit_log::channel.eq(Some("console")),
            audit_log::detail.eq(Some(detail)),
            audit_log::actor_user_id.eq(Some(actor)),
            audit_log::merchant_id.eq(Some(merchant_id)),
            audit_log::coupon_id.eq(coupon.map(|c| c.0)),
            audit_log::coupon_code.eq(coupon.map(|c| c.1)),
            audit_log::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// A recent action: when (ms), what, its detail, who (nickname).
pub type Action = (i64, String, Option<String>, Option<String>);

/// The merchant's latest console actions (for the dashboard's "recent changes").
pub fn recent_actions(conn: &mut DbConnection, merchant_id: i64, n: i64) -> Result<Vec<Action>, DbError> {
    Ok(audit_log::table
        .left_join(users::table.on(audit_log::actor_user_id.eq(users::id.nullable())))
        .filter(audit_log::merchant_id.eq(merchant_id))
        .select((
            audit_log::created_at,
            audit_log::action,
            audit_log::detail,
            users::nickname.nullable(),
        ))
        .order(audit_log::id.desc())
        .limit(n)
        .load(conn)?)
}

/// People who hold the merchant's coupons (to issue one to them by name, never by a typed openid): (openid, label).
pub fn customers(conn: &mut DbConnection, merchant_id: i64) -> Result<Vec<(String, String)>, DbError> {
    let of_merchant = campaigns::table
        .filter(campaigns::merchant_id.eq(merchant_id))
        .select(campaigns::id);
    let owners: Vec<Option<String>> = coupons::table
        .filter(coupons::campaign_id.eq_any(of_merchant))
        .filter(coupons::owner_openid.is_not_null())
        .select(coupons::owner_openid)
        .distinct()
        .limit(200)
        .load(conn)?;
    let owners: Vec<String> = owners.into_iter().flatten().collect();
    let named: Vec<(Option<String>, Option<String>, Option<String>)> = users::table
        .filter(users::openid.eq_any(&owners).or(users::mini_openid.eq_any(&owners)))
        .select((users::openid, users::mini_openid, users::nickname))
        .load(conn)?;
    Ok(owners
        .into_iter()
        .map(|o| {
            let nick = named
                .iter()
                .find(|(a, b, _)| a.as_deref() == Some(o.as_str()) || b.as_deref() == Some(o.as_str()))
                .and_then(|(_, _, n)| n.clone());
            let tail: String = o.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
            let label = match nick {
                Some(n) => format!("{n} (…{tail})"),
                None => format!("顾客 customer …{tail}"),
            };
            (o, label)
        })
        .collect())
}
