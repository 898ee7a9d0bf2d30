//! The admin use cases, shared by `POST /api/v1/...` and `wxkit merchant|staff|campaign|coupon`: the field rules
//! (lengths, trimming), existence checks and uniqueness live here once.

use crate::db::{DbConnection, DbError};
use crate::features::coupons::repo::{self as coupons_repo, CouponRow, IssueFailure};
use crate::features::merchants::repo::{self as repo, CampaignRow, MerchantRow, NewCampaign, StaffRow};
use crate::platform::crypto::{random_token, sha256_hex};

/// Longest merchant name.
pub const MERCHANT_NAME_MAX: usize = 100;
/// Longest staff name.
pub const STAFF_NAME_MAX: usize = 64;
/// Longest openid.
pub const OPENID_MAX: usize = 64;

/// Why an admin use case refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A field breaks its rule.
    #[error("{field} {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The rule.
        message: String,
    },
    /// A request breaks a rule: a stable code (`invalid_field`, `invalid_time`) and the whole sentence.
    #[error("{message}")]
    Rejected {
        /// The code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(&'static str),
    /// The change conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// A stable code (`staff_exists`, `not_issuable`).
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

fn text<'a>(field: &'static str, value: &'a str, max: usize) -> Result<&'a str, AdminError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max {
        return Err(AdminError::Invalid {
            field,
            message: format!("must be 1 to {max} characters"),
        });
    }
    Ok(trimmed)
}

/// Creates a merchant.
pub fn create_merchant(conn: &mut DbConnection, name: &str, now: i64) -> Result<MerchantRow, AdminError> {
    let name = text("name", name, MERCHANT_NAME_MAX)?;
    Ok(repo::create_merchant(conn, name, now)?)
}

/// A staff member just added, with their POS token — shown once; only its sha256 is stored.
#[derive(Debug)]
pub struct NewStaffMember {
    /// The row.
    pub row: StaffRow,
    /// The POS bearer token.
    pub api_token: String,
}

/// Adds a staff member to a merchant (or re-activates a removed one with a new token).
pub fn add_staff(
    conn: &mut DbConnection,
    merchant_id: i64,
    openid: &str,
    name: &str,
    now: i64,
) -> Result<NewStaffMember, AdminError> {
    let openid = text("openid", openid, OPENID_MAX)?;
    let name = text("name", name, STAFF_NAME_MAX)?;
    if repo::merchant(conn, merchant_id)?.is_none() {
        return Err(AdminError::NotFound("no such merchant"));
    }
    let api_token = random_token();
    let row = repo::add_staff(conn, merchant_id, openid, name, &sha256_hex(&api_token), now)?.ok_or_else(|| {
        AdminError::Conflict {
            code: "staff_exists",
            message: "this openid is already active staff".into(),
        }
    })?;
    Ok(NewStaffMember { row, api_token })
}

/// Removes a staff member: they can no longer redeem.
pub fn remove_staff(conn: &mut DbConnection, id: i64) -> Result<(), AdminError> {
    if repo::remove_staff(conn, id)? {
        Ok(())
    } else {
        Err(AdminError::NotFound("no such active staff member"))
    }
}

/// Creates a campaign (already validated by [`crate::features::merchants::views::CampaignRequest::validate`]) for an existing
/// merchant.
pub fn create_campaign(conn: &mut DbConnection, new: &NewCampaign, now: i64) -> Result<CampaignRow, AdminError> {
    if repo::merchant(conn, new.merchant_id)?.is_none() {
        return Err(AdminError::NotFound("no such merchant"));
    }
    Ok(repo::create_campaign(conn, new, now)?)
}

/// Issues a coupon of a campaign, optionally to an owner; quantity and per-owner limits hold under concurrency.
pub fn issue_coupon(
    conn: &mut DbConnection,
    campaign_id: i64,
    owner: Option<&str>,
    now: i64,
) -> Result<(CouponRow, CampaignRow), AdminError> {
    let owner = owner.map(|o| text("owner_openid", o, OPENID_MAX)).transpose()?;
    coupons_repo::issue_coupon(conn, campaign_id, owner, now).map_err(|e| match e {
        IssueFailure::NotFound => AdminError::NotFound("no such campaign"),
        IssueFailure::Rule(rule) => AdminError::Conflict {
            code: "not_issuable",
            message: rule.to_string(),
        },
        IssueFailure::Db(e) => AdminError::Db(e),
    })
}

/// Every merchant, oldest first.
pub fn merchants(conn: &mut DbConnection) -> Result<Vec<MerchantRow>, DbError> {
    repo::list_merchants(conn)
}

/// One merchant.
pub fn merchant(conn: &mut DbConnection, id: i64) -> Result<Option<MerchantRow>, DbError> {
    repo::merchant(conn, id)
}

/// Staff members (of one merchant), removed ones too.
pub fn staff(conn: &mut DbConnection, merchant_id: Option<i64>) -> Result<Vec<StaffRow>, DbError> {
    repo::list_staff(conn, merchant_id)
}

