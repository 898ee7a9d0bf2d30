//! The console's use cases (no HTTP): invites made and accepted, staff approved and removed, a campaign edited —
//! each for one merchant only, and audited with the person who acted.

pub use super::repo::Role;
use super::repo::{self, NewInvite};
use crate::db::{DbConnection, DbError};
use crate::features::auth::repo::User;
use crate::features::merchants::repo::{CampaignRow, MerchantRow};
use crate::features::merchants::service::AdminError;
use crate::platform::crypto::{random_token, sha256_hex};

/// Longest an invite may live: 30 days.
pub const INVITE_MAX_SECS: i64 = 30 * 86_400;
/// Most people one invite may let in.
pub const INVITE_MAX_USES: i64 = 100;

/// An invite just made: its URL (shown to whoever made it; only its hash is stored).
#[derive(Debug)]
pub struct MadeInvite {
    /// Its id.
    pub id: i64,
    /// The URL to scan.
    pub url: String,
    /// Ms.
    pub expires_at: i64,
}

/// What an invite lets in, as asked for.
#[derive(Clone, Copy, Debug)]
pub struct InviteRequest {
    /// staff, manager or owner.
    pub role: Role,
    /// 1 to [`INVITE_MAX_USES`].
    pub max_uses: i64,
    /// 60 s to [`INVITE_MAX_SECS`].
    pub expires_in_secs: i64,
    /// Joining waits for an owner's approval (staff only).
    pub needs_approval: bool,
}

impl InviteRequest {
    /// Checks the limits.
    pub fn check(self) -> Result<InviteRequest, AdminError> {
        if !(1..=INVITE_MAX_USES).contains(&self.max_uses) {
            return Err(AdminError::Invalid {
                field: "max_uses",
                message: format!("must be 1 to {INVITE_MAX_USES}"),
            });
        }
        if !(60..=INVITE_MAX_SECS).contains(&self.expires_in_secs) {
            return Err(AdminError::Invalid {
                field: "expires_in_secs",
                message: format!("must be 60 to {INVITE_MAX_SECS} (30 days)"),
            });
        }
        Ok(self)
    }
}

/// Makes an invite for `merchant_id` (by a person, or the platform admin when `by` is `None`); its QR code is stored
/// with it, the token only as its hash.
pub fn make_invite(
    conn: &mut DbConnection,
    merchant_id: i64,
    request: InviteRequest,
    by: Option<i64>,
    public_base_url: &str,
    now: i64,
) -> Result<MadeInvite, AdminError> {
    let request = request.check()?;
    if crate::features::merchants::repo::merchant(conn, merchant_id)?.is_none() {
        return Err(AdminError::NotFound("no such merchant"));
    }
    // 128 random bits: short enough that `/join/{token}` fits the OAuth state's return path (55 bytes), which the
    // login of a person scanning it carries.
    let token = random_token()[..32].to_owned();
    let url = format!("{}/join/{token}", public_base_url.trim_end_matches('/'));
    let qr = qr_render::render_png(&url, &qr_render::RenderOptions::default())
        .map_err(|e| DbError::Task(format!("the invite's QR code: {e}")))?;
    let expires_at = now + request.expires_in_secs * 1000;
    let id = repo::create_invite(
        conn,
        &NewInvite {
            merchant_id,
            token_hash: &sha256_hex(&token),
            role: request.role,
            max_uses: request.max_uses,
            // Only staff wait for approval: an owner's or manager's invite is made by someone who may grant it.
            needs_approval: request.needs_approval && request.role == Role::Staff,
            expires_at,
            created_by: by,
            qr_png: &qr,
        },
        now,
    )?;
    if let Some(actor) = by {
        repo::audit(
            conn,
            "invite",
            merchant_id,
            actor,
            &format!(
                "invite {id}: {} × {}, until {}",
                request.role.as_str(),
                request.max_uses,
                crate::platform::time::beijing(expires_at)
            ),
            None,
            now,
        )?;
    }
    Ok(MadeInvite { id, url, expires_at })
}

/// What joining by an invite came to.
#[derive(Debug)]
pub enum Joined {
    /// Staff now (or waiting for approval).
    Staff {
        /// The merchant.
        merchant: MerchantRow,
        /// Waiting for the owner.
        pending: bool,
    },
    /// Owner or manager now.
    Member {
        /// The merchant.
        merchant: MerchantRow,
        /// The role.
        role: Role,
    },
    /// Already staff there: nothing changed (the invite's use is not spent).
    AlreadyStaff(MerchantRow),
    /// The invite is unknown, revoked, expired or used up.
    Unusable,
    /// Staff need the official account's openid (the person never logged in inside WeChat).
    NeedsOfficialAccount,
}

