//! # redemption-core
//!
//! The coupon domain: campaigns, coupons with unguessable codes, staff, and the rules of redemption (核销) — who may
//! redeem, when, and what each attempt's outcome is — behind a storage trait. No IO, no framework: the wxkit server
//! implements [`RedemptionStore`] on its database, where exactly-once is enforced (a conditional update plus a
//! unique redemption row in one transaction).
//!
//! ```
//! use redemption_core::*;
//!
//! let campaign = Campaign {
//!     id: CampaignId(1), merchant_id: MerchantId(1), title: "Free coffee".into(), description: None,
//!     value_fen: Some(1800), valid_from: 0, valid_until: 2_000_000_000_000, quantity: None, per_user_limit: None,
//!     wechat_card_id: None,
//! };
//! let coupon = Coupon {
//!     id: CouponId(7), campaign_id: CampaignId(1), code: CouponCode::generate(), owner_openid: None,
//!     status: CouponStatus::Issued, redeemed_at: None, redeemed_by: None, created_at: 0,
//! };
//! let barista = Staff { id: StaffId(3), merchant_id: MerchantId(1), openid: "o-barista".into(), name: "Li".into(), active: true };
//! assert_eq!(check_redeemable(&coupon, &campaign, Some(&barista), 1_700_000_000_000), Ok(()));
//! let stranger = Staff { merchant_id: MerchantId(2), ..barista.clone() };
//! assert_eq!(check_redeemable(&coupon, &campaign, Some(&stranger), 1_700_000_000_000), Err(Outcome::NotStaff));
//! ```

#![deny(missing_docs)]
use serde::Serialize;
use std::fmt;

macro_rules! id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id!(
    /// A merchant.
    MerchantId
);
id!(
    /// A campaign.
    CampaignId
);
id!(
    /// A coupon.
    CouponId
);
id!(
    /// A staff member.
    StaffId
);

/// Unix time in milliseconds.
pub type Millis = i64;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Length of a code: 130 bits of base32 carrying 128 random bits.
pub const CODE_LEN: usize = 26;

/// A coupon's code: 128 random bits in base32 (26 characters, `A-Z2-7`). It is the coupon's only identifier in URLs
/// and QR codes, so it cannot be guessed or derived from another coupon's.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CouponCode(String);

impl CouponCode {
    /// A fresh random code (rand's thread-local CSPRNG, seeded from the operating system).
    pub fn generate() -> Self {
        Self::generate_with(&mut rand::rng())
    }

    /// A code from 128 bits of `rng` — a cryptographically secure generator (codes are bearer secrets); a seeded
    /// one gives repeatable codes in tests.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use redemption_core::CouponCode;
    /// let a = CouponCode::generate_with(&mut rand::rngs::StdRng::seed_from_u64(7));
    /// let b = CouponCode::generate_with(&mut rand::rngs::StdRng::seed_from_u64(7));
    /// assert_eq!(a, b);
    /// assert_eq!(CouponCode::parse(a.as_str()), Some(a));
    /// ```
    pub fn generate_with<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        // RFC 4648 base32 without padding: 128 bits → 26 characters of `A-Z2-7` (the last one carries 3 bits).
        let out = data_encoding::BASE32_NOPAD.encode(&bytes);
        debug_assert_eq!(out.len(), CODE_LEN);
        CouponCode(out)
    }

    /// Parses a code (case-insensitive); `None` when it cannot be one of ours.
    ///
    /// ```
    /// use redemption_core::CouponCode;
    /// let code = CouponCode::generate();
    /// assert_eq!(CouponCode::parse(&code.as_str().to_lowercase()), Some(code));
    /// assert_eq!(CouponCode::parse("short"), None);
    /// assert_eq!(CouponCode::parse("0OOOOOOOOOOOOOOOOOOOOOOOOO"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Self> {
        let upper = s.trim().to_ascii_uppercase();
        (upper.len() == CODE_LEN && upper.bytes().all(|b| BASE32.contains(&b))).then_some(CouponCode(upper))
    }

    /// Parses a code as a till or a person types it: any case, with the spaces or dashes of the printed grouping.
    ///
    /// ```
    /// use redemption_core::CouponCode;
    /// let code = CouponCode::generate();
    /// assert_eq!(CouponCode::parse_typed(&code.grouped()), Some(code.clone()));
    /// assert_eq!(CouponCode::parse_typed(&code.grouped().replace(' ', "-").to_lowercase()), Some(code));
    /// assert_eq!(CouponCode::parse_typed("not a code"), None);
    /// ```
    pub fn parse_typed(s: &str) -> Option<Self> {
        if s.len() > 2 * CODE_LEN {
            return None;
        }
        let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace() && *c != '-').collect();
        Self::parse(&compact)
    }

    /// The code in groups of four, as printed under the QR for typing (`ABCD EFGH …`).
    pub fn grouped(&self) -> String {
        self.0
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CouponCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CouponCode({})", self.0)
    }
}

