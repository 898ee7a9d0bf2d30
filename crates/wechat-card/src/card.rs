//! Card definitions for `card/create`: typed card kinds, `base_info` and `advanced_info`, validated before sending.

use crate::error::{Result, invalid};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Display width in WeChat's units: a CJK or full-width character counts 2, anything else 1 ("9 汉字" = 18).
pub fn width(s: &str) -> usize {
    s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

fn check_width(field: &str, value: &str, max_hanzi: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if width(value) > max_hanzi * 2 {
        return Err(invalid(format!(
            "{field} is longer than {max_hanzi} 汉字 ({} ASCII characters)",
            max_hanzi * 2
        )));
    }
    Ok(())
}

/// How the code is shown to staff.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum CodeType {
    /// Plain text.
    #[serde(rename = "CODE_TYPE_TEXT")]
    Text,
    /// A one-dimensional barcode.
    #[serde(rename = "CODE_TYPE_BARCODE")]
    Barcode,
    /// A QR code (the default: staff scan it).
    #[default]
    #[serde(rename = "CODE_TYPE_QRCODE")]
    QrCode,
    /// No code shown.
    #[serde(rename = "CODE_TYPE_NONE")]
    None,
}

/// When the card can be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateInfo {
    /// A fixed window, Unix **seconds**.
    FixTimeRange {
        /// Start.
        begin_timestamp: i64,
        /// End.
        end_timestamp: i64,
    },
    /// Relative to when the user receives it: valid `fixed_term` days, starting `fixed_begin_term` days later.
    FixTerm {
        /// Days valid.
        fixed_term: u32,
        /// Days until it starts (0 = the same day).
        fixed_begin_term: u32,
    },
}

impl DateInfo {
    fn validate(&self) -> Result<()> {
        match *self {
            DateInfo::FixTimeRange {
                begin_timestamp,
                end_timestamp,
            } => {
                // Milliseconds passed by mistake are the classic bug: they are 13 digits.
                if !(1_000_000_000..10_000_000_000).contains(&begin_timestamp)
                    || !(1_000_000_000..10_000_000_000).contains(&end_timestamp)
                {
                    return Err(invalid(
                        "date_info timestamps must be Unix seconds (10 digits), not milliseconds",
                    ));
                }
                if end_timestamp <= begin_timestamp {
                    return Err(invalid("date_info end_timestamp must be after begin_timestamp"));
                }
            }
            DateInfo::FixTerm {
                fixed_term,
                fixed_begin_term,
            } => {
                if fixed_term == 0 || fixed_term > 3650 || fixed_begin_term > 3650 {
                    return Err(invalid("fixed_term must be 1–3650 days and fixed_begin_term 0–3650"));
                }
            }
        }
        Ok(())
    }

    fn to_json(self) -> Value {
        match self {
            DateInfo::FixTimeRange {
                begin_timestamp,
                end_timestamp,
            } => json!({
                "type": "DATE_TYPE_FIX_TIME_RANGE", "begin_timestamp": begin_timestamp, "end_timestamp": end_timestamp,
            }),
            DateInfo::FixTerm {
                fixed_term,
                fixed_begin_term,
            } => json!({
                "type": "DATE_TYPE_FIX_TERM", "fixed_term": fixed_term, "fixed_begin_term": fixed_begin_term,
            }),
        }
    }
}

/// A link shown on the card (custom or promotion entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardLink {
    /// Entry name (≤ 5 汉字).
    pub name: String,
    /// http(s) URL.
    pub url: String,
    /// Subtitle (≤ 6 汉字).
    pub sub_title: Option<String>,
}

/// The common part of every card (`base_info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseInfo {
    logo_url: String,
    brand_name: String,
    title: String,
    color: String,
    notice: String,
    description: String,
    code_type: CodeType,
    date_info: DateInfo,
    quantity: u64,
    get_limit: Option<u32>,
    use_limit: Option<u32>,
    use_custom_code: bool,
    bind_openid: bool,
    can_share: bool,
    can_give_friend: bool,
    service_phone: Option<String>,
    custom: Option<CardLink>,
    promotion: Option<CardLink>,
}

