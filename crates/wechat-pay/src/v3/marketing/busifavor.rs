//! 商家券 (WeChat Pay merchant coupons, `/v3/marketing/busifavor/…`): the coupon sits in the user's WeChat card bag
//! and the merchant redeems it (核销) by API. Since WeChat closed new 卡券 coupon kinds (2021-04-01) this is how a
//! merchant-redeemed coupon gets into the card bag.
//!
//! Every call is a request value ([`V3Request`]) sent by [`Client::send`](crate::v3::Client::send):
//! [`CreateStock`], [`QueryStock`], [`ModifyStock`], [`ModifyBudget`], [`UseCoupon`], [`QueryUserCoupons`],
//! [`QueryUserCoupon`], [`DeactivateCoupon`], [`ReturnCoupon`], [`SetCallbacks`], [`QueryCallbacks`] and the
//! marketing [`ImageUpload`]. Answers that name a merchant are checked to name ours.
//!
//! Sending a coupon to a user is **not** a v3 call: WeChat's H5 page ([`h5_send_url`]) and the mini-program
//! `send-coupon` plugin ([`plugin_params`]) take parameters signed with the merchant's **API v2 key**
//! (HMAC-SHA256 over the sorted parameters), as WeChat documents for these two. A v3 merchant using 商家券 therefore
//! keeps its v2 key too. A user's receipt arrives as the `COUPON.SEND` notify ([`CouponSent`], decoded by
//! [`notify::decode`](crate::v3::notify::decode)) — except after the plain H5 page, which WeChat documents as not
//! calling back: ask with [`QueryUserCoupon`].
//!
//! ```
//! use wechat_pay::sign::PayKey;
//! use wechat_pay::v3::marketing::busifavor::{CreateStock, CouponValue, h5_send_url};
//! use wechat_pay::v3::request::V3Request;
//!
//! // A stock whose codes are the merchant's own (MERCHANT_API), redeemed at the till (OFF_LINE).
//! let stock = CreateStock::new("免费咖啡", "咖啡一杯", CouponValue::Exchange { exchange_price: 1, transaction_minimum: 2 },
//!     (1_800_000_000, 1_802_592_000), 500, 1, "WXKITSTOCK0001")?
//!     .merchant_name("咖啡店")
//!     .description("到店出示核销");
//! let body = stock.body("1900000111").unwrap();
//! assert_eq!(body["coupon_code_mode"], "MERCHANT_API");
//! assert_eq!(body["coupon_use_rule"]["use_method"], "OFF_LINE");
//!
//! // The H5 page that puts one coupon (code chosen by us) in the user's card bag.
//! let url = h5_send_url("https://action.weixin.qq.com", "1290000000000001", "WXKIT20261204A1", "1900000111",
//!     "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", Some("ABCDEFGHJKMNPQRSTUVWXYZ234"),
//!     &PayKey::new("192006250b4c09247ec02edce69f6a2d"))?;
//! assert!(url.contains("&sign=69257A67143E6BE3DD48725186C5191C1E2F19E4C9F908A98C303D61139471A6"));
//! assert!(url.ends_with("#wechat_pay&wechat_redirect"));
//! # Ok::<(), wechat_pay::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::sign::{PayKey, SignType, sign};
use crate::v3::request::{V3Request, signed_request};
use crate::v3::sign::RequestSigner;
use crate::v3::types::rfc3339_beijing;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;
use url::Url;
use wechat_core::transport::HttpRequest;

/// Where WeChat's H5 领券 page lives.
pub const H5_BASE_URL: &str = "https://action.weixin.qq.com";

fn json_of<T: for<'de> Deserialize<'de>>(body: &[u8], what: &'static str) -> Result<T> {
    serde_json::from_slice(body).map_err(|_| Error::MissingField(what))
}

/// Length in UTF-8 bytes, as WeChat counts these fields (a Chinese character is 3).
fn check_bytes(name: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(format!("{name} must not be empty")));
    }
    if value.len() > max {
        return Err(Error::invalid(format!(
            "{name} is {} bytes of UTF-8; WeChat takes at most {max} (a Chinese character counts 3)",
            value.len()
        )));
    }
    Ok(())
}

/// Request numbers, stock ids and openids in paths and bodies: letters, digits and `_-`.
fn check_token(name: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty()
        || value.len() > max
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::invalid(format!(
            "{name} must be 1 to {max} characters of [0-9A-Za-z_-]"
        )));
    }
    Ok(())
}

/// A coupon code as WeChat takes it in MERCHANT_API mode: 1 to 32 letters and digits (wxkit's own 26-character
/// codes fit).
pub fn check_coupon_code(code: &str) -> Result<()> {
    if code.is_empty() || code.len() > 32 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::invalid("coupon_code must be 1 to 32 letters and digits"));
    }
    Ok(())
}

/// What a coupon of the stock is worth. Amounts in fen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CouponValue {
    /// `NORMAL`: a fixed amount off from a minimum spend.
    Normal {
        /// Off, fen.
        discount_amount: u64,
        /// Minimum spend, fen (greater than the amount off).
        transaction_minimum: u64,
    },
    /// `DISCOUNT`: a percentage to pay (`88`: pay 88 %).
    Discount {
        /// 1 to 99.
        discount_percent: u32,
        /// Minimum spend, fen.
        transaction_minimum: u64,
    },
    /// `EXCHANGE`: an item for a price (a free coffee: 1 fen), from a minimum spend.
    Exchange {
        /// The price, fen.
        exchange_price: u64,
        /// Minimum spend, fen (greater than the price).
        transaction_minimum: u64,
    },
}

impl CouponValue {
    fn stock_type(&self) -> &'static str {
        match self {
            CouponValue::Normal { .. } => "NORMAL",
            CouponValue::Discount { .. } => "DISCOUNT",
            CouponValue::Exchange { .. } => "EXCHANGE",
        }
    }

    fn check(&self) -> Result<()> {
        match *self {
            CouponValue::Normal {
                discount_amount,
                transaction_minimum,
            } if discount_amount == 0 || transaction_minimum <= discount_amount => Err(Error::invalid(
                "a NORMAL coupon takes a positive amount off a larger minimum spend",
            )),
            CouponValue::Discount { discount_percent, .. } if !(1..=99).contains(&discount_percent) => {
                Err(Error::invalid("discount_percent is 1 to 99"))
            }
            CouponValue::Exchange {
                exchange_price,
                transaction_minimum,
            } if transaction_minimum <= exchange_price => Err(Error::invalid(
                "an EXCHANGE coupon's minimum spend must be more than its price",
            )),
            _ => Ok(()),
        }
    }

    fn json(&self) -> (&'static str, Value) {
        match *self {
            CouponValue::Normal {
                discount_amount,
                transaction_minimum,
            } => (
                "fixed_normal_coupon",
                json!({"discount_amount": discount_amount, "transaction_minimum": transaction_minimum}),
            ),
            CouponValue::Discount {
                discount_percent,
                transaction_minimum,
            } => (
                "discount_coupon",
                json!({"discount_percent": discount_percent, "transaction_minimum": transaction_minimum}),
            ),
            CouponValue::Exchange {
                exchange_price,
                transaction_minimum,
            } => (
                "exchange_coupon",
                json!({"exchange_price": exchange_price, "transaction_minimum": transaction_minimum}),
            ),
        }
    }
}

/// Who makes the codes (`coupon_code_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CodeMode {
    /// `MERCHANT_API`: the merchant names the code when sending — the till scans the merchant's own code.
    #[default]
    MerchantApi,
    /// `WECHATPAY_MODE`: WeChat makes 22-digit codes.
    WechatPay,
    /// `MERCHANT_UPLOAD`: codes uploaded in advance.
    MerchantUpload,
}