impl fmt::Display for CouponCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A campaign: what its coupons are worth, when they can be used, how many there are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Campaign {
    /// Id.
    pub id: CampaignId,
    /// The merchant whose staff redeem it.
    pub merchant_id: MerchantId,
    /// Title shown on the coupon.
    pub title: String,
    /// Optional description.
    pub description: Option<String>,
    /// Face value in fen, if any.
    pub value_fen: Option<u64>,
    /// Valid from (inclusive), ms.
    pub valid_from: Millis,
    /// Valid until (inclusive), ms.
    pub valid_until: Millis,
    /// Total coupons that may be issued (None = unlimited).
    pub quantity: Option<u64>,
    /// Coupons one owner may hold (None = unlimited).
    pub per_user_limit: Option<u32>,
    /// The WeChat card backing it, if any.
    pub wechat_card_id: Option<String>,
}

/// Where a coupon is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CouponStatus {
    /// Usable (if within the validity window).
    Issued,
    /// Used.
    Redeemed,
    /// Cancelled by the merchant.
    Void,
    /// Marked expired.
    Expired,
}

impl CouponStatus {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            CouponStatus::Issued => "issued",
            CouponStatus::Redeemed => "redeemed",
            CouponStatus::Void => "void",
            CouponStatus::Expired => "expired",
        }
    }

    /// Parses a storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "issued" => Some(CouponStatus::Issued),
            "redeemed" => Some(CouponStatus::Redeemed),
            "void" => Some(CouponStatus::Void),
            "expired" => Some(CouponStatus::Expired),
            _ => None,
        }
    }
}

/// A coupon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Coupon {
    /// Id.
    pub id: CouponId,
    /// Its campaign.
    pub campaign_id: CampaignId,
    /// Its code.
    pub code: CouponCode,
    /// The customer it was issued to, if any (else a bearer coupon).
    pub owner_openid: Option<String>,
    /// Status as stored.
    pub status: CouponStatus,
    /// When it was redeemed.
    pub redeemed_at: Option<Millis>,
    /// Who redeemed it (None when redeemed at WeChat's side).
    pub redeemed_by: Option<StaffId>,
    /// When it was issued.
    pub created_at: Millis,
}

impl Coupon {
    /// The status as a customer should see it at `now` (an issued coupon past its window shows as expired).
    pub fn effective_status(&self, campaign: &Campaign, now: Millis) -> CouponStatus {
        match self.status {
            CouponStatus::Issued if now > campaign.valid_until => CouponStatus::Expired,
            s => s,
        }
    }
}

/// A merchant's staff member, identified by their WeChat openid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Staff {
    /// Id.
    pub id: StaffId,
    /// Their merchant.
    pub merchant_id: MerchantId,
    /// Their openid (for the scan page).
    pub openid: String,
    /// Display name.
    pub name: String,
    /// False once removed.
    pub active: bool,
}