/// Joins `user` to the invite's merchant, in one transaction: the use is taken conditionally (a single-use invite
/// lets one person in however many scan it at once), then the staff row (with the official account's openid, the
/// one the coupon pages see) or the membership.
pub fn join(conn: &mut DbConnection, token: &str, user: &User, name: &str, now: i64) -> Result<Joined, DbError> {
    let hash = sha256_hex(token);
    crate::db::write_transaction(conn, |conn| {
        use diesel::Connection as _;
        conn.transaction(|conn| {
            let Some((invite, merchant)) = repo::invite_by_hash(conn, &hash)? else {
                return Ok(Joined::Unusable);
            };
            if !invite.usable(now) {
                return Ok(Joined::Unusable);
            }
            let role = Role::parse(&invite.role).unwrap_or(Role::Staff);
            if role == Role::Staff {
                let Some(openid) = user.openid.clone() else {
                    return Ok(Joined::NeedsOfficialAccount);
                };
                let existing = crate::features::merchants::repo::staff_at(conn, merchant.id, &openid)?;
                if existing.as_ref().is_some_and(|s| s.active || s.pending) {
                    return Ok(Joined::AlreadyStaff(merchant));
                }
                if !repo::take_invite_use(conn, invite.id, now)? {
                    return Ok(Joined::Unusable);
                }
                let pending = invite.needs_approval;
                let token_hash = sha256_hex(&random_token());
                add_invited_staff(
                    conn,
                    &merchant,
                    &openid,
                    user.id,
                    name,
                    &token_hash,
                    pending,
                    invite.id,
                    now,
                )?;
                Ok(Joined::Staff { merchant, pending })
            } else {
                if !repo::take_invite_use(conn, invite.id, now)? {
                    return Ok(Joined::Unusable);
                }
                repo::add_member(conn, merchant.id, user.id, role, now)?;
                repo::audit(
                    conn,
                    "join",
                    merchant.id,
                    user.id,
                    &format!("joined as {} by invite {}", role.as_str(), invite.id),
                    None,
                    now,
                )?;
                Ok(Joined::Member { merchant, role })
            }
        })
    })
}

#[allow(clippy::too_many_arguments)]
fn add_invited_staff(
    conn: &mut DbConnection,
    merchant: &MerchantRow,
    openid: &str,
    user_id: i64,
    name: &str,
    token_hash: &str,
    pending: bool,
    invite_id: i64,
    now: i64,
) -> Result<(), DbError> {
    use crate::db::schema::staff;
    use diesel::prelude::*;
    let existing = crate::features::merchants::repo::staff_at(conn, merchant.id, openid)?;
    let values = (
        staff::name.eq(name),
        staff::active.eq(!pending),
        staff::pending.eq(pending),
        staff::api_token_hash.eq(token_hash),
        staff::user_id.eq(Some(user_id)),
        staff::invite_id.eq(Some(invite_id)),
    );
    match existing {
        // Removed before: back, under the same row (their past redemptions stay theirs).
        Some(row) => {
            diesel::update(staff::table.find(row.id)).set(values).execute(conn)?;
        }
        None => {
            diesel::insert_into(staff::table)
                .values((
                    values,
                    staff::merchant_id.eq(merchant.id),
                    staff::openid.eq(openid),
                    staff::created_at.eq(now),
                ))
                .execute(conn)?;
        }
    }
    repo::audit(
        conn,
        "join",
        merchant.id,
        user_id,
        &format!(
            "joined as staff by invite {invite_id}{}",
            if pending { ", waiting for approval" } else { "" }
        ),
        None,
        now,
    )
}

/// What may change on a running campaign (fields left `None` stay).
#[derive(Clone, Debug, Default)]
pub struct CampaignEdit {
    /// Title (1–100 characters).
    pub title: Option<String>,
    /// Description (empty clears it).
    pub description: Option<String>,
    /// Total coupons: not below those issued; `Some(None)`: unlimited.
    pub quantity: Option<Option<i64>>,
    /// Per customer; `Some(None)`: unlimited.
    pub per_user_limit: Option<Option<i64>>,
    /// A later end only (a coupon sold or given keeps at least what it was promised).
    pub valid_until: Option<i64>,
    /// Price of new orders (open orders keep theirs); `Some(None)`: no longer sold.
    pub price_fen: Option<Option<i64>>,
}

fn invalid(field: &'static str, message: &str) -> AdminError {
    AdminError::Invalid {
        field,
        message: message.to_owned(),
    }
}