impl CodeMode {
    /// WeChat's name.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeMode::MerchantApi => "MERCHANT_API",
            CodeMode::WechatPay => "WECHATPAY_MODE",
            CodeMode::MerchantUpload => "MERCHANT_UPLOAD",
        }
    }
}

/// `POST /v3/marketing/busifavor/stocks`: a new stock (批次). Checked against WeChat's limits before sending
/// ([`check`](Self::check)): name ≤ 21 bytes, merchant name ≤ 16 bytes, comment ≤ 20 characters, usage notes ≤ 1000
/// characters, per-user limit 1 to 100, a window that ends after it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateStock {
    stock_name: String,
    value: CouponValue,
    window: (i64, i64),
    max_coupons: u64,
    max_coupons_per_user: u32,
    out_request_no: String,
    code_mode: CodeMode,
    comment: Option<String>,
    goods_name: Option<String>,
    merchant_name: Option<String>,
    logo_url: Option<String>,
    description: Option<String>,
    background_color: Option<String>,
    notify_appid: Option<String>,
}

/// A created stock.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct StockCreated {
    /// WeChat's stock id.
    pub stock_id: String,
    /// When (RFC 3339).
    #[serde(default)]
    pub create_time: String,
}

impl CreateStock {
    /// A stock named `stock_name` (≤ 21 bytes) of `max_coupons` coupons worth `value`, good for `goods_name` (shown in
    /// the card bag, ≤ 45 bytes), usable from `window.0` to `window.1` (Unix seconds), at most `max_coupons_per_user`
    /// each, created once per `out_request_no`. Codes: MERCHANT_API; redeemed: OFF_LINE.
    pub fn new(
        stock_name: &str,
        goods_name: &str,
        value: CouponValue,
        window: (i64, i64),
        max_coupons: u64,
        max_coupons_per_user: u32,
        out_request_no: &str,
    ) -> Result<Self> {
        let stock = CreateStock {
            stock_name: stock_name.to_owned(),
            value,
            window,
            max_coupons,
            max_coupons_per_user,
            out_request_no: out_request_no.to_owned(),
            code_mode: CodeMode::MerchantApi,
            comment: None,
            goods_name: Some(goods_name.to_owned()),
            merchant_name: None,
            logo_url: None,
            description: None,
            background_color: None,
            notify_appid: None,
        };
        stock.check()?;
        Ok(stock)
    }

    /// Who makes the codes (default MERCHANT_API).
    pub fn code_mode(mut self, mode: CodeMode) -> Self {
        self.code_mode = mode;
        self
    }

    /// The merchant's name on the coupon (≤ 16 bytes).
    pub fn merchant_name(mut self, name: &str) -> Self {
        self.merchant_name = Some(name.to_owned());
        self
    }

    /// The logo: a URL from [`ImageUpload`] (120 × 120).
    pub fn logo_url(mut self, url: &str) -> Self {
        self.logo_url = Some(url.to_owned());
        self
    }

    /// 使用须知, shown on the coupon's page (≤ 1000 characters).
    pub fn description(mut self, text: &str) -> Self {
        self.description = Some(text.to_owned());
        self
    }

    /// A note only the merchant sees (≤ 20 characters).
    pub fn comment(mut self, text: &str) -> Self {
        self.comment = Some(text.to_owned());
        self
    }

    /// `Color010` … `Color100`.
    pub fn background_color(mut self, color: &str) -> Self {
        self.background_color = Some(color.to_owned());
        self
    }

    /// The app whose openids the `COUPON.SEND` notify carries (without it WeChat leaves them empty).
    pub fn notify_appid(mut self, appid: &str) -> Self {
        self.notify_appid = Some(appid.to_owned());
        self
    }

    /// Checks every field against WeChat's limits.
    pub fn check(&self) -> Result<()> {
        check_bytes("stock_name", &self.stock_name, 21)?;
        self.value.check()?;
        if self.window.1 <= self.window.0 {
            return Err(Error::invalid("the stock's window must end after it starts"));
        }
        if self.max_coupons == 0 || self.max_coupons > 1_000_000_000 {
            return Err(Error::invalid("max_coupons is 1 to 1,000,000,000"));
        }
        if !(1..=100).contains(&self.max_coupons_per_user) {
            return Err(Error::invalid("max_coupons_per_user is 1 to 100"));
        }
        check_token("out_request_no", &self.out_request_no, 128)?;
        if let Some(n) = &self.merchant_name {
            check_bytes("merchant_name", n, 16)?;
        }
        if let Some(c) = &self.comment
            && c.chars().count() > 20
        {
            return Err(Error::invalid("comment is at most 20 characters"));
        }
        match &self.goods_name {
            Some(g) => check_bytes("goods_name", g, 45)?,
            None => {
                return Err(Error::invalid(
                    "goods_name (what the coupon is good for, shown in the card bag) is required",
                ));
            }
        }
        if let Some(d) = &self.description
            && d.chars().count() > 1000
        {
            return Err(Error::invalid("description is at most 1000 characters"));
        }
        if let Some(c) = &self.background_color {
            let ok = c.len() == 8
                && c.starts_with("Color")
                && c[5..]
                    .parse::<u32>()
                    .is_ok_and(|n| n % 10 == 0 && (10..=100).contains(&n));
            if !ok {
                return Err(Error::invalid("background_color is one of Color010 … Color100"));
            }
        }
        Ok(())
    }
}

impl V3Request for CreateStock {
    type Response = StockCreated;

    fn method(&self) -> http::Method {
        http::Method::POST
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        self.check()?;
        Ok("/v3/marketing/busifavor/stocks".into())
    }

    fn body(&self, mch_id: &str) -> Option<Value> {
        let (rule_key, rule) = self.value.json();
        let mut use_rule = json!({
            "coupon_available_time": {
                "available_begin_time": rfc3339_beijing(self.window.0),
                "available_end_time": rfc3339_beijing(self.window.1),
            },
            "use_method": "OFF_LINE",
        });
        use_rule[rule_key] = rule;
        let mut display = serde_json::Map::new();
        for (k, v) in [
            ("merchant_name", &self.merchant_name),
            ("merchant_logo_url", &self.logo_url),
            ("description", &self.description),
            ("background_color", &self.background_color),
        ] {
            if let Some(v) = v {
                display.insert(k.into(), json!(v));
            }
        }
        let mut body = json!({
            "stock_name": self.stock_name,
            "belong_merchant": mch_id,
            "stock_type": self.value.stock_type(),
            "coupon_use_rule": use_rule,
            "stock_send_rule": {
                "max_coupons": self.max_coupons,
                "max_coupons_per_user": self.max_coupons_per_user,
            },
            "out_request_no": self.out_request_no,
            "coupon_code_mode": self.code_mode.as_str(),
            "display_pattern_info": display,
        });
        if let Some(c) = &self.comment {
            body["comment"] = json!(c);
        }
        if let Some(g) = &self.goods_name {
            body["goods_name"] = json!(g);
        }
        if let Some(a) = &self.notify_appid {
            body["notify_config"] = json!({ "notify_appid": a });
        }
        Some(body)
    }

    fn idempotent(&self) -> bool {
        // WeChat creates one stock per out_request_no: resending the same value is safe, but it is still a change.
        false
    }