/// What a redemption attempt came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Redeemed now, by this attempt.
    Redeemed {
        /// When.
        at: Millis,
    },
    /// Someone redeemed it before.
    AlreadyRedeemed {
        /// When.
        at: Option<Millis>,
        /// By whom (None: at WeChat's side).
        by: Option<StaffId>,
    },
    /// Past its validity window (or marked expired).
    Expired,
    /// Before its validity window.
    NotYetValid,
    /// The actor is not active staff of the coupon's merchant.
    NotStaff,
    /// No such coupon.
    NotFound,
    /// Cancelled.
    Void,
}

impl Outcome {
    /// A short stable name (audit log, API).
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Redeemed { .. } => "redeemed",
            Outcome::AlreadyRedeemed { .. } => "already_redeemed",
            Outcome::Expired => "expired",
            Outcome::NotYetValid => "not_yet_valid",
            Outcome::NotStaff => "not_staff",
            Outcome::NotFound => "not_found",
            Outcome::Void => "void",
        }
    }
}

/// The rule: may `staff` redeem `coupon` at `now`? `Ok(())`, or the outcome that stops it. Checks, in order: staff
/// (active, same merchant), void, already redeemed, expired, not yet valid.
pub fn check_redeemable(
    coupon: &Coupon,
    campaign: &Campaign,
    staff: Option<&Staff>,
    now: Millis,
) -> Result<(), Outcome> {
    match staff {
        Some(s) if s.active && s.merchant_id == campaign.merchant_id => {}
        _ => return Err(Outcome::NotStaff),
    }
    match coupon.status {
        CouponStatus::Void => return Err(Outcome::Void),
        CouponStatus::Redeemed => {
            return Err(Outcome::AlreadyRedeemed {
                at: coupon.redeemed_at,
                by: coupon.redeemed_by,
            });
        }
        CouponStatus::Expired => return Err(Outcome::Expired),
        CouponStatus::Issued => {}
    }
    if now > campaign.valid_until {
        return Err(Outcome::Expired);
    }
    if now < campaign.valid_from {
        return Err(Outcome::NotYetValid);
    }
    Ok(())
}

/// How a redemption happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A staff device through the POS API.
    Pos,
    /// A staff member on the scan page.
    ScanPage,
    /// Consumed at WeChat's side (a `user_consume_card` push).
    Wechat,
}

impl Channel {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Pos => "pos",
            Channel::ScanPage => "scan_page",
            Channel::Wechat => "wechat",
        }
    }
}

/// One audit log entry: every attempt, successful or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// The code as presented.
    pub code: String,
    /// The coupon, if found.
    pub coupon_id: Option<CouponId>,
    /// The staff member, if known.
    pub staff_id: Option<StaffId>,
    /// The outcome's name.
    pub outcome: &'static str,
    /// The channel.
    pub channel: Channel,
    /// When.
    pub at: Millis,
}

/// Storage for redemptions. Implementations must make [`try_redeem`](Self::try_redeem) atomic and exactly-once.
pub trait RedemptionStore {
    /// The storage error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The coupon with this code and its campaign.
    fn find_coupon(&mut self, code: &CouponCode) -> Result<Option<(Coupon, Campaign)>, Self::Error>;

    /// Marks the coupon redeemed **only if it is still issued**, and records the redemption and `audit` (the
    /// successful attempt), all in one transaction. Returns whether this call redeemed it; when it did not, nothing
    /// was written.
    fn try_redeem(
        &mut self,
        coupon: CouponId,
        staff: Option<StaffId>,
        channel: Channel,
        now: Millis,
        audit: &AuditEntry,
    ) -> Result<bool, Self::Error>;

    /// Appends to the audit log.
    fn record(&mut self, entry: &AuditEntry) -> Result<(), Self::Error>;
}