/// Most cards WeChat allows of one kind.
pub const MAX_QUANTITY: u64 = 100_000_000;

/// Builds a [`BaseInfo`]: the eight required fields, validated together by [`build`](Self::build) — `title` ≤ 9
/// 汉字, `brand_name` ≤ 12, `notice` ≤ 16, `description` ≤ 1024, `quantity` ≤ 100,000,000, `color` one of WeChat's
/// names (`Color010`...), `logo_url` an http(s) URL (from `media/uploadimg`). A missing field is named.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct BaseInfoBuilder {
    logo_url: Option<String>,
    brand_name: Option<String>,
    title: Option<String>,
    color: Option<String>,
    notice: Option<String>,
    description: Option<String>,
    date_info: Option<DateInfo>,
    quantity: Option<u64>,
}

macro_rules! text_setter {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<String>) -> Self {
            self.$name = Some(value.into());
            self
        }
    };
}

impl BaseInfoBuilder {
    text_setter!(
        /// The logo's URL, as `CardClient::upload_logo` returned it.
        logo_url
    );
    text_setter!(
        /// The merchant's name (≤ 12 汉字).
        brand_name
    );
    text_setter!(
        /// The card's title (≤ 9 汉字).
        title
    );
    text_setter!(
        /// The card's colour: one of `card/getcolors`' names (`Color010`…).
        color
    );
    text_setter!(
        /// What to do at the counter (≤ 16 汉字), e.g. "请出示二维码核销".
        notice
    );
    text_setter!(
        /// Terms of use (≤ 1024 characters).
        description
    );

    /// When the card is valid.
    pub fn date_info(mut self, date_info: DateInfo) -> Self {
        self.date_info = Some(date_info);
        self
    }

    /// How many cards there are (≤ 100,000,000).
    pub fn quantity(mut self, quantity: u64) -> Self {
        self.quantity = Some(quantity);
        self
    }

    /// The validated `base_info`, or [`Error::InvalidRequest`](crate::Error) naming the missing or invalid field.
    pub fn build(self) -> Result<BaseInfo> {
        fn required<T>(value: Option<T>, name: &str) -> Result<T> {
            value.ok_or_else(|| invalid(format!("BaseInfo: {name} is required")))
        }
        BaseInfo::validated(
            &required(self.logo_url, "logo_url")?,
            &required(self.brand_name, "brand_name")?,
            &required(self.title, "title")?,
            &required(self.color, "color")?,
            &required(self.notice, "notice")?,
            &required(self.description, "description")?,
            required(self.date_info, "date_info")?,
            required(self.quantity, "quantity")?,
        )
    }
}

impl BaseInfo {
    /// Starts building the `base_info` (see [`BaseInfoBuilder`]).
    pub fn builder() -> BaseInfoBuilder {
        BaseInfoBuilder::default()
    }