    fn read(&self, _: &str, body: &[u8]) -> Result<StockCreated> {
        let s: StockCreated = json_of(body, "stock_id")?;
        check_token("stock_id", &s.stock_id, 20).map_err(|_| Error::MissingField("stock_id"))?;
        Ok(s)
    }
}

/// How many a stock may send, and how many it did.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct SendRule {
    /// The budget in coupons.
    pub max_coupons: u64,
    /// Per user.
    pub max_coupons_per_user: u32,
}

/// What was sent so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct SendCount {
    /// Coupons sent.
    #[serde(default)]
    pub total_send_num: u64,
}

/// A stock as WeChat Pay holds it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct StockInfo {
    /// Its id.
    pub stock_id: String,
    /// Its name.
    pub stock_name: String,
    /// The merchant it belongs to.
    pub belong_merchant: String,
    /// `UNAUDIT`, `RUNNING`, `STOPED`, `PAUSED`.
    pub stock_state: String,
    /// `MERCHANT_API`, …
    pub coupon_code_mode: String,
    /// The budget.
    pub stock_send_rule: SendRule,
    /// What was sent (WeChat spells it `send_count_information`).
    #[serde(default, rename = "send_count_information")]
    pub send_count: SendCount,
}

/// `GET /v3/marketing/busifavor/stocks/{stock_id}`; a stock of another merchant is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryStock(String);

impl QueryStock {
    /// The stock `stock_id`.
    pub fn new(stock_id: &str) -> Result<Self> {
        check_token("stock_id", stock_id, 20)?;
        Ok(Self(stock_id.to_owned()))
    }
}

impl V3Request for QueryStock {
    type Response = StockInfo;

    fn method(&self) -> http::Method {
        http::Method::GET
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        Ok(format!("/v3/marketing/busifavor/stocks/{}", self.0))
    }

    fn body(&self, _: &str) -> Option<Value> {
        None
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn read(&self, mch_id: &str, body: &[u8]) -> Result<StockInfo> {
        let s: StockInfo = json_of(body, "stock_id")?;
        if s.belong_merchant != mch_id {
            return Err(Error::MerchantMismatch {
                field: "belong_merchant",
            });
        }
        if s.stock_id != self.0 {
            return Err(Error::MissingField("stock_id"));
        }
        Ok(s)
    }
}

/// `PATCH /v3/marketing/busifavor/stocks/{stock_id}`: the stock's name, comment or usage notes (WeChat answers 204).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModifyStock {
    stock_id: String,
    out_request_no: String,
    stock_name: Option<String>,
    comment: Option<String>,
    description: Option<String>,
}

impl ModifyStock {
    /// A change of `stock_id`, once per `out_request_no`.
    pub fn new(stock_id: &str, out_request_no: &str) -> Result<Self> {
        check_token("stock_id", stock_id, 20)?;
        check_token("out_request_no", out_request_no, 128)?;
        Ok(Self {
            stock_id: stock_id.to_owned(),
            out_request_no: out_request_no.to_owned(),
            stock_name: None,
            comment: None,
            description: None,
        })
    }

    /// A new name (≤ 21 bytes).
    pub fn stock_name(mut self, name: &str) -> Result<Self> {
        check_bytes("stock_name", name, 21)?;
        self.stock_name = Some(name.to_owned());
        Ok(self)
    }

    /// A new merchant-only comment.
    pub fn comment(mut self, text: &str) -> Self {
        self.comment = Some(text.to_owned());
        self
    }

    /// New usage notes (使用须知).
    pub fn description(mut self, text: &str) -> Self {
        self.description = Some(text.to_owned());
        self
    }
}

impl V3Request for ModifyStock {
    type Response = ();

    fn method(&self) -> http::Method {
        http::Method::PATCH
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        Ok(format!("/v3/marketing/busifavor/stocks/{}", self.stock_id))
    }

    fn body(&self, _: &str) -> Option<Value> {
        let mut body = json!({ "out_request_no": self.out_request_no });
        if let Some(n) = &self.stock_name {
            body["stock_name"] = json!(n);
        }
        if let Some(c) = &self.comment {
            body["comment"] = json!(c);
        }
        if let Some(d) = &self.description {
            body["display_pattern_info"] = json!({ "description": d });
        }
        Some(body)
    }

    fn idempotent(&self) -> bool {
        false
    }

    fn read(&self, _: &str, _: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// `PATCH /v3/marketing/busifavor/stocks/{stock_id}/budget`: the budget from `current` to `target` coupons —
/// WeChat refuses when `current` is not what it holds (compare-and-set, so two operators do not overwrite each
/// other).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModifyBudget {
    stock_id: String,
    current: u64,
    target: u64,
    request_no: String,
}

/// The budget after a change.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Budget {
    /// The budget in coupons.
    pub max_coupons: u64,
}

impl ModifyBudget {
    /// From `current` to `target` coupons, once per `request_no`.
    pub fn new(stock_id: &str, current: u64, target: u64, request_no: &str) -> Result<Self> {
        check_token("stock_id", stock_id, 20)?;
        check_token("modify_budget_request_no", request_no, 128)?;
        if target == 0 {
            return Err(Error::invalid("the target budget must be positive"));
        }
        Ok(Self {
            stock_id: stock_id.to_owned(),
            current,
            target,
            request_no: request_no.to_owned(),
        })
    }
}

impl V3Request for ModifyBudget {
    type Response = Budget;

    fn method(&self) -> http::Method {
        http::Method::PATCH
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        Ok(format!("/v3/marketing/busifavor/stocks/{}/budget", self.stock_id))
    }

    fn body(&self, _: &str) -> Option<Value> {
        Some(json!({
            "target_max_coupons": self.target,
            "current_max_coupons": self.current,
            "modify_budget_request_no": self.request_no,
        }))
    }

    fn idempotent(&self) -> bool {
        false
    }

    fn read(&self, _: &str, body: &[u8]) -> Result<Budget> {
        json_of(body, "max_coupons")
    }
}

/// `POST /v3/marketing/busifavor/coupons/use`: redeems (核销) a coupon in the user's card bag. WeChat answers the
/// same `use_request_no` with the same success, so a retry after a lost answer is safe — keep the number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UseCoupon {
    coupon_code: String,
    stock_id: String,
    appid: String,
    use_time: i64,
    use_request_no: String,
    openid: Option<String>,
}

/// A redeemed coupon.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Used {
    /// The stock.
    pub stock_id: String,
    /// The holder, under the request's appid.
    #[serde(default)]
    pub openid: String,
    /// When WeChat recorded it.
    #[serde(default)]
    pub wechatpay_use_time: String,
}

impl UseCoupon {
    /// Redeems `coupon_code` of `stock_id` at `use_time` (Unix seconds), once per `use_request_no`; `appid` is an
    /// app bound to the merchant.
    pub fn new(coupon_code: &str, stock_id: &str, appid: &str, use_time: i64, use_request_no: &str) -> Result<Self> {
        check_coupon_code(coupon_code)?;
        check_token("stock_id", stock_id, 20)?;
        check_token("appid", appid, 32)?;
        check_token("use_request_no", use_request_no, 32)?;
        Ok(Self {
            coupon_code: coupon_code.to_owned(),
            stock_id: stock_id.to_owned(),
            appid: appid.to_owned(),
            use_time,
            use_request_no: use_request_no.to_owned(),
            openid: None,
        })
    }

    /// The holder's openid, which WeChat then checks.
    pub fn openid(mut self, openid: &str) -> Self {
        self.openid = Some(openid.to_owned());
        self
    }
}

impl V3Request for UseCoupon {
    type Response = Used;