/// The code as presented, fit for an audit log: at most 64 characters, control characters (a NUL byte, which
/// PostgreSQL text cannot hold, among them) replaced by U+FFFD.
///
/// ```
/// assert_eq!(redemption_core::audit_code("ab\0c"), "ab\u{FFFD}c");
/// assert_eq!(redemption_core::audit_code(&"x".repeat(100)).len(), 64);
/// ```
pub fn audit_code(code: &str) -> String {
    code.chars()
        .take(64)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// A coupon with its campaign.
pub type CouponWithCampaign = (Coupon, Campaign);

/// What a *guarded single step* decided, as read back by [`judge`].
///
/// Some stores can do a whole attempt in one atomic statement: read the coupon, its campaign and the staff member,
/// and update the coupon **only if** the guard holds — status `issued`, staff active and of the campaign's merchant,
/// `valid_from <= now <= valid_until`, which is exactly when [`check_redeemable`] returns `Ok` — writing the
/// redemption and its audit row in the same statement. The store then hands back what it read (as of the statement's
/// snapshot) and whether its update took effect, and [`judge`] turns that into the attempt's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// The step redeemed the coupon.
    Redeemed(Outcome),
    /// The rules refuse it; the store should audit this outcome.
    Refused(Outcome),
    /// The rules allowed it as read, but the guarded update found the coupon no longer issued: another attempt won
    /// the race after the snapshot. Re-read the coupon to report who won ([`Outcome::AlreadyRedeemed`]).
    LostRace,
    /// The store redeemed a coupon that the rules refuse: its guard disagrees with [`check_redeemable`]. The write
    /// happened (the database is the source of truth) so the attempt counts as redeemed, but this is a store bug
    /// worth an alarm.
    GuardMismatch {
        /// The outcome the rules would have given.
        rules_say: Outcome,
    },
}

/// Decides one attempt from a guarded single step's read-back (see [`Judgement`]): `found` is the coupon as the
/// step read it, `redeemed` whether its guarded update took effect.
///
/// ```
/// use redemption_core::*;
/// # let campaign = Campaign {
/// #     id: CampaignId(1), merchant_id: MerchantId(1), title: "Tea".into(), description: None,
/// #     value_fen: None, valid_from: 0, valid_until: 2_000, quantity: None, per_user_limit: None, wechat_card_id: None,
/// # };
/// # let coupon = Coupon {
/// #     id: CouponId(7), campaign_id: CampaignId(1), code: CouponCode::generate(), owner_openid: None,
/// #     status: CouponStatus::Issued, redeemed_at: None, redeemed_by: None, created_at: 0,
/// # };
/// let staff = Staff { id: StaffId(3), merchant_id: MerchantId(1), openid: "o".into(), name: "Li".into(), active: true };
/// let found = Some((coupon, campaign));
/// assert_eq!(judge(found.as_ref(), Some(&staff), 1_000, true), Judgement::Redeemed(Outcome::Redeemed { at: 1_000 }));
/// // Allowed as read but not updated: someone else redeemed it in between.
/// assert_eq!(judge(found.as_ref(), Some(&staff), 1_000, false), Judgement::LostRace);
/// // Past the window: refused, whatever the store did not do.
/// assert_eq!(judge(found.as_ref(), Some(&staff), 5_000, false), Judgement::Refused(Outcome::Expired));
/// assert_eq!(judge(None, Some(&staff), 1_000, false), Judgement::Refused(Outcome::NotFound));
/// ```
pub fn judge(found: Option<&CouponWithCampaign>, staff: Option<&Staff>, now: Millis, redeemed: bool) -> Judgement {
    let Some((coupon, campaign)) = found else {
        return if redeemed {
            Judgement::GuardMismatch {
                rules_say: Outcome::NotFound,
            }
        } else {
            Judgement::Refused(Outcome::NotFound)
        };
    };
    match (check_redeemable(coupon, campaign, staff, now), redeemed) {
        (Ok(()), true) => Judgement::Redeemed(Outcome::Redeemed { at: now }),
        (Ok(()), false) => Judgement::LostRace,
        (Err(rules_say), true) => Judgement::GuardMismatch { rules_say },
        (Err(outcome), false) => Judgement::Refused(outcome),
    }
}