/// Campaigns (of one merchant).
pub fn campaigns(conn: &mut DbConnection, merchant_id: Option<i64>) -> Result<Vec<CampaignRow>, DbError> {
    repo::list_campaigns(conn, merchant_id)
}

/// A staff member's name.
pub fn staff_name(conn: &mut DbConnection, id: i64) -> Result<Option<String>, DbError> {
    Ok(repo::staff_by_id(conn, id)?.map(|s| s.name))
}

/// One campaign.
pub fn campaign(conn: &mut DbConnection, id: i64) -> Result<Option<CampaignRow>, DbError> {
    repo::campaign(conn, id)
}

/// An end asked for: why, what to do with sold coupons (`None`: not chosen), or only what it would touch.
#[derive(Clone, Debug)]
pub struct EndRequest {
    /// Why (audited).
    pub reason: Option<String>,
    /// What to do with sold, unused coupons; `None` is refused when there are any.
    pub sold: Option<crate::features::pay::ending::SoldChoice>,
    /// Only answer what it would touch.
    pub dry_run: bool,
}

impl EndRequest {
    /// Checks the fields (a reason of at most 200 characters; `sold` is `keep` or `refund`).
    pub fn parse(reason: Option<String>, sold: Option<&str>, dry_run: bool) -> Result<EndRequest, AdminError> {
        if reason.as_ref().is_some_and(|r| r.chars().count() > 200) {
            return Err(AdminError::Invalid {
                field: "reason",
                message: "must be at most 200 characters".into(),
            });
        }
        let sold = sold
            .map(|s| {
                crate::features::pay::ending::SoldChoice::parse(s).ok_or(AdminError::Invalid {
                    field: "sold",
                    message: format!("must be keep or refund, not {s:?}"),
                })
            })
            .transpose()?;
        Ok(EndRequest { reason, sold, dry_run })
    }
}

/// What an end (or its dry run) came to.
#[derive(Debug)]
pub struct EndOutcome {
    /// The campaign afterwards.
    pub campaign: CampaignRow,
    /// What it touched (or would).
    pub plan: crate::features::pay::ending::EndPlan,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// Whether it had ended before (nothing changed).
    pub already: bool,
    /// Refunds recorded now (to be sent).
    pub refunds: i64,
}

impl EndOutcome {
    /// The API answer: the campaign, with `ending` (the numbers, `dry_run`, `sold`).
    pub fn json(&self, now: i64) -> serde_json::Value {
        let mut v = crate::features::merchants::views::campaign_json_at(&self.campaign, now);
        v["ending"] = serde_json::json!({
            "dry_run": self.dry_run, "already_ended": self.already,
            "sold_unused": self.plan.sold_unused, "sold_amount_fen": self.plan.sold_amount_fen,
            "unsold_unused": self.plan.unsold_unused, "open_orders": self.plan.open_orders,
            "refunds_requested": self.plan.refunds_requested,
            "choices": ["keep", "refund"],
        });
        v
    }
}

/// Ends a campaign now, or answers what that would touch (see [`crate::features::pay::ending`]). Without a choice
/// for sold coupons, a campaign that has sold unused ones is refused (`choose_sold`): the shop must decide. Ending an
/// ended campaign changes nothing.
pub fn end_campaign(
    conn: &mut DbConnection,
    id: i64,
    request: &EndRequest,
    actor: crate::features::pay::ending::Actor<'_>,
    now: i64,
) -> Result<EndOutcome, AdminError> {
    use crate::features::pay::ending::{self, Ended, SoldChoice};
    let Some((campaign, plan)) = ending::plan(conn, id)? else {
        return Err(AdminError::NotFound("no such campaign"));
    };
    let already = campaign.ended_at.is_some();
    if request.dry_run || already {
        return Ok(EndOutcome {
            campaign,
            plan,
            dry_run: request.dry_run,
            already,
            refunds: 0,
        });
    }
    let choice = match request.sold {
        Some(c) => c,
        None if plan.sold_unused == 0 => SoldChoice::Refund,
        None => {
            return Err(AdminError::Conflict {
                code: "choose_sold",
                message: format!(
                    "{} sold coupons are unused (¥{:.2} paid): say what happens to them with \"sold\": \"keep\" \
                     (usable until the campaign's own end) or \"refund\"",
                    plan.sold_unused,
                    plan.sold_amount_fen as f64 / 100.0
                ),
            });
        }
    };
    match ending::end(conn, id, choice, request.reason.as_deref(), actor, now)? {
        Ended::Now(campaign, plan) => Ok(EndOutcome {
            refunds: plan.refunds_requested,
            campaign,
            plan,
            dry_run: false,
            already: false,
        }),
        Ended::Already(campaign) => Ok(EndOutcome {
            campaign,
            plan,
            dry_run: false,
            already: true,
            refunds: 0,
        }),
        Ended::NotFound => Err(AdminError::NotFound("no such campaign")),
    }
}