    fn method(&self) -> http::Method {
        http::Method::POST
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        Ok("/v3/marketing/busifavor/coupons/use".into())
    }

    fn body(&self, _: &str) -> Option<Value> {
        let mut body = json!({
            "coupon_code": self.coupon_code,
            "stock_id": self.stock_id,
            "appid": self.appid,
            "use_time": rfc3339_beijing(self.use_time),
            "use_request_no": self.use_request_no,
        });
        if let Some(o) = &self.openid {
            body["openid"] = json!(o);
        }
        Some(body)
    }

    fn idempotent(&self) -> bool {
        false
    }

    fn read(&self, _: &str, body: &[u8]) -> Result<Used> {
        let u: Used = json_of(body, "stock_id")?;
        if u.stock_id != self.stock_id {
            return Err(Error::MissingField("stock_id"));
        }
        Ok(u)
    }
}

/// A coupon in a user's card bag.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct UserCoupon {
    /// Its code.
    pub coupon_code: String,
    /// Its stock.
    pub stock_id: String,
    /// `SENDED` (usable), `USED`, `EXPIRED`, `DELETED`, `DEACTIVATED`.
    pub coupon_state: String,
    /// The merchant the stock belongs to.
    pub belong_merchant: String,
    /// When the user received it.
    #[serde(default)]
    pub receive_time: Option<String>,
    /// The send's `out_request_no`.
    #[serde(default)]
    pub send_request_no: Option<String>,
    /// The use's `use_request_no`, once used.
    #[serde(default)]
    pub use_request_no: Option<String>,
}

/// `GET /v3/marketing/busifavor/users/{openid}/coupons/{coupon_code}/appids/{appid}`: one coupon of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryUserCoupon {
    openid: String,
    coupon_code: String,
    appid: String,
}

impl QueryUserCoupon {
    /// `coupon_code` of the user `openid` (under `appid`).
    pub fn new(openid: &str, coupon_code: &str, appid: &str) -> Result<Self> {
        check_token("openid", openid, 128)?;
        check_coupon_code(coupon_code)?;
        check_token("appid", appid, 32)?;
        Ok(Self {
            openid: openid.to_owned(),
            coupon_code: coupon_code.to_owned(),
            appid: appid.to_owned(),
        })
    }
}

impl V3Request for QueryUserCoupon {
    type Response = UserCoupon;

    fn method(&self) -> http::Method {
        http::Method::GET
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        Ok(format!(
            "/v3/marketing/busifavor/users/{}/coupons/{}/appids/{}",
            self.openid, self.coupon_code, self.appid
        ))
    }

    fn body(&self, _: &str) -> Option<Value> {
        None
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn read(&self, mch_id: &str, body: &[u8]) -> Result<UserCoupon> {
        let c: UserCoupon = json_of(body, "coupon_code")?;
        if c.belong_merchant != mch_id {
            return Err(Error::MerchantMismatch {
                field: "belong_merchant",
            });
        }
        if c.coupon_code != self.coupon_code {
            return Err(Error::MissingField("coupon_code"));
        }
        Ok(c)
    }
}

/// `GET /v3/marketing/busifavor/users/{openid}/coupons`: a user's coupons of this merchant, filtered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryUserCoupons {
    openid: String,
    appid: String,
    stock_id: Option<String>,
    coupon_state: Option<String>,
    offset: u32,
    limit: u32,
}

/// A page of a user's coupons.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct UserCoupons {
    /// The coupons.
    #[serde(default)]
    pub data: Vec<UserCoupon>,
    /// How many match.
    #[serde(default)]
    pub total_count: u64,
}

impl QueryUserCoupons {
    /// The coupons of `openid` (under `appid`), the first 20.
    pub fn new(openid: &str, appid: &str) -> Result<Self> {
        check_token("openid", openid, 128)?;
        check_token("appid", appid, 32)?;
        Ok(Self {
            openid: openid.to_owned(),
            appid: appid.to_owned(),
            stock_id: None,
            coupon_state: None,
            offset: 0,
            limit: 20,
        })
    }

    /// Only of `stock_id`.
    pub fn stock(mut self, stock_id: &str) -> Result<Self> {
        check_token("stock_id", stock_id, 20)?;
        self.stock_id = Some(stock_id.to_owned());
        Ok(self)
    }

    /// Only in `state` (`SENDED`, `USED`, `EXPIRED`).
    pub fn state(mut self, state: &str) -> Result<Self> {
        check_token("coupon_state", state, 16)?;
        self.coupon_state = Some(state.to_owned());
        Ok(self)
    }

    /// The page: from `offset`, `limit` (1 to 50).
    pub fn page(mut self, offset: u32, limit: u32) -> Result<Self> {
        if !(1..=50).contains(&limit) {
            return Err(Error::invalid("limit is 1 to 50"));
        }
        self.offset = offset;
        self.limit = limit;
        Ok(self)
    }
}

impl V3Request for QueryUserCoupons {
    type Response = UserCoupons;

    fn method(&self) -> http::Method {
        http::Method::GET
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        let mut q = format!(
            "/v3/marketing/busifavor/users/{}/coupons?appid={}",
            self.openid, self.appid
        );
        if let Some(s) = &self.stock_id {
            q.push_str(&format!("&stock_id={s}"));
        }
        if let Some(s) = &self.coupon_state {
            q.push_str(&format!("&coupon_state={s}"));
        }
        q.push_str(&format!("&offset={}&limit={}", self.offset, self.limit));
        Ok(q)
    }

    fn body(&self, _: &str) -> Option<Value> {
        None
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn read(&self, mch_id: &str, body: &[u8]) -> Result<UserCoupons> {
        let page: UserCoupons = json_of(body, "data")?;
        if page.data.iter().any(|c| c.belong_merchant != mch_id) {
            return Err(Error::MerchantMismatch {
                field: "belong_merchant",
            });
        }
        Ok(page)
    }
}

/// What deactivating or returning a coupon answers: WeChat's time of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    /// RFC 3339.
    pub at: String,
}

/// `POST /v3/marketing/busifavor/coupons/deactivate` (使券失效): a usable coupon can no longer be used. Once per
/// `deactivate_request_no` (the same number again is the same success).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeactivateCoupon {
    coupon_code: String,
    stock_id: String,
    request_no: String,
    reason: Option<String>,
}

impl DeactivateCoupon {
    /// Deactivates `coupon_code` of `stock_id`, once per `request_no`.
    pub fn new(coupon_code: &str, stock_id: &str, request_no: &str) -> Result<Self> {
        check_coupon_code(coupon_code)?;
        check_token("stock_id", stock_id, 20)?;
        check_token("deactivate_request_no", request_no, 128)?;
        Ok(Self {
            coupon_code: coupon_code.to_owned(),
            stock_id: stock_id.to_owned(),
            request_no: request_no.to_owned(),
            reason: None,
        })
    }

    /// Why (≤ 64 characters; for the merchant's records).
    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.chars().take(64).collect());
        self
    }
}

impl V3Request for DeactivateCoupon {
    type Response = Done;

    fn method(&self) -> http::Method {
        http::Method::POST
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        Ok("/v3/marketing/busifavor/coupons/deactivate".into())
    }

    fn body(&self, _: &str) -> Option<Value> {
        let mut body = json!({
            "coupon_code": self.coupon_code,
            "stock_id": self.stock_id,
            "deactivate_request_no": self.request_no,
        });
        if let Some(r) = &self.reason {
            body["deactivate_reason"] = json!(r);
        }
        Some(body)
    }

    fn idempotent(&self) -> bool {
        false
    }