/// The coupon as it is after `staff` redeemed it at `now` (for the reply to the winning attempt).
pub fn after_redemption(coupon: &Coupon, staff: Option<StaffId>, now: Millis) -> Coupon {
    Coupon {
        status: CouponStatus::Redeemed,
        redeemed_at: Some(now),
        redeemed_by: staff,
        ..coupon.clone()
    }
}

/// The outcome for an attempt that lost the race, from the coupon as re-read after it (`None`: it vanished). The
/// winner may have been another redemption or an operator voiding it (a refund, the admin API): the re-read status
/// says which.
///
/// ```
/// use redemption_core::*;
/// let mut c = Coupon {
///     id: CouponId(1),
///     campaign_id: CampaignId(1),
///     code: CouponCode::generate(),
///     owner_openid: None,
///     status: CouponStatus::Void,
///     redeemed_at: None,
///     redeemed_by: None,
///     created_at: 0,
/// };
/// assert_eq!(lost_race_outcome(Some(&c)), Outcome::Void);
/// c.status = CouponStatus::Redeemed;
/// c.redeemed_at = Some(5);
/// assert_eq!(lost_race_outcome(Some(&c)), Outcome::AlreadyRedeemed { at: Some(5), by: None });
/// assert_eq!(lost_race_outcome(None), Outcome::NotFound);
/// ```
pub fn lost_race_outcome(reread: Option<&Coupon>) -> Outcome {
    match reread {
        Some(c) if c.status == CouponStatus::Void => Outcome::Void,
        Some(c) => Outcome::AlreadyRedeemed {
            at: c.redeemed_at,
            by: c.redeemed_by,
        },
        None => Outcome::NotFound,
    }
}

/// One redemption attempt, end to end: look up, apply the rules, redeem atomically, audit. Under any concurrency,
/// exactly one attempt per coupon gets [`Outcome::Redeemed`]; the others get [`Outcome::AlreadyRedeemed`].
/// `staff` is None for WeChat-side consumption, which skips the staff rule.
pub fn redeem<S: RedemptionStore>(
    store: &mut S,
    code: &str,
    staff: Option<&Staff>,
    channel: Channel,
    now: Millis,
) -> Result<(Outcome, Option<CouponWithCampaign>), S::Error> {
    let parsed = CouponCode::parse(code);
    let found = match &parsed {
        Some(c) => store.find_coupon(c)?,
        None => None,
    };
    let entry = |outcome: &Outcome| AuditEntry {
        code: audit_code(code),
        coupon_id: found.as_ref().map(|(c, _)| c.id),
        staff_id: staff.map(|s| s.id),
        outcome: outcome.name(),
        channel,
        at: now,
    };
    let outcome = match &found {
        None => Outcome::NotFound,
        Some((coupon, campaign)) => {
            let rule = if channel == Channel::Wechat {
                let as_merchant = Staff {
                    id: StaffId(0),
                    merchant_id: campaign.merchant_id,
                    openid: String::new(),
                    name: String::new(),
                    active: true,
                };
                check_redeemable(coupon, campaign, Some(&as_merchant), now)
            } else {
                check_redeemable(coupon, campaign, staff, now)
            };
            match rule {
                Err(o) => o,
                Ok(()) => {
                    let redeemed = Outcome::Redeemed { at: now };
                    if store.try_redeem(coupon.id, staff.map(|s| s.id), channel, now, &entry(&redeemed))? {
                        // Redemption and audit row were written together.
                        let after = after_redemption(coupon, staff.map(|s| s.id), now);
                        return Ok((redeemed, Some((after, campaign.clone()))));
                    }
                    // Lost the race: report who won.
                    lost_race_outcome(store.find_coupon(&coupon.code)?.as_ref().map(|(c, _)| c))
                }
            }
        }
    };
    store.record(&entry(&outcome))?;
    Ok((outcome, found))
}

/// Why a coupon cannot be issued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The campaign's quantity is used up.
    #[error("the campaign has no coupons left")]
    SoldOut,
    /// The owner holds `per_user_limit` coupons already.
    #[error("the customer already holds the most coupons this campaign allows")]
    PerUserLimit,
    /// The campaign has ended.
    #[error("the campaign has ended")]
    Ended,
}

