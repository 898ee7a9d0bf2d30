//! Merchants, staff and campaigns on both backends. Queries are functions over a connection.

use crate::db::schema::{campaigns, merchants, staff};
use crate::db::{DbConnection, DbError};
use diesel::prelude::*;
use redemption_core::{Campaign, CampaignId, MerchantId, Millis, Staff, StaffId};
use serde::Serialize;

/// A merchant row.
#[derive(Clone, Debug, Queryable, Serialize)]
pub struct MerchantRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Created, ms.
    pub created_at: i64,
}

/// A staff row.
#[derive(Clone, Debug, Queryable)]
pub struct StaffRow {
    /// Id.
    pub id: i64,
    /// Merchant.
    pub merchant_id: i64,
    /// openid.
    pub openid: String,
    /// Name.
    pub name: String,
    /// Active.
    pub active: bool,
    /// sha256 hex of the API token.
    pub api_token_hash: String,
    /// Created, ms.
    pub created_at: i64,
    /// The person (joined by invite).
    pub user_id: Option<i64>,
    /// Waiting for the owner's approval.
    pub pending: bool,
    /// The invite they joined by.
    pub invite_id: Option<i64>,
}

impl StaffRow {
    /// The domain view.
    pub fn to_domain(&self) -> Staff {
        Staff {
            id: StaffId(self.id),
            merchant_id: MerchantId(self.merchant_id),
            openid: self.openid.clone(),
            name: self.name.clone(),
            active: self.active,
        }
    }
}

/// A campaign row.
#[derive(Clone, Debug, Queryable)]
pub struct CampaignRow {
    /// Id.
    pub id: i64,
    /// Merchant.
    pub merchant_id: i64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Value in fen.
    pub value_fen: Option<i64>,
    /// Valid from, ms.
    pub valid_from: i64,
    /// Valid until, ms.
    pub valid_until: i64,
    /// Total coupons.
    pub quantity: Option<i64>,
    /// Coupons per owner.
    pub per_user_limit: Option<i64>,
    /// Backing WeChat card.
    pub wechat_card_id: Option<String>,
    /// Coupons issued so far.
    pub issued: i64,
    /// Created, ms.
    pub created_at: i64,
    /// Price in fen when customers can buy its coupons (`/c/buy/{id}`).
    pub price_fen: Option<i64>,
    /// Ended early at, ms (its validity is kept: sold coupons the shop kept stay usable until `valid_until`).
    pub ended_at: Option<i64>,
    /// What the end did with sold, unused coupons: `keep` or `refund`.
    pub end_sold: Option<String>,
    /// Why it ended.
    pub end_reason: Option<String>,
}

impl CampaignRow {
    /// The domain view.
    pub fn to_domain(&self) -> Campaign {
        Campaign {
            id: CampaignId(self.id),
            merchant_id: MerchantId(self.merchant_id),
            title: self.title.clone(),
            description: self.description.clone(),
            value_fen: self.value_fen.and_then(|v| u64::try_from(v).ok()),
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            quantity: self.quantity.and_then(|v| u64::try_from(v).ok()),
            per_user_limit: self.per_user_limit.and_then(|v| u32::try_from(v).ok()),
            wechat_card_id: self.wechat_card_id.clone(),
        }
    }

    /// The domain view for issuing and buying: an ended campaign issues nothing from its end on (its coupons keep
    /// the campaign's own validity).
    pub fn to_domain_for_issuing(&self) -> Campaign {
        let mut c = self.to_domain();
        if let Some(end) = self.ended_at {
            c.valid_until = c.valid_until.min(end - 1);
        }
        c
    }

    /// Whether the shop ended it early (at or before `now`).
    pub fn ended(&self, now: Millis) -> bool {
        self.ended_at.is_some_and(|e| e <= now)
    }
}

/// Creates a merchant.
pub fn create_merchant(conn: &mut DbConnection, name: &str, now: Millis) -> Result<MerchantRow, DbError> {
    Ok(crate::insert_returning!(
        conn,
        diesel::insert_into(merchants::table).values((merchants::name.eq(name), merchants::created_at.eq(now))),
        merchants::table,
        merchants::all_columns
    )?)
}

/// A merchant by id.
pub fn merchant(conn: &mut DbConnection, id: i64) -> Result<Option<MerchantRow>, DbError> {
    Ok(merchants::table.find(id).first(conn).optional()?)
}