    fn read(&self, _: &str, body: &[u8]) -> Result<Done> {
        #[derive(Deserialize)]
        struct B {
            wechatpay_deactivate_time: String,
        }
        let b: B = json_of(body, "wechatpay_deactivate_time")?;
        Ok(Done {
            at: b.wechatpay_deactivate_time,
        })
    }
}

/// `POST /v3/marketing/busifavor/coupons/return` (退券): a used coupon back to usable, once per `return_request_no`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnCoupon {
    coupon_code: String,
    stock_id: String,
    request_no: String,
}

impl ReturnCoupon {
    /// Returns `coupon_code` of `stock_id`, once per `request_no`.
    pub fn new(coupon_code: &str, stock_id: &str, request_no: &str) -> Result<Self> {
        check_coupon_code(coupon_code)?;
        check_token("stock_id", stock_id, 20)?;
        check_token("return_request_no", request_no, 128)?;
        Ok(Self {
            coupon_code: coupon_code.to_owned(),
            stock_id: stock_id.to_owned(),
            request_no: request_no.to_owned(),
        })
    }
}

impl V3Request for ReturnCoupon {
    type Response = Done;

    fn method(&self) -> http::Method {
        http::Method::POST
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        Ok("/v3/marketing/busifavor/coupons/return".into())
    }

    fn body(&self, _: &str) -> Option<Value> {
        Some(json!({
            "coupon_code": self.coupon_code,
            "stock_id": self.stock_id,
            "return_request_no": self.request_no,
        }))
    }

    fn idempotent(&self) -> bool {
        false
    }

    fn read(&self, _: &str, body: &[u8]) -> Result<Done> {
        #[derive(Deserialize)]
        struct B {
            wechatpay_return_time: String,
        }
        let b: B = json_of(body, "wechatpay_return_time")?;
        Ok(Done {
            at: b.wechatpay_return_time,
        })
    }
}

/// The merchant's 商家券 notify URL.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Callbacks {
    /// The merchant.
    pub mchid: String,
    /// Where `COUPON.SEND` and the other events go.
    pub notify_url: String,
}

/// `POST /v3/marketing/busifavor/callbacks`: where the merchant's coupon events go (one URL per merchant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetCallbacks(String);

impl SetCallbacks {
    /// Events to `notify_url` (https, as WeChat requires of a live merchant; any URL against a simulator).
    pub fn new(notify_url: &str) -> Result<Self> {
        let url = Url::parse(notify_url).map_err(|e| Error::invalid(format!("notify_url: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") || notify_url.len() > 255 {
            return Err(Error::invalid(
                "notify_url must be an http(s) URL of at most 255 characters",
            ));
        }
        Ok(Self(notify_url.to_owned()))
    }
}

impl V3Request for SetCallbacks {
    type Response = Callbacks;

    fn method(&self) -> http::Method {
        http::Method::POST
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        Ok("/v3/marketing/busifavor/callbacks".into())
    }

    fn body(&self, mch_id: &str) -> Option<Value> {
        Some(json!({ "mchid": mch_id, "notify_url": self.0 }))
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn read(&self, mch_id: &str, body: &[u8]) -> Result<Callbacks> {
        let c: Callbacks = json_of(body, "notify_url")?;
        if c.mchid != mch_id {
            return Err(Error::MerchantMismatch { field: "mchid" });
        }
        Ok(c)
    }
}

/// `GET /v3/marketing/busifavor/callbacks?mchid=…`: where the merchant's events go now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryCallbacks;

impl V3Request for QueryCallbacks {
    type Response = Callbacks;

    fn method(&self) -> http::Method {
        http::Method::GET
    }

    fn path_and_query(&self, mch_id: &str) -> Result<String> {
        Ok(format!("/v3/marketing/busifavor/callbacks?mchid={mch_id}"))
    }

    fn body(&self, _: &str) -> Option<Value> {
        None
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn read(&self, mch_id: &str, body: &[u8]) -> Result<Callbacks> {
        let c: Callbacks = json_of(body, "notify_url")?;
        if c.mchid != mch_id {
            return Err(Error::MerchantMismatch { field: "mchid" });
        }
        Ok(c)
    }
}

/// `POST /v3/marketing/favor/media/image-upload`: a logo or coupon image (JPG/PNG, < 1 MB for a logo, < 2 MB for an
/// image) → the URL to put in a stock. A multipart request: `meta` (`{"filename","sha256"}`, which is what is
/// signed) and `file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUpload {
    filename: String,
    data: Vec<u8>,
}

/// The boundary of the upload's multipart body.
const BOUNDARY: &str = "wxkit-busifavor-boundary-7MA4YWxkTrZu0gW";

impl ImageUpload {
    /// `data` (a PNG or JPEG, ≤ 2 MB) named `filename` (`.png`, `.jpg`, `.jpeg`).
    pub fn new(filename: &str, data: Vec<u8>) -> Result<Self> {
        let lower = filename.to_ascii_lowercase();
        if !(lower.ends_with(".png") || lower.ends_with(".jpg") || lower.ends_with(".jpeg")) || filename.len() > 128 {
            return Err(Error::invalid("the image's filename must end in .png, .jpg or .jpeg"));
        }
        let png = data.starts_with(b"\x89PNG\r\n\x1a\n");
        let jpeg = data.starts_with(&[0xFF, 0xD8, 0xFF]);
        if !(png || jpeg) {
            return Err(Error::invalid("the image is neither a PNG nor a JPEG"));
        }
        if data.len() > 2 * 1024 * 1024 {
            return Err(Error::invalid("the image is larger than WeChat's 2 MB"));
        }
        Ok(Self {
            filename: filename.to_owned(),
            data,
        })
    }

    /// The signed `meta` part.
    pub fn meta(&self) -> String {
        let digest = sha2::Sha256::digest(&self.data);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        json!({ "filename": self.filename, "sha256": hex }).to_string()
    }
}

impl V3Request for ImageUpload {
    type Response = String;

    fn method(&self) -> http::Method {
        http::Method::POST
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        Ok("/v3/marketing/favor/media/image-upload".into())
    }

    fn body(&self, _: &str) -> Option<Value> {
        // Not JSON: `to_http` writes the multipart body.
        None
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn to_http(&self, signer: &RequestSigner, base_url: &Url, timestamp: i64, nonce: &str) -> Result<HttpRequest> {
        let meta = self.meta();
        // The signature covers `meta` only, as WeChat specifies for uploads; the multipart body carries both parts.
        let authorization = signer.authorization(
            "POST",
            "/v3/marketing/favor/media/image-upload",
            timestamp,
            nonce,
            meta.as_bytes(),
        );
        let content_type = if self.filename.to_ascii_lowercase().ends_with(".png") {
            "image/png"
        } else {
            "image/jpeg"
        };
        let mut body = Vec::with_capacity(self.data.len() + 512);
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{meta}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {content_type}\r\n\r\n",
                self.filename
            )
            .as_bytes(),
        );
        body.extend_from_slice(&self.data);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let mut http = signed_request(
            signer,
            base_url,
            http::Method::POST,
            "/v3/marketing/favor/media/image-upload",
            body,
            timestamp,
            nonce,
        )?;
        let headers = http.headers_mut();
        headers.insert(
            http::header::AUTHORIZATION,
            authorization
                .parse()
                .map_err(|_| Error::invalid("authorization header"))?,
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}")
                .parse()
                .map_err(|_| Error::invalid("content type"))?,
        );
        Ok(http)
    }

    fn read(&self, _: &str, body: &[u8]) -> Result<String> {
        #[derive(Deserialize)]
        struct B {
            media_url: String,
        }
        let b: B = json_of(body, "media_url")?;
        if !(b.media_url.starts_with("https://") || b.media_url.starts_with("http://")) {
            return Err(Error::MissingField("media_url"));
        }
        Ok(b.media_url)
    }
}

/// The URL of WeChat's H5 领券 page for one coupon: the user (`open_id`, an openid of an app bound to the merchant)
/// taps 领取 there and the coupon goes to their card bag. `coupon_code` is required for a MERCHANT_API stock.
/// `out_request_no` identifies the attempt (unique per attempt; letters and digits, ≤ 128). Signed with the API v2
/// key (HMAC-SHA256 over every parameter but `sign`, sorted, `&key=…`), as WeChat specifies for this page — compute it
/// on the server, never in the page. `base` is [`H5_BASE_URL`] (or a simulator).
pub fn h5_send_url(
    base: &str,
    stock_id: &str,
    out_request_no: &str,
    send_coupon_merchant: &str,
    open_id: &str,
    coupon_code: Option<&str>,
    key: &PayKey,
) -> Result<String> {
    check_token("stock_id", stock_id, 20)?;
    if out_request_no.is_empty()
        || out_request_no.len() > 128
        || !out_request_no.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(Error::invalid("out_request_no must be 1 to 128 letters and digits"));
    }
    check_token("send_coupon_merchant", send_coupon_merchant, 32)?;
    check_token("open_id", open_id, 128)?;
    if let Some(c) = coupon_code {
        check_coupon_code(c)?;
    }
    let mut fields = vec![
        ("stock_id", stock_id),
        ("out_request_no", out_request_no),
        ("send_coupon_merchant", send_coupon_merchant),
        ("open_id", open_id),
    ];
    if let Some(c) = coupon_code {
        fields.push(("coupon_code", c));
    }
    let signature = sign(fields.iter().copied(), key, SignType::HmacSha256);
    let mut url = Url::parse(base)
        .and_then(|b| b.join("/busifavor/getcouponinfo"))
        .map_err(|e| Error::invalid(format!("base: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("stock_id", stock_id)
            .append_pair("out_request_no", out_request_no)
            .append_pair("sign", &signature)
            .append_pair("send_coupon_merchant", send_coupon_merchant)
            .append_pair("open_id", open_id);
        if let Some(c) = coupon_code {
            q.append_pair("coupon_code", c);
        }
    }
    // WeChat's page refuses a link without this fragment (error 268435461).
    url.set_fragment(Some("wechat_pay&wechat_redirect"));
    Ok(url.to_string())
}

/// One coupon for the mini-program `send-coupon` plugin.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PluginCoupon {
    /// The stock.
    pub stock_id: String,
    /// The attempt.
    pub out_request_no: String,
    /// The code (MERCHANT_API stocks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon_code: Option<String>,
}

/// What the mini program passes to `<send-coupon>`: `send_coupon_params`, `send_coupon_merchant`, `sign`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PluginParams {
    /// The coupons.
    pub send_coupon_params: Vec<PluginCoupon>,
    /// The sending merchant.
    pub send_coupon_merchant: String,
    /// HMAC-SHA256 with the API v2 key over the indexed fields (`stock_id0`, `out_request_no0`, `coupon_code0`, …,
    /// `send_coupon_merchant`).
    pub sign: String,
}