/// May one more coupon be issued (to `owner_holds` coupons' owner)?
pub fn check_issuable(
    campaign: &Campaign,
    issued: u64,
    owner_holds: Option<u64>,
    now: Millis,
) -> Result<(), IssueError> {
    if now > campaign.valid_until {
        return Err(IssueError::Ended);
    }
    if campaign.quantity.is_some_and(|q| issued >= q) {
        return Err(IssueError::SoldOut);
    }
    if let (Some(limit), Some(held)) = (campaign.per_user_limit, owner_holds)
        && held >= u64::from(limit)
    {
        return Err(IssueError::PerUserLimit);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn campaign() -> Campaign {
        Campaign {
            id: CampaignId(1),
            merchant_id: MerchantId(1),
            title: "t".into(),
            description: None,
            value_fen: None,
            valid_from: 1000,
            valid_until: 2000,
            quantity: Some(2),
            per_user_limit: Some(1),
            wechat_card_id: None,
        }
    }

    fn staff(active: bool, merchant: i64) -> Staff {
        Staff {
            id: StaffId(9),
            merchant_id: MerchantId(merchant),
            openid: "o".into(),
            name: "n".into(),
            active,
        }
    }

    #[derive(Default)]
    struct Memory {
        coupons: HashMap<String, Coupon>,
        audit: Vec<AuditEntry>,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    struct Never;

    impl RedemptionStore for Memory {
        type Error = Never;
        fn find_coupon(&mut self, code: &CouponCode) -> Result<Option<(Coupon, Campaign)>, Never> {
            Ok(self.coupons.get(code.as_str()).cloned().map(|c| (c, campaign())))
        }
        fn try_redeem(
            &mut self,
            id: CouponId,
            staff: Option<StaffId>,
            _: Channel,
            now: Millis,
            audit: &AuditEntry,
        ) -> Result<bool, Never> {
            let c = self.coupons.values_mut().find(|c| c.id == id).ok_or(Never)?;
            if c.status != CouponStatus::Issued {
                return Ok(false);
            }
            c.status = CouponStatus::Redeemed;
            c.redeemed_at = Some(now);
            c.redeemed_by = staff;
            self.audit.push(audit.clone());
            Ok(true)
        }
        fn record(&mut self, e: &AuditEntry) -> Result<(), Never> {
            self.audit.push(e.clone());
            Ok(())
        }
    }

    #[test]
    fn codes_are_128_bit_base32_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let c = CouponCode::generate();
            assert_eq!(c.as_str().len(), CODE_LEN);
            assert!(seen.insert(c));
        }
    }

    #[test]
    fn the_rules_in_order() {
        let code = CouponCode::generate();
        let mut c = Coupon {
            id: CouponId(1),
            campaign_id: CampaignId(1),
            code,
            owner_openid: None,
            status: CouponStatus::Issued,
            redeemed_at: None,
            redeemed_by: None,
            created_at: 0,
        };
        let k = campaign();
        assert_eq!(check_redeemable(&c, &k, None, 1500), Err(Outcome::NotStaff));
        assert_eq!(
            check_redeemable(&c, &k, Some(&staff(false, 1)), 1500),
            Err(Outcome::NotStaff)
        );
        assert_eq!(
            check_redeemable(&c, &k, Some(&staff(true, 2)), 1500),
            Err(Outcome::NotStaff)
        );
        assert_eq!(
            check_redeemable(&c, &k, Some(&staff(true, 1)), 999),
            Err(Outcome::NotYetValid)
        );
        assert_eq!(
            check_redeemable(&c, &k, Some(&staff(true, 1)), 2001),
            Err(Outcome::Expired)
        );
        assert_eq!(check_redeemable(&c, &k, Some(&staff(true, 1)), 1500), Ok(()));
        c.status = CouponStatus::Void;
        assert_eq!(
            check_redeemable(&c, &k, Some(&staff(true, 1)), 1500),
            Err(Outcome::Void)
        );
        assert_eq!(c.effective_status(&k, 3000), CouponStatus::Void);
    }

    #[test]
    fn redeem_audits_every_attempt_and_succeeds_once() {
        let mut m = Memory::default();
        let code = CouponCode::generate();
        m.coupons.insert(
            code.to_string(),
            Coupon {
                id: CouponId(1),
                campaign_id: CampaignId(1),
                code: code.clone(),
                owner_openid: None,
                status: CouponStatus::Issued,
                redeemed_at: None,
                redeemed_by: None,
                created_at: 0,
            },
        );
        let s = staff(true, 1);
        let (first, _) = redeem(&mut m, code.as_str(), Some(&s), Channel::Pos, 1500).unwrap();
        assert_eq!(first, Outcome::Redeemed { at: 1500 });
        let (second, _) = redeem(&mut m, code.as_str(), Some(&s), Channel::Pos, 1600).unwrap();
        assert_eq!(
            second,
            Outcome::AlreadyRedeemed {
                at: Some(1500),
                by: Some(StaffId(9))
            }
        );
        let (unknown, _) = redeem(&mut m, "nope", Some(&s), Channel::Pos, 1600).unwrap();
        assert_eq!(unknown, Outcome::NotFound);
        assert_eq!(m.audit.len(), 3);
    }

    #[test]
    fn judge_agrees_with_the_rules() {
        let k = campaign();
        let c = Coupon {
            id: CouponId(1),
            campaign_id: CampaignId(1),
            code: CouponCode::generate(),
            owner_openid: None,
            status: CouponStatus::Issued,
            redeemed_at: None,
            redeemed_by: None,
            created_at: 0,
        };
        let found = Some((c.clone(), k.clone()));
        let s = staff(true, 1);
        assert_eq!(
            judge(found.as_ref(), Some(&s), 1500, true),
            Judgement::Redeemed(Outcome::Redeemed { at: 1500 })
        );
        assert_eq!(judge(found.as_ref(), Some(&s), 1500, false), Judgement::LostRace);
        assert_eq!(
            judge(found.as_ref(), Some(&staff(false, 1)), 1500, false),
            Judgement::Refused(Outcome::NotStaff)
        );
        assert_eq!(
            judge(found.as_ref(), Some(&s), 999, false),
            Judgement::Refused(Outcome::NotYetValid)
        );
        // A store whose guard let an expired coupon through is reported, not hidden.
        assert_eq!(
            judge(found.as_ref(), Some(&s), 2001, true),
            Judgement::GuardMismatch {
                rules_say: Outcome::Expired
            }
        );
        let redeemed = after_redemption(&c, Some(StaffId(9)), 1500);
        let found = Some((redeemed.clone(), k));
        assert_eq!(
            judge(found.as_ref(), Some(&s), 1600, false),
            Judgement::Refused(Outcome::AlreadyRedeemed {
                at: Some(1500),
                by: Some(StaffId(9))
            })
        );
        assert_eq!(
            lost_race_outcome(Some(&redeemed)),
            Outcome::AlreadyRedeemed {
                at: Some(1500),
                by: Some(StaffId(9))
            }
        );
        assert_eq!(lost_race_outcome(None), Outcome::NotFound);
        assert_eq!(
            judge(None, Some(&s), 1500, false),
            Judgement::Refused(Outcome::NotFound)
        );
    }

    #[test]
    fn issuing_respects_quantity_limit_and_end() {
        let k = campaign();
        assert_eq!(check_issuable(&k, 2, None, 1500), Err(IssueError::SoldOut));
        assert_eq!(check_issuable(&k, 0, Some(1), 1500), Err(IssueError::PerUserLimit));
        assert_eq!(check_issuable(&k, 0, Some(0), 2500), Err(IssueError::Ended));
        assert_eq!(check_issuable(&k, 1, Some(0), 1500), Ok(()));
    }
}