/// All merchants.
pub fn list_merchants(conn: &mut DbConnection) -> Result<Vec<MerchantRow>, DbError> {
    Ok(merchants::table.order(merchants::id).load(conn)?)
}

/// Adds a staff member (or re-activates and re-keys a removed one with the same openid). Fails with
/// `Ok(None)` when the openid is already active staff.
pub fn add_staff(
    conn: &mut DbConnection,
    merchant_id: i64,
    openid: &str,
    name: &str,
    token_hash: &str,
    now: Millis,
) -> Result<Option<StaffRow>, DbError> {
    crate::db::write_transaction(conn, |conn| {
        add_staff_once(conn, merchant_id, openid, name, token_hash, now)
    })
}

fn add_staff_once(
    conn: &mut DbConnection,
    merchant_id: i64,
    openid: &str,
    name: &str,
    token_hash: &str,
    now: Millis,
) -> Result<Option<StaffRow>, DbError> {
    conn.transaction(|conn| {
        let existing: Option<StaffRow> = staff::table
            .filter(staff::openid.eq(openid).and(staff::merchant_id.eq(merchant_id)))
            .first(conn)
            .optional()?;
        match existing {
            Some(row) if row.active => Ok(None),
            Some(row) => Ok(Some(crate::update_returning!(
                conn,
                diesel::update(staff::table.find(row.id)).set((
                    staff::name.eq(name),
                    staff::active.eq(true),
                    staff::pending.eq(false),
                    staff::api_token_hash.eq(token_hash),
                )),
                staff::table,
                row.id,
                staff::all_columns
            )?)),
            None => match crate::insert_returning!(
                conn,
                diesel::insert_into(staff::table).values((
                    staff::merchant_id.eq(merchant_id),
                    staff::openid.eq(openid),
                    staff::name.eq(name),
                    staff::active.eq(true),
                    staff::api_token_hash.eq(token_hash),
                    staff::created_at.eq(now),
                )),
                staff::table,
                staff::all_columns
            ) {
                Ok(row) => Ok(Some(row)),
                Err(e) if crate::db::is_unique_violation(&e) => Ok(None),
                Err(e) => Err(e.into()),
            },
        }
    })
}

/// Deactivates a staff member; returns whether an active one was found.
pub fn remove_staff(conn: &mut DbConnection, id: i64) -> Result<bool, DbError> {
    let n = diesel::update(staff::table.filter(staff::id.eq(id).and(staff::active.eq(true))))
        .set(staff::active.eq(false))
        .execute(conn)?;
    Ok(n == 1)
}

/// Staff, optionally of one merchant.
pub fn list_staff(conn: &mut DbConnection, merchant_id: Option<i64>) -> Result<Vec<StaffRow>, DbError> {
    let mut q = staff::table.order(staff::id).into_boxed();
    if let Some(m) = merchant_id {
        q = q.filter(staff::merchant_id.eq(m));
    }
    Ok(q.load(conn)?)
}

/// The staff member holding an API token (by its hash).
pub fn staff_by_token_hash(conn: &mut DbConnection, hash: &str) -> Result<Option<StaffRow>, DbError> {
    Ok(staff::table
        .filter(staff::api_token_hash.eq(hash))
        .first(conn)
        .optional()?)
}

/// The staff rows of an openid (one per merchant), active ones first.
pub fn staff_by_openid(conn: &mut DbConnection, openid: &str) -> Result<Vec<StaffRow>, DbError> {
    Ok(staff::table
        .filter(staff::openid.eq(openid))
        .order((staff::active.desc(), staff::id))
        .load(conn)?)
}

/// The staff row that speaks for `openid` on a coupon of `merchant_id`: their active row there; else an active row
/// at another merchant (so the page can say "not your shop's"); else a removed or pending one; else none.
pub fn staff_viewing(
    conn: &mut DbConnection,
    openid: &str,
    merchant_id: Option<i64>,
) -> Result<Option<StaffRow>, DbError> {
    let rows = staff_by_openid(conn, openid)?;
    Ok(rows
        .iter()
        .find(|s| s.active && Some(s.merchant_id) == merchant_id)
        .or_else(|| rows.iter().find(|s| s.active))
        .or_else(|| rows.iter().find(|s| Some(s.merchant_id) == merchant_id))
        .or(rows.first())
        .cloned())
}

/// The staff row of an openid at one merchant.
pub fn staff_at(conn: &mut DbConnection, merchant_id: i64, openid: &str) -> Result<Option<StaffRow>, DbError> {
    Ok(staff::table
        .filter(staff::openid.eq(openid).and(staff::merchant_id.eq(merchant_id)))
        .first(conn)
        .optional()?)
}

