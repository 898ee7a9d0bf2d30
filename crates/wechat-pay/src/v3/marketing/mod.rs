//! WeChat Pay marketing (营销) APIs on v3.
//!
//! * [`busifavor`]: 商家券 — merchant coupons in the user's WeChat card bag, redeemed (核销) by the merchant's API.

pub mod busifavor;