    #[allow(clippy::too_many_arguments)]
    fn validated(
        logo_url: &str,
        brand_name: &str,
        title: &str,
        color: &str,
        notice: &str,
        description: &str,
        date_info: DateInfo,
        quantity: u64,
    ) -> Result<Self> {
        let url = url::Url::parse(logo_url).map_err(|e| invalid(format!("logo_url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("logo_url must be http(s)"));
        }
        check_width("brand_name", brand_name, 12)?;
        check_width("title", title, 9)?;
        check_width("notice", notice, 16)?;
        if description.trim().is_empty() || description.chars().count() > 1024 {
            return Err(invalid("description must be 1 to 1024 characters"));
        }
        if !(color.len() == 8 && color.starts_with("Color") && color[5..].bytes().all(|b| b.is_ascii_digit())) {
            return Err(invalid("color must be one of card/getcolors' names, e.g. Color010"));
        }
        date_info.validate()?;
        if quantity > MAX_QUANTITY {
            return Err(invalid("quantity must be at most 100000000"));
        }
        Ok(Self {
            logo_url: logo_url.to_owned(),
            brand_name: brand_name.to_owned(),
            title: title.to_owned(),
            color: color.to_owned(),
            notice: notice.to_owned(),
            description: description.to_owned(),
            code_type: CodeType::QrCode,
            date_info,
            quantity,
            get_limit: None,
            use_limit: None,
            use_custom_code: false,
            bind_openid: false,
            can_share: true,
            can_give_friend: true,
            service_phone: None,
            custom: None,
            promotion: None,
        })
    }

    /// How the code is displayed.
    pub fn code_type(mut self, code_type: CodeType) -> Self {
        self.code_type = code_type;
        self
    }

    /// Cards one user may receive.
    pub fn get_limit(mut self, n: u32) -> Self {
        self.get_limit = Some(n);
        self
    }

    /// Cards one user may use.
    pub fn use_limit(mut self, n: u32) -> Self {
        self.use_limit = Some(n);
        self
    }

    /// Codes are ours (imported / passed in cardExt) rather than WeChat's.
    pub fn use_custom_code(mut self, yes: bool) -> Self {
        self.use_custom_code = yes;
        self
    }

    /// Only the named openid may receive it.
    pub fn bind_openid(mut self, yes: bool) -> Self {
        self.bind_openid = yes;
        self
    }

    /// Whether users can share / give the card.
    pub fn sharing(mut self, can_share: bool, can_give_friend: bool) -> Self {
        self.can_share = can_share;
        self.can_give_friend = can_give_friend;
        self
    }

    /// Customer-service phone.
    pub fn service_phone(mut self, phone: &str) -> Result<Self> {
        if phone.is_empty() || phone.len() > 24 || !phone.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
        {
            return Err(invalid("service_phone must be digits, + and -"));
        }
        self.service_phone = Some(phone.to_owned());
        Ok(self)
    }

    fn check_link(link: &CardLink) -> Result<()> {
        check_width("entry name", &link.name, 5)?;
        if let Some(s) = &link.sub_title {
            check_width("entry sub_title", s, 6)?;
        }
        let url = url::Url::parse(&link.url).map_err(|e| invalid(format!("entry url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("entry url must be http(s)"));
        }
        Ok(())
    }

    /// The custom entry (e.g. "立即使用" → our coupon page).
    pub fn custom_entry(mut self, link: CardLink) -> Result<Self> {
        Self::check_link(&link)?;
        self.custom = Some(link);
        Ok(self)
    }

    /// The promotion entry.
    pub fn promotion_entry(mut self, link: CardLink) -> Result<Self> {
        Self::check_link(&link)?;
        self.promotion = Some(link);
        Ok(self)
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "logo_url": self.logo_url,
            "brand_name": self.brand_name,
            "code_type": self.code_type,
            "title": self.title,
            "color": self.color,
            "notice": self.notice,
            "description": self.description,
            "date_info": self.date_info.to_json(),
            "sku": {"quantity": self.quantity},
            "use_custom_code": self.use_custom_code,
            "bind_openid": self.bind_openid,
            "can_share": self.can_share,
            "can_give_friend": self.can_give_friend,
        });
        let Some(obj) = v.as_object_mut() else { return v };
        if let Some(n) = self.get_limit {
            obj.insert("get_limit".into(), n.into());
        }
        if let Some(n) = self.use_limit {
            obj.insert("use_limit".into(), n.into());
        }
        if let Some(p) = &self.service_phone {
            obj.insert("service_phone".into(), p.clone().into());
        }
        for (prefix, link) in [("custom_url", &self.custom), ("promotion_url", &self.promotion)] {
            if let Some(l) = link {
                obj.insert(format!("{prefix}_name"), l.name.clone().into());
                obj.insert(prefix.into(), l.url.clone().into());
                if let Some(s) = &l.sub_title {
                    obj.insert(format!("{prefix}_sub_title"), s.clone().into());
                }
            }
        }
        v
    }
}

/// Optional `advanced_info`: usage conditions and the abstract, plus any other field WeChat documents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdvancedInfo {
    /// Minimum spend in fen for the card to apply.
    pub least_cost: Option<u64>,
    /// Categories it applies to.
    pub accept_category: Option<String>,
    /// Categories it does not apply to.
    pub reject_category: Option<String>,
    /// Whether it combines with other discounts.
    pub can_use_with_other_discount: Option<bool>,
    /// Short summary shown on the card.
    pub abstract_text: Option<String>,
    /// Anything else, passed through as given.
    pub extra: Map<String, Value>,
}

impl AdvancedInfo {
    fn to_json(&self) -> Value {
        let mut obj = self.extra.clone();
        let mut condition = Map::new();
        if let Some(v) = self.least_cost {
            condition.insert("least_cost".into(), v.into());
        }
        if let Some(v) = &self.accept_category {
            condition.insert("accept_category".into(), v.clone().into());
        }
        if let Some(v) = &self.reject_category {
            condition.insert("reject_category".into(), v.clone().into());
        }
        if let Some(v) = self.can_use_with_other_discount {
            condition.insert("can_use_with_other_discount".into(), v.into());
        }
        if !condition.is_empty() {
            obj.insert("use_condition".into(), Value::Object(condition));
        }
        if let Some(a) = &self.abstract_text {
            obj.insert("abstract".into(), json!({"abstract": a}));
        }
        Value::Object(obj)
    }
}

/// The card kinds `card/create` accepts, with their own fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardKind {
    /// 团购券: `deal_detail`.
    Groupon {
        /// What the deal includes.
        deal_detail: String,
    },
    /// 代金券: `reduce_cost` off a spend of at least `least_cost` (fen).
    Cash {
        /// Minimum spend, fen (0 = none).
        least_cost: u64,
        /// Amount off, fen.
        reduce_cost: u64,
    },
    /// 折扣券: `discount` percent off (e.g. 30 = 30 % off).
    Discount {
        /// Percent off, 1–99.
        discount: u8,
    },
    /// 兑换券: what is given.
    Gift {
        /// The gift.
        gift: String,
    },
    /// 优惠券: `default_detail`.
    GeneralCoupon {
        /// What it gives.
        default_detail: String,
    },
}