/// A staff member by id.
pub fn staff_by_id(conn: &mut DbConnection, id: i64) -> Result<Option<StaffRow>, DbError> {
    Ok(staff::table.find(id).first(conn).optional()?)
}

/// A new campaign.
#[derive(Clone, Debug)]
pub struct NewCampaign {
    /// Merchant.
    pub merchant_id: i64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Value in fen.
    pub value_fen: Option<i64>,
    /// Valid from, ms.
    pub valid_from: i64,
    /// Valid until, ms.
    pub valid_until: i64,
    /// Total coupons.
    pub quantity: Option<i64>,
    /// Coupons per owner.
    pub per_user_limit: Option<i64>,
    /// Backing WeChat card.
    pub wechat_card_id: Option<String>,
    /// Price in fen (for sale when set).
    pub price_fen: Option<i64>,
}

/// Creates a campaign.
pub fn create_campaign(conn: &mut DbConnection, c: &NewCampaign, now: Millis) -> Result<CampaignRow, DbError> {
    Ok(crate::insert_returning!(
        conn,
        diesel::insert_into(campaigns::table).values((
            campaigns::merchant_id.eq(c.merchant_id),
            campaigns::title.eq(&c.title),
            campaigns::description.eq(&c.description),
            campaigns::value_fen.eq(c.value_fen),
            campaigns::valid_from.eq(c.valid_from),
            campaigns::valid_until.eq(c.valid_until),
            campaigns::quantity.eq(c.quantity),
            campaigns::per_user_limit.eq(c.per_user_limit),
            campaigns::wechat_card_id.eq(&c.wechat_card_id),
            campaigns::price_fen.eq(c.price_fen),
            campaigns::issued.eq(0i64),
            campaigns::created_at.eq(now),
        )),
        campaigns::table,
        campaigns::all_columns
    )?)
}

/// Backs a campaign with a WeChat card.
pub fn set_campaign_card(conn: &mut DbConnection, id: i64, card_id: &str) -> Result<(), DbError> {
    diesel::update(campaigns::table.find(id))
        .set(campaigns::wechat_card_id.eq(card_id))
        .execute(conn)?;
    Ok(())
}

/// A campaign by id.
pub fn campaign(conn: &mut DbConnection, id: i64) -> Result<Option<CampaignRow>, DbError> {
    Ok(campaigns::table.find(id).first(conn).optional()?)
}

/// All campaigns, optionally of one merchant.
pub fn list_campaigns(conn: &mut DbConnection, merchant_id: Option<i64>) -> Result<Vec<CampaignRow>, DbError> {
    let mut q = campaigns::table.order(campaigns::id).into_boxed();
    if let Some(m) = merchant_id {
        q = q.filter(campaigns::merchant_id.eq(m));
    }
    Ok(q.load(conn)?)
}

/// Merchants after id `after`, by id, at most `n`.
pub fn merchants_page(conn: &mut DbConnection, after: Option<i64>, n: i64) -> Result<Vec<MerchantRow>, DbError> {
    Ok(merchants::table
        .filter(merchants::id.gt(after.unwrap_or(0)))
        .order(merchants::id)
        .limit(n)
        .load(conn)?)
}

/// Staff after id `after` (optionally of one merchant), by id, at most `n`.
pub fn staff_page(
    conn: &mut DbConnection,
    merchant_id: Option<i64>,
    after: Option<i64>,
    n: i64,
) -> Result<Vec<StaffRow>, DbError> {
    let mut q = staff::table
        .filter(staff::id.gt(after.unwrap_or(0)))
        .order(staff::id)
        .limit(n)
        .into_boxed();
    if let Some(m) = merchant_id {
        q = q.filter(staff::merchant_id.eq(m));
    }
    Ok(q.load(conn)?)
}

/// Campaigns after id `after` (optionally of one merchant), by id, at most `n`.
pub fn campaigns_page(
    conn: &mut DbConnection,
    merchant_id: Option<i64>,
    after: Option<i64>,
    n: i64,
) -> Result<Vec<CampaignRow>, DbError> {
    let mut q = campaigns::table
        .filter(campaigns::id.gt(after.unwrap_or(0)))
        .order(campaigns::id)
        .limit(n)
        .into_boxed();
    if let Some(m) = merchant_id {
        q = q.filter(campaigns::merchant_id.eq(m));
    }
    Ok(q.load(conn)?)
}