/// The edit's title and description, checked, with their changes noted.
fn texts(
    c: &CampaignRow,
    edit: &CampaignEdit,
    changes: &mut Vec<String>,
) -> Result<(String, Option<String>), AdminError> {
    let title = match &edit.title {
        Some(t) => {
            let t = t.trim().to_owned();
            if t.is_empty() || t.chars().count() > 100 {
                return Err(invalid("title", "must be 1 to 100 characters"));
            }
            if t != c.title {
                changes.push(format!("title: {} → {t}", c.title));
            }
            t
        }
        None => c.title.clone(),
    };
    let description = match &edit.description {
        Some(d) => {
            let d = d.trim();
            if d.chars().count() > 2000 {
                return Err(invalid("description", "must be at most 2000 characters"));
            }
            let new = (!d.is_empty()).then(|| d.to_owned());
            if new != c.description {
                changes.push("description".to_owned());
            }
            new
        }
        None => c.description.clone(),
    };
    Ok((title, description))
}

/// Changes what can safely change on a campaign of `merchant_id`, with an audit row listing each change. Face value
/// and start are fixed once the campaign exists (customers hold coupons that show them); the end only moves later.
/// Everything is checked first, then written in one transaction guarded by the campaign's state (not ended, no more
/// issued than the new quantity), so a refused edit changes nothing.
pub fn edit_campaign(
    conn: &mut DbConnection,
    merchant_id: i64,
    id: i64,
    edit: &CampaignEdit,
    actor: i64,
    now: i64,
) -> Result<CampaignRow, AdminError> {
    use crate::db::schema::campaigns;
    use diesel::prelude::*;
    let c = crate::features::merchants::repo::campaign(conn, id)?
        .filter(|c| c.merchant_id == merchant_id)
        .ok_or(AdminError::NotFound("no such campaign"))?;
    if c.ended_at.is_some() {
        return Err(AdminError::Conflict {
            code: "ended",
            message: "the campaign has ended: it can no longer be changed".into(),
        });
    }
    let mut changes = Vec::new();
    let (title, description) = texts(&c, edit, &mut changes)?;
    let quantity = edit.quantity.unwrap_or(c.quantity);
    if quantity != c.quantity {
        if quantity.is_some_and(|q| q < c.issued || q > 10_000_000) {
            return Err(invalid(
                "quantity",
                &format!(
                    "must be at least the {} already issued or reserved (and at most 10,000,000)",
                    c.issued
                ),
            ));
        }
        changes.push(format!("quantity: {:?} → {quantity:?}", c.quantity));
    }
    let limit = edit.per_user_limit.unwrap_or(c.per_user_limit);
    if limit != c.per_user_limit {
        if limit.is_some_and(|l| !(1..=1000).contains(&l)) {
            return Err(invalid("per_user_limit", "must be 1 to 1000, or empty for no limit"));
        }
        changes.push(format!("per_user_limit: {:?} → {limit:?}", c.per_user_limit));
    }
    let until = edit.valid_until.unwrap_or(c.valid_until);
    if until != c.valid_until {
        if until < c.valid_until {
            return Err(invalid(
                "valid_until",
                "can only move later: coupons already out keep the date they were promised (end the campaign instead)",
            ));
        }
        changes.push(format!(
            "valid_until: {} → {}",
            crate::platform::time::beijing(c.valid_until),
            crate::platform::time::beijing(until)
        ));
    }
    let price = edit.price_fen.unwrap_or(c.price_fen);
    if price != c.price_fen {
        if price.is_some_and(|p| !(1..=100_000_000).contains(&p)) {
            return Err(invalid("price", "must be ¥0.01 to ¥1,000,000, or empty for not sold"));
        }
        changes.push(format!("price_fen: {:?} → {price:?}", c.price_fen));
    }
    if changes.is_empty() {
        return Ok(c);
    }
    let detail = format!("campaign {id}: {}", changes.join("; "));
    let written = crate::db::write_transaction(conn, |conn| {
        // One conditional statement: still running, and no more issued (or reserved) meanwhile than the new
        // quantity allows.
        let moved = diesel::update(
            campaigns::table
                .filter(campaigns::id.eq(id).and(campaigns::ended_at.is_null()))
                .filter(campaigns::issued.le(quantity.unwrap_or(i64::MAX))),
        )
        .set((
            campaigns::title.eq(&title),
            campaigns::description.eq(&description),
            campaigns::quantity.eq(quantity),
            campaigns::per_user_limit.eq(limit),
            campaigns::valid_until.eq(until),
            campaigns::price_fen.eq(price),
        ))
        .execute(conn)?;
        if moved == 0 {
            return Ok(false);
        }
        repo::audit(conn, "edit_campaign", merchant_id, actor, &detail, None, now)?;
        // A 商家券 stock's budget follows a larger quantity (outbox: WeChat is told after this commits).
        if quantity != c.quantity {
            crate::features::coupons::busifavor::queue_budget(conn, id, quantity, now)?;
        }
        Ok(true)
    })?;
    if !written {
        return Err(AdminError::Conflict {
            code: "changed",
            message: "the campaign changed meanwhile (ended, or more coupons went out): look again".into(),
        });
    }
    crate::features::merchants::repo::campaign(conn, id)?.ok_or(AdminError::NotFound("no such campaign"))
}