impl CardKind {
    /// `GROUPON`, `CASH`, `DISCOUNT`, `GIFT`, `GENERAL_COUPON`.
    pub fn card_type(&self) -> &'static str {
        match self {
            CardKind::Groupon { .. } => "GROUPON",
            CardKind::Cash { .. } => "CASH",
            CardKind::Discount { .. } => "DISCOUNT",
            CardKind::Gift { .. } => "GIFT",
            CardKind::GeneralCoupon { .. } => "GENERAL_COUPON",
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            CardKind::Groupon { deal_detail: d }
            | CardKind::Gift { gift: d }
            | CardKind::GeneralCoupon { default_detail: d } => {
                if d.trim().is_empty() || d.chars().count() > 3072 {
                    return Err(invalid("the card's detail must be 1 to 3072 characters"));
                }
            }
            CardKind::Cash {
                least_cost,
                reduce_cost,
            } => {
                if *reduce_cost == 0 || (*least_cost != 0 && reduce_cost > least_cost) {
                    return Err(invalid("reduce_cost must be positive and not above least_cost"));
                }
            }
            CardKind::Discount { discount } => {
                if !(1..=99).contains(discount) {
                    return Err(invalid("discount must be 1 to 99 (percent off)"));
                }
            }
        }
        Ok(())
    }
}

/// A card to create.
#[derive(Clone, Debug, PartialEq)]
pub struct CardDefinition {
    kind: CardKind,
    base_info: BaseInfo,
    advanced_info: Option<AdvancedInfo>,
}

impl CardDefinition {
    /// A card of `kind` with `base_info`.
    pub fn new(kind: CardKind, base_info: BaseInfo) -> Result<Self> {
        kind.validate()?;
        Ok(Self {
            kind,
            base_info,
            advanced_info: None,
        })
    }

    /// Adds `advanced_info`.
    pub fn advanced_info(mut self, info: AdvancedInfo) -> Self {
        self.advanced_info = Some(info);
        self
    }

