//! # wechat-card
//!
//! The WeChat card (卡券) API:
//!
//! * [`card`]: typed card kinds ([`CardKind`]: GROUPON, CASH, DISCOUNT, GIFT, GENERAL_COUPON), a validated
//!   [`BaseInfo`] (title ≤ 9 汉字, brand_name ≤ 12, notice ≤ 16, quantity ≤ 100,000,000, timestamps in seconds...)
//!   and [`AdvancedInfo`];
//! * [`CardClient`]: logo and temporary image uploads (type and size checked before sending), `card/create`,
//!   `card/getcolors`, code decrypt / get / consume with typed errors (40056, 40099, 40127, 40075);
//! * [`ext`]: the `wx.addCard` `cardExt` and its signature, with a random nonce every time;
//! * [`events`]: typed card events from the server push (`user_get_card`, `user_consume_card`, `user_del_card`,
//!   `card_pass_check`, `card_not_pass_check`), verified and decrypted with `wechat_core::push`.
//!
//! Creating a GENERAL_COUPON and building its `cardExt`:
//!
//! ```
//! use wechat_card::{BaseInfo, CardDefinition, CardExt, CardKind, DateInfo};
//!
//! let base = BaseInfo::builder()
//!     .logo_url("http://mmbiz.qpic.cn/mmbiz/logo.png") // from CardClient::upload_logo
//!     .brand_name("wxkit咖啡")
//!     .title("免费咖啡一杯")
//!     .color("Color010")
//!     .notice("请出示二维码核销")
//!     .description("每人限领一张，不与其他优惠同享")
//!     .date_info(DateInfo::FixTimeRange { begin_timestamp: 1_790_000_000, end_timestamp: 1_800_000_000 })
//!     .quantity(1000)
//!     .build()?
//!     .get_limit(1);
//! let card = CardDefinition::new(CardKind::GeneralCoupon { default_detail: "美式咖啡一杯".into() }, base)?;
//! let body = card.to_json(); // what CardClient::create sends to card/create
//! assert_eq!(body["card"]["card_type"], "GENERAL_COUPON");
//!
//! // After card/create returned a card_id, sign a cardExt with the wx_card api_ticket:
//! let card_ext = CardExt::new("pjZ8Yt1XGILfi-FUsewpnnolGgZk").outer_str("campaign-7").build("api-ticket", 1_700_000_000);
//! assert!(card_ext.contains("\"signature\""));
//! # Ok::<(), wechat_card::Error>(())
//! ```

#![deny(missing_docs)]
// Without `client`, helpers only the client uses are unused; the pure parts are what is left.
#![cfg_attr(not(feature = "client"), allow(unused_imports, dead_code))]
pub mod card;
pub mod client;
pub mod error;
pub mod events;
pub mod ext;

pub use card::{AdvancedInfo, BaseInfo, CardDefinition, CardKind, CardLink, CodeType, DateInfo};
#[cfg(feature = "client")]
pub use client::CardClient;
pub use client::{
    CardColor, CodeInfo, ConsumeCode, Consumed, CreateCard, DecryptCode, GetCode, GetColors, ImageFormat, Media,
    UploadLogo, UploadTempImage,
};
pub use error::{Error, Result};
pub use ext::CardExt;