/// The `send-coupon` plugin's parameters for `coupons` (1 to 10), signed with the API v2 key as WeChat specifies:
/// every coupon's fields indexed from 0, sorted, `&key=…`.
pub fn plugin_params(coupons: Vec<PluginCoupon>, send_coupon_merchant: &str, key: &PayKey) -> Result<PluginParams> {
    if coupons.is_empty() || coupons.len() > 10 {
        return Err(Error::invalid("the plugin sends 1 to 10 coupons at once"));
    }
    check_token("send_coupon_merchant", send_coupon_merchant, 32)?;
    let mut owned: Vec<(String, String)> = Vec::new();
    for (i, c) in coupons.iter().enumerate() {
        check_token("stock_id", &c.stock_id, 20)?;
        check_token("out_request_no", &c.out_request_no, 128)?;
        owned.push((format!("stock_id{i}"), c.stock_id.clone()));
        owned.push((format!("out_request_no{i}"), c.out_request_no.clone()));
        if let Some(code) = &c.coupon_code {
            check_coupon_code(code)?;
            owned.push((format!("coupon_code{i}"), code.clone()));
        }
    }
    owned.push(("send_coupon_merchant".into(), send_coupon_merchant.to_owned()));
    let signature = sign(
        owned.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        key,
        SignType::HmacSha256,
    );
    Ok(PluginParams {
        send_coupon_params: coupons,
        send_coupon_merchant: send_coupon_merchant.to_owned(),
        sign: signature,
    })
}

