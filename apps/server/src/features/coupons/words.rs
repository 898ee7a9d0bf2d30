//! Why a coupon cannot be redeemed, in words — one wording for the scan page, the result page after a confirm, a
//! re-scan, a double submit, and the POS API's messages.

use crate::http::pages::{TZ_LABEL, beijing};
use redemption_core::{Campaign, Outcome, Staff};

/// A refusal, with what the words need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The viewer is active staff, of another merchant.
    OtherMerchant,
    /// The viewer was staff of this merchant and was removed.
    StaffRemoved,
    /// The viewer is not staff at all.
    NotStaff,
    /// Valid from this time (ms).
    NotYetValid(i64),
    /// Expired at this time (ms).
    Expired(i64),
    /// Cancelled.
    Void,
    /// Redeemed at (ms), by whom (a name; none for a card consumed at WeChat's side).
    AlreadyRedeemed(Option<i64>, Option<String>),
    /// No such coupon.
    NotFound,
}

impl Refusal {
    /// The refusal behind a non-redeeming `outcome`, told apart by who tried (`staff`) and the coupon's campaign;
    /// `None` for [`Outcome::Redeemed`].
    pub fn of(
        outcome: &Outcome,
        campaign: Option<&Campaign>,
        staff: Option<&Staff>,
        redeemed_by: Option<String>,
    ) -> Option<Refusal> {
        Some(match outcome {
            Outcome::Redeemed { .. } => return None,
            Outcome::AlreadyRedeemed { at, .. } => Refusal::AlreadyRedeemed(*at, redeemed_by),
            Outcome::NotFound => Refusal::NotFound,
            Outcome::Expired => Refusal::Expired(campaign.map_or(0, |k| k.valid_until)),
            Outcome::Void => Refusal::Void,
            Outcome::NotYetValid => Refusal::NotYetValid(campaign.map_or(0, |k| k.valid_from)),
            Outcome::NotStaff => match (staff, campaign) {
                (Some(s), _) if !s.active => Refusal::StaffRemoved,
                (Some(s), Some(k)) if s.merchant_id != k.merchant_id => Refusal::OtherMerchant,
                _ => Refusal::NotStaff,
            },
        })
    }

    /// "中文 · English", the same everywhere.
    pub fn words(&self) -> String {
        match self {
            Refusal::OtherMerchant => {
                "不是本店的券 · This coupon belongs to another shop: it cannot be redeemed here".into()
            }
            Refusal::StaffRemoved => {
                "店员权限已停用 · Your staff access was removed: ask the shop's administrator".into()
            }
            Refusal::NotStaff => "仅限本店店员核销 · Only this shop's staff can redeem it".into(),
            Refusal::NotYetValid(from) => {
                format!(
                    "未到使用时间 · Not valid yet: valid from {} ({TZ_LABEL})",
                    beijing(*from)
                )
            }
            Refusal::Expired(until) => format!("已过期 · Expired on {} ({TZ_LABEL})", beijing(*until)),
            Refusal::Void => "已作废 · This coupon was cancelled and can no longer be used".into(),
            Refusal::AlreadyRedeemed(at, by) => format!(
                "此券已核销 · Already redeemed{}{}",
                at.map(|t| format!(" at {} ({TZ_LABEL})", beijing(t)))
                    .unwrap_or_default(),
                match by {
                    Some(name) => format!(" by {name}"),
                    None => String::new(),
                }
            ),
            Refusal::NotFound => "优惠券不存在 · No such coupon: check the code or scan again".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redemption_core::{MerchantId, StaffId};

    fn campaign() -> Campaign {
        Campaign {
            id: redemption_core::CampaignId(1),
            merchant_id: MerchantId(1),
            title: "t".into(),
            description: None,
            value_fen: None,
            valid_from: 0,
            valid_until: 86_400_000,
            quantity: None,
            per_user_limit: None,
            wechat_card_id: None,
        }
    }

    fn staff(merchant: i64, active: bool) -> Staff {
        Staff {
            id: StaffId(7),
            merchant_id: MerchantId(merchant),
            openid: "o".into(),
            name: "王".into(),
            active,
        }
    }

    #[test]
    fn not_staff_is_told_apart_by_who_tried() {
        let k = campaign();
        let of = |s: Option<&Staff>| Refusal::of(&Outcome::NotStaff, Some(&k), s, None);
        assert_eq!(of(Some(&staff(2, true))), Some(Refusal::OtherMerchant));
        assert_eq!(of(Some(&staff(1, false))), Some(Refusal::StaffRemoved));
        assert_eq!(of(None), Some(Refusal::NotStaff));
        assert!(Refusal::OtherMerchant.words().starts_with("不是本店的券"));
        let done = Refusal::of(
            &Outcome::AlreadyRedeemed {
                at: Some(0),
                by: Some(StaffId(7)),
            },
            Some(&k),
            None,
            Some("小王".into()),
        )
        .unwrap()
        .words();
        assert_eq!(
            done,
            "此券已核销 · Already redeemed at 1970-01-01 08:00 (北京时间 UTC+8) by 小王"
        );
        assert!(Refusal::of(&Outcome::Redeemed { at: 0 }, None, None, None).is_none());
    }
}