    /// The `card/create` body: `{"card":{"card_type":..,"<lowercase type>":{"base_info":..,...}}}`.
    pub fn to_json(&self) -> Value {
        let mut inner = Map::new();
        inner.insert("base_info".into(), self.base_info.to_json());
        if let Some(a) = &self.advanced_info {
            inner.insert("advanced_info".into(), a.to_json());
        }
        match &self.kind {
            CardKind::Groupon { deal_detail } => inner.insert("deal_detail".into(), deal_detail.clone().into()),
            CardKind::Cash {
                least_cost,
                reduce_cost,
            } => {
                inner.insert("least_cost".into(), (*least_cost).into());
                inner.insert("reduce_cost".into(), (*reduce_cost).into())
            }
            CardKind::Discount { discount } => inner.insert("discount".into(), (*discount).into()),
            CardKind::Gift { gift } => inner.insert("gift".into(), gift.clone().into()),
            CardKind::GeneralCoupon { default_detail } => {
                inner.insert("default_detail".into(), default_detail.clone().into())
            }
        };
        let card_type = self.kind.card_type();
        json!({"card": {"card_type": card_type, card_type.to_ascii_lowercase(): Value::Object(inner)}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BaseInfo {
        BaseInfo::validated(
            "http://mmbiz.qpic.cn/logo.png",
            "wxkit咖啡",
            "满100减20",
            "Color010",
            "请出示二维码",
            "不可与其他优惠同享",
            DateInfo::FixTimeRange {
                begin_timestamp: 1_790_000_000,
                end_timestamp: 1_800_000_000,
            },
            1000,
        )
        .unwrap()
    }

    #[test]
    fn limits_are_enforced_before_sending() {
        let ok = |title: &str| {
            BaseInfo::validated(
                "http://x/l.png",
                "b",
                title,
                "Color010",
                "n",
                "d",
                DateInfo::FixTerm {
                    fixed_term: 30,
                    fixed_begin_term: 0,
                },
                1,
            )
        };
        assert!(ok("九个汉字九个汉字九").is_ok());
        assert!(ok("十个汉字十个汉字十个").is_err());
        assert!(ok("eighteen-chars-abc").is_ok());
        assert!(ok("nineteen-chars-abcd").is_err());
        let ms = DateInfo::FixTimeRange {
            begin_timestamp: 1_790_000_000_000,
            end_timestamp: 1_800_000_000_000,
        };
        assert!(BaseInfo::validated("http://x/l.png", "b", "t", "Color010", "n", "d", ms, 1).is_err());
        let q = DateInfo::FixTerm {
            fixed_term: 1,
            fixed_begin_term: 0,
        };
        assert!(BaseInfo::validated("http://x/l.png", "b", "t", "Color010", "n", "d", q, MAX_QUANTITY + 1).is_err());
        assert!(BaseInfo::validated("http://x/l.png", "b", "t", "red", "n", "d", q, 1).is_err());
        assert!(
            BaseInfo::validated(
                "http://x/l.png",
                "十三个汉字十三个汉字十三个",
                "t",
                "Color010",
                "n",
                "d",
                q,
                1
            )
            .is_err()
        );
        assert!(CardDefinition::new(CardKind::Discount { discount: 100 }, base()).is_err());
        assert!(
            CardDefinition::new(
                CardKind::Cash {
                    least_cost: 1000,
                    reduce_cost: 2000
                },
                base()
            )
            .is_err()
        );
    }

    #[test]
    fn the_body_nests_under_the_lowercase_type() {
        let card = CardDefinition::new(
            CardKind::GeneralCoupon {
                default_detail: "一杯咖啡".into(),
            },
            base(),
        )
        .unwrap()
        .advanced_info(AdvancedInfo {
            least_cost: Some(10000),
            ..Default::default()
        });
        let v = card.to_json();
        assert_eq!(v["card"]["card_type"], "GENERAL_COUPON");
        assert_eq!(v["card"]["general_coupon"]["base_info"]["sku"]["quantity"], 1000);
        assert_eq!(
            v["card"]["general_coupon"]["base_info"]["date_info"]["type"],
            "DATE_TYPE_FIX_TIME_RANGE"
        );
        assert_eq!(
            v["card"]["general_coupon"]["advanced_info"]["use_condition"]["least_cost"],
            10000
        );
        assert_eq!(
            v["card"]["general_coupon"]["base_info"]["code_type"],
            "CODE_TYPE_QRCODE"
        );
    }
}
