//! The merchant's 商家券 (WeChat Pay merchant coupons) handle: its v3 client, the API v2 key that signs the H5 and
//! mini-program sends, and where WeChat's H5 领券 page is. Present when the merchant is on Pay v3 with `pay.key` set
//! (and always in sandbox mode).

use wechat_pay::sign::PayKey;

/// What the 商家券 paths need.
#[derive(Clone)]
pub struct Busifavor {
    /// The merchant's v3 client (stocks, use, deactivate, callbacks).
    pub client: wechat_pay::v3::Client,
    /// The API v2 key: WeChat signs the H5 page's and the plugin's parameters with it.
    pub v2_key: PayKey,
    /// The merchant (`send_coupon_merchant`, `belong_merchant`).
    pub mch_id: String,
    /// The official account's appid (use calls, the stock's `notify_appid`).
    pub appid: String,
    /// Where WeChat's H5 领券 page is (`https://action.weixin.qq.com`, or the simulator).
    pub h5_base: String,
}

impl std::fmt::Debug for Busifavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Busifavor")
            .field("mch_id", &self.mch_id)
            .field("appid", &self.appid)
            .field("h5_base", &self.h5_base)
            .finish_non_exhaustive()
    }
}

/// What `POST …/wechat-pay-coupon` and the coupon page say when there is no handle.
pub const NOT_CONFIGURED: &str = "WeChat Pay 商家券 needs a merchant on Pay v3 (pay.api_version = \"v3\", pay.v3.*) \
     with its API v2 key set as well (pay.key): WeChat signs the H5 and mini-program coupon sends with the v2 key";