/// The `COUPON.SEND` notify's resource: a user received a coupon.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct CouponSent {
    /// `EVENT_TYPE_BUSICOUPON_SEND`.
    #[serde(default)]
    pub event_type: String,
    /// The coupon's code.
    pub coupon_code: String,
    /// Its stock.
    pub stock_id: String,
    /// When (RFC 3339).
    #[serde(default)]
    pub send_time: String,
    /// The user, under the stock's `notify_appid` (empty without one).
    #[serde(default)]
    pub openid: String,
    /// The user's unionid, when WeChat gives it.
    #[serde(default)]
    pub unionid: Option<String>,
    /// How it was sent (WeChat's `send_channel`, e.g. the mini-program plugin or the API), as sent.
    #[serde(default)]
    pub send_channel: String,
    /// The merchant that sent it.
    pub send_merchant: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::keys::{MerchantPrivateKey, PublicKey};
    use crate::v3::sign::response_message;
    use crate::v3::verifier::Verifier;
    use wechat_core::transport::HttpResponse;

    const MCH: &str = "1900000111";
    const PUB_KEY_ID: &str = "PUB_KEY_ID_0119000001092026112700000000000001";

    fn signer() -> RequestSigner {
        RequestSigner::new(
            MCH,
            "SERIAL1",
            MerchantPrivateKey::from_pem(include_str!("../../../testdata/merchant.key"))
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn signed(status: u16, body: &str, timestamp: i64) -> HttpResponse {
        let key = MerchantPrivateKey::from_pem(include_str!("../../../testdata/pubkey.key"))
            .unwrap_or_else(|e| panic!("{e}"));
        let ts = timestamp.to_string();
        let signature = key.sign(&response_message(&ts, "N1", body.as_bytes()));
        let mut response = http::Response::new(body.as_bytes().to_vec());
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
        for (k, v) in [
            ("wechatpay-serial", PUB_KEY_ID.to_owned()),
            ("wechatpay-signature", signature),
            ("wechatpay-timestamp", ts),
            ("wechatpay-nonce", "N1".to_owned()),
        ] {
            response
                .headers_mut()
                .insert(k, v.parse().unwrap_or_else(|_| http::HeaderValue::from_static("x")));
        }
        response
    }

    fn verifier() -> Verifier {
        let public =
            PublicKey::from_pem(include_str!("../../../testdata/pubkey.pem")).unwrap_or_else(|e| panic!("{e}"));
        Verifier::new().with_public_key(PUB_KEY_ID, public)
    }

    fn base() -> Url {
        Url::parse("http://sim.local/").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Builds the request, checks the Authorization covers exactly what is sent, and parses `answer` through the
    /// verifier: the genuine answer, a tampered copy and a stale one.
    fn round_trip<R: V3Request>(req: &R, answer: &str) -> Result<R::Response> {
        let now = 1_800_000_000;
        let http = req.to_http(&signer(), &base(), now, "NONCE")?;
        let auth = http.headers()["authorization"].to_str().unwrap_or_default();
        let parsed = crate::v3::Authorization::parse(auth).unwrap_or_else(|| panic!("unparsable: {auth}"));
        assert_eq!(parsed.mch_id, MCH);
        let path = http.uri().path_and_query().map(|p| p.as_str()).unwrap_or("");
        assert_eq!(path, req.path_and_query(MCH)?);
        if !http.body().is_empty() {
            assert_eq!(
                http.body().as_slice(),
                req.body(MCH).map(|b| b.to_string()).unwrap_or_default().as_bytes()
            );
        }
        let mut tampered = signed(200, answer, now);
        *tampered.body_mut() = format!("{answer} ").into_bytes();
        assert!(
            req.parse(MCH, &verifier(), &tampered, now).is_err(),
            "a tampered answer is refused"
        );
        assert!(
            req.parse(MCH, &verifier(), &signed(200, answer, now - 600), now)
                .is_err(),
            "a stale one too"
        );
        req.parse(MCH, &verifier(), &signed(200, answer, now), now)
    }

    fn stock() -> CreateStock {
        CreateStock::new(
            "免费咖啡",
            "咖啡一杯",
            CouponValue::Exchange {
                exchange_price: 1,
                transaction_minimum: 2,
            },
            (1_800_000_000, 1_802_592_000),
            500,
            1,
            "WXKITSTOCK0001",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_request_builds_and_reads_its_answer() {
        let created = round_trip(
            &stock().merchant_name("咖啡店").logo_url("https://qpic.cn/x"),
            r#"{"stock_id":"1290000000000001","create_time":"2027-01-15T10:00:00+08:00"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(created.stock_id, "1290000000000001");
        let body = stock().body(MCH).unwrap_or_default();
        assert_eq!(body["stock_type"], "EXCHANGE");
        assert_eq!(body["belong_merchant"], MCH);
        assert_eq!(body["coupon_use_rule"]["exchange_coupon"]["exchange_price"], 1);
        assert_eq!(
            body["coupon_use_rule"]["coupon_available_time"]["available_begin_time"],
            "2027-01-15T16:00:00+08:00"
        );
        assert_eq!(body["stock_send_rule"]["max_coupons_per_user"], 1);

        let info = r#"{"stock_id":"1290000000000001","stock_name":"免费咖啡","belong_merchant":"1900000111","stock_state":"RUNNING","coupon_code_mode":"MERCHANT_API","stock_send_rule":{"max_coupons":500,"max_coupons_per_user":1},"send_count_information":{"total_send_num":3}}"#;
        let q = QueryStock::new("1290000000000001").unwrap_or_else(|e| panic!("{e}"));
        let s = round_trip(&q, info).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.send_count.total_send_num, s.stock_send_rule.max_coupons), (3, 500));

        let m = ModifyStock::new("1290000000000001", "MOD1")
            .and_then(|m| m.stock_name("两杯咖啡"))
            .unwrap_or_else(|e| panic!("{e}"))
            .description("周一到周五");
        let http = m
            .to_http(&signer(), &base(), 1_800_000_000, "N")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(http.method(), http::Method::PATCH);

        let b = ModifyBudget::new("1290000000000001", 500, 800, "BUDGET1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            round_trip(&b, r#"{"max_coupons":800}"#)
                .map(|b| b.max_coupons)
                .unwrap_or(0),
            800
        );

        let code = "ABCDEFGHJKMNPQRSTUVWXYZ234";
        let u = UseCoupon::new(code, "1290000000000001", "wx1234567890abcdef", 1_800_000_000, "41")
            .unwrap_or_else(|e| panic!("{e}"))
            .openid("o-alice");
        let used = round_trip(
            &u,
            r#"{"stock_id":"1290000000000001","openid":"o-alice","wechatpay_use_time":"2027-01-15T16:00:00+08:00"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(used.openid, "o-alice");
        assert_eq!(u.body(MCH).unwrap_or_default()["use_request_no"], "41");

        let one = format!(
            r#"{{"coupon_code":"{code}","stock_id":"1290000000000001","coupon_state":"SENDED","belong_merchant":"1900000111"}}"#
        );
        let q = QueryUserCoupon::new("o-alice", code, "wx1234567890abcdef").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            round_trip(&q, &one).map(|c| c.coupon_state).unwrap_or_default(),
            "SENDED"
        );
        let list = QueryUserCoupons::new("o-alice", "wx1234567890abcdef")
            .and_then(|q| q.stock("1290000000000001"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            list.path_and_query(MCH)
                .unwrap_or_default()
                .contains("stock_id=1290000000000001")
        );
        let page =
            round_trip(&list, &format!(r#"{{"data":[{one}],"total_count":1}}"#)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(page.data.len(), 1);

        let d = DeactivateCoupon::new(code, "1290000000000001", "VOID41")
            .unwrap_or_else(|e| panic!("{e}"))
            .reason("作废");
        assert!(round_trip(&d, r#"{"wechatpay_deactivate_time":"2027-01-15T16:00:00+08:00"}"#).is_ok());
        let r = ReturnCoupon::new(code, "1290000000000001", "RET41").unwrap_or_else(|e| panic!("{e}"));
        assert!(round_trip(&r, r#"{"wechatpay_return_time":"2027-01-15T16:00:00+08:00"}"#).is_ok());

        let set = SetCallbacks::new("https://shop.example.com/wechat/pay/v3/notify").unwrap_or_else(|e| panic!("{e}"));
        let c = round_trip(
            &set,
            r#"{"mchid":"1900000111","notify_url":"https://shop.example.com/wechat/pay/v3/notify"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.notify_url, "https://shop.example.com/wechat/pay/v3/notify");
        assert!(
            round_trip(
                &QueryCallbacks,
                r#"{"mchid":"1900000111","notify_url":"https://x.example/n"}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn answers_naming_another_merchant_are_refused() {
        let now = 1_800_000_000;
        let foreign = r#"{"stock_id":"1290000000000001","stock_name":"x","belong_merchant":"1900000999","stock_state":"RUNNING","coupon_code_mode":"MERCHANT_API","stock_send_rule":{"max_coupons":5,"max_coupons_per_user":1}}"#;
        let q = QueryStock::new("1290000000000001").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            q.parse(MCH, &verifier(), &signed(200, foreign, now), now),
            Err(Error::MerchantMismatch { .. })
        ));
        let coupon = r#"{"coupon_code":"ABC","stock_id":"1","coupon_state":"SENDED","belong_merchant":"1900000999"}"#;
        let q = QueryUserCoupon::new("o-alice", "ABC", "wx1").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            q.parse(MCH, &verifier(), &signed(200, coupon, now), now),
            Err(Error::MerchantMismatch { .. })
        ));
        let cb = r#"{"mchid":"1900000999","notify_url":"https://evil.example/n"}"#;
        assert!(matches!(
            QueryCallbacks.parse(MCH, &verifier(), &signed(200, cb, now), now),
            Err(Error::MerchantMismatch { .. })
        ));
        // A forged answer (signed by a key WeChat does not hold) is refused too.
        let forged_key = MerchantPrivateKey::from_pem(include_str!("../../../testdata/merchant.key"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut forged = signed(
            200,
            r#"{"mchid":"1900000111","notify_url":"https://evil.example/n"}"#,
            now,
        );
        let sig = forged_key.sign(&response_message(&now.to_string(), "N1", forged.body()));
        forged.headers_mut().insert(
            "wechatpay-signature",
            sig.parse().unwrap_or_else(|_| http::HeaderValue::from_static("x")),
        );
        assert!(QueryCallbacks.parse(MCH, &verifier(), &forged, now).is_err());
        // An error answer is typed.
        let e = UseCoupon::new("ABC", "1", "wx1", now, "9")
            .unwrap_or_else(|e| panic!("{e}"))
            .parse(
                MCH,
                &verifier(),
                &signed(400, r#"{"code":"INVALID_REQUEST","message":"券已核销"}"#, now),
                now,
            )
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Api {
                    status: 400,
                    code: crate::v3::ErrorCode::InvalidRequest,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn values_outside_wechats_limits_are_refused_before_sending() {
        let v = CouponValue::Exchange {
            exchange_price: 1,
            transaction_minimum: 2,
        };
        let w = (1_800_000_000, 1_800_086_400);
        assert!(
            CreateStock::new("一二三四五六七八", "咖啡", v, w, 10, 1, "R1").is_err(),
            "24 bytes > 21"
        );
        assert!(
            CreateStock::new("七个字的名字啊", "咖啡", v, w, 10, 1, "R1").is_ok(),
            "21 bytes"
        );
        assert!(CreateStock::new("x", "咖啡", v, (w.1, w.0), 10, 1, "R1").is_err());
        assert!(CreateStock::new("x", "咖啡", v, w, 10, 101, "R1").is_err());
        assert!(CreateStock::new("x", "咖啡", v, w, 0, 1, "R1").is_err());
        assert!(
            CreateStock::new("x", " ", v, w, 10, 1, "R1").is_err(),
            "goods_name is required"
        );
        assert!(
            CreateStock::new("x", &"咖".repeat(16), v, w, 10, 1, "R1").is_err(),
            "48 bytes > 45"
        );
        assert!(CreateStock::new("x", "咖啡", v, w, 10, 1, "bad no").is_err());
        assert!(
            CreateStock::new(
                "x",
                "咖啡",
                CouponValue::Normal {
                    discount_amount: 500,
                    transaction_minimum: 500
                },
                w,
                10,
                1,
                "R1"
            )
            .is_err()
        );
        assert!(
            CreateStock::new(
                "x",
                "咖啡",
                CouponValue::Discount {
                    discount_percent: 100,
                    transaction_minimum: 0
                },
                w,
                10,
                1,
                "R1"
            )
            .is_err()
        );
        let long_name = stock().merchant_name("非常长的商户名称啊");
        assert!(long_name.check().is_err());
        assert!(
            long_name.to_http(&signer(), &base(), 1, "N").is_err(),
            "checked again when sent"
        );
        assert!(stock().background_color("Color015").check().is_err());
        assert!(stock().background_color("Color100").check().is_ok());
        assert!(UseCoupon::new("has space", "1", "wx1", 1, "1").is_err());
        assert!(UseCoupon::new("A", "1", "wx1", 1, &"9".repeat(33)).is_err());
        assert!(ImageUpload::new("logo.gif", b"\x89PNG\r\n\x1a\nxx".to_vec()).is_err());
        assert!(ImageUpload::new("logo.png", b"GIF89a".to_vec()).is_err());
        assert!(SetCallbacks::new("ftp://x").is_err());
    }

    #[test]
    fn the_upload_signs_its_meta_and_sends_both_parts() {
        let png = b"\x89PNG\r\n\x1a\nfake-image".to_vec();
        let up = ImageUpload::new("logo.png", png.clone()).unwrap_or_else(|e| panic!("{e}"));
        let http = up
            .to_http(&signer(), &base(), 1_800_000_000, "N9")
            .unwrap_or_else(|e| panic!("{e}"));
        let ct = http.headers()["content-type"].to_str().unwrap_or_default();
        assert!(ct.starts_with("multipart/form-data; boundary="));
        let body = String::from_utf8_lossy(http.body()).into_owned();
        let meta = up.meta();
        assert!(body.contains(&meta) && body.contains("fake-image"));
        // sha256("\x89PNG\r\n\x1a\nfake-image"), by Python's hashlib.
        assert!(meta.contains("\"sha256\":\""), "{meta}");
        let auth = http.headers()["authorization"].to_str().unwrap_or_default();
        let parsed = crate::v3::Authorization::parse(auth).unwrap_or_else(|| panic!("{auth}"));
        let message = crate::v3::sign::request_message(
            "POST",
            "/v3/marketing/favor/media/image-upload",
            1_800_000_000,
            "N9",
            meta.as_bytes(),
        );
        assert!(
            signer().key().public_key().verify(&message, &parsed.signature),
            "the signature is over meta"
        );
        let now = 1_800_000_000;
        assert_eq!(
            up.parse(
                MCH,
                &verifier(),
                &signed(200, r#"{"media_url":"https://wxpaylogo.qpic.cn/x.png"}"#, now),
                now
            )
            .unwrap_or_default(),
            "https://wxpaylogo.qpic.cn/x.png"
        );
    }

    /// The H5 link's and the plugin's signatures, as fixed vectors computed independently with Python's `hmac`:
    ///
    /// ```text
    /// python3 -c "import hmac,hashlib; k=b'192006250b4c09247ec02edce69f6a2d'; \
    ///   s='coupon_code=ABCDEFGHJKMNPQRSTUVWXYZ234&open_id=oUpF8uMuAJO_M2pxb1Q9zNjWeS6o&out_request_no=WXKIT20261204A1&send_coupon_merchant=1900000111&stock_id=1290000000000001&key='+k.decode(); \
    ///   print(hmac.new(k,s.encode(),hashlib.sha256).hexdigest().upper())"
    /// ```
    #[test]
    fn the_send_signatures_match_an_independent_computation() {
        let key = PayKey::new("192006250b4c09247ec02edce69f6a2d");
        let url = h5_send_url(
            H5_BASE_URL,
            "1290000000000001",
            "WXKIT20261204A1",
            "1900000111",
            "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            Some("ABCDEFGHJKMNPQRSTUVWXYZ234"),
            &key,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            url,
            "https://action.weixin.qq.com/busifavor/getcouponinfo?stock_id=1290000000000001&out_request_no=WXKIT20261204A1\
             &sign=69257A67143E6BE3DD48725186C5191C1E2F19E4C9F908A98C303D61139471A6&send_coupon_merchant=1900000111\
             &open_id=oUpF8uMuAJO_M2pxb1Q9zNjWeS6o&coupon_code=ABCDEFGHJKMNPQRSTUVWXYZ234#wechat_pay&wechat_redirect"
        );
        let p = plugin_params(
            vec![PluginCoupon {
                stock_id: "1290000000000001".into(),
                out_request_no: "WXKIT20261204A2".into(),
                coupon_code: Some("ABCDEFGHJKMNPQRSTUVWXYZ234".into()),
            }],
            "1900000111",
            &key,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.sign,
            "06174E9E040E20EE609D5500F67A9FAA15BFDCD1DB16C0B15597CD9AB902CD37"
        );
        // Another key, another signature; bad parameters refused.
        let other = h5_send_url(
            H5_BASE_URL,
            "1290000000000001",
            "WXKIT20261204A1",
            "1900000111",
            "o1",
            None,
            &PayKey::new("x"),
        )
        .unwrap_or_default();
        assert!(!other.contains("69257A67"));
        assert!(h5_send_url(H5_BASE_URL, "1", "bad-no", "1900000111", "o1", None, &key).is_err());
        assert!(plugin_params(Vec::new(), "1900000111", &key).is_err());
    }
}
