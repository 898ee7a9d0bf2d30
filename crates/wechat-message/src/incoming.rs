//! Incoming messages and events, typed. Anything not modelled is kept — raw fields are always there — never an
//! error.

use wechat_core::push::PushError;
use wechat_core::xml::{self, Fields};

/// One push from WeChat: the common header, the typed content, and every field received.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Incoming {
    /// `ToUserName`: our account (`gh_…`).
    pub to_user_name: String,
    /// `FromUserName`: the user's openid.
    pub from_user_name: String,
    /// `CreateTime`, Unix seconds.
    pub create_time: i64,
    /// What it is.
    pub kind: Kind,
    /// Every field received (nested ones as `Parent/Child`, repeated ones numbered `#2`, `#3`…).
    pub fields: Fields,
}

/// A message from a user, or an event.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Kind {
    /// `text`.
    Text {
        /// `Content`.
        content: String,
        /// `MsgId`.
        msg_id: String,
    },
    /// `image`.
    Image {
        /// `PicUrl`.
        pic_url: String,
        /// `MediaId`.
        media_id: String,
        /// `MsgId`.
        msg_id: String,
    },
    /// `voice`.
    Voice {
        /// `MediaId`.
        media_id: String,
        /// `Format` (amr, speex).
        format: String,
        /// `Recognition`, when speech recognition is on.
        recognition: Option<String>,
        /// `MsgId`.
        msg_id: String,
    },
    /// `video` or `shortvideo`.
    Video {
        /// True for `shortvideo`.
        short: bool,
        /// `MediaId`.
        media_id: String,
        /// `ThumbMediaId`.
        thumb_media_id: String,
        /// `MsgId`.
        msg_id: String,
    },
    /// `location`, sent by the user.
    Location {
        /// `Location_X` (latitude).
        latitude: f64,
        /// `Location_Y` (longitude).
        longitude: f64,
        /// `Scale`.
        scale: u32,
        /// `Label`.
        label: String,
        /// `MsgId`.
        msg_id: String,
    },
    /// `link`.
    Link {
        /// `Title`.
        title: String,
        /// `Description`.
        description: String,
        /// `Url`.
        url: String,
        /// `MsgId`.
        msg_id: String,
    },
    /// `event`.
    Event(Event),
    /// Another `MsgType`, kept as received.
    Other {
        /// `MsgType`.
        msg_type: String,
    },
}

/// One template's outcome in a subscribe-message event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeItem {
    /// `TemplateId`.
    pub template_id: String,
    /// `SubscribeStatusString` (`accept`, `reject`, `ban`…) or, for a sent event, `ErrorStatus` (`success`…).
    pub status: String,
}

/// An event (`MsgType` `event`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `subscribe`: followed — through a parametric QR code when `scene` is set (its `EventKey` without `qrscene_`).
    Subscribe {
        /// The QR code's scene.
        scene: Option<String>,
        /// `Ticket` of that code.
        ticket: Option<String>,
    },
    /// `unsubscribe`.
    Unsubscribe,
    /// `SCAN`: a follower scanned a parametric QR code.
    Scan {
        /// The code's scene (`EventKey`).
        scene: String,
        /// `Ticket`.
        ticket: Option<String>,
    },
    /// `LOCATION`: reported location.
    Location {
        /// `Latitude`.
        latitude: f64,
        /// `Longitude`.
        longitude: f64,
        /// `Precision`.
        precision: f64,
    },
    /// `CLICK`: a menu button.
    Click {
        /// `EventKey`.
        key: String,
    },
    /// `VIEW`: a menu link.
    View {
        /// `EventKey`: the URL.
        url: String,
    },
    /// `TEMPLATESENDJOBFINISH`: how a template message ended.
    TemplateSendJobFinish {
        /// `MsgID`.
        msg_id: String,
        /// `Status` (`success`, `failed:user block`, `failed: system failed`).
        status: String,
    },
    /// `subscribe_msg_popup_event`: what the user chose in the subscribe popup.
    SubscribeMsgPopup(Vec<SubscribeItem>),
    /// `subscribe_msg_change_event`: the user changed subscriptions in settings.
    SubscribeMsgChange(Vec<SubscribeItem>),
    /// `subscribe_msg_sent_event`: how sent subscribe messages ended.
    SubscribeMsgSent(Vec<SubscribeItem>),
    /// `wxa_media_check`: the verdict of an asynchronous content check.
    MediaCheck {
        /// `trace_id`.
        trace_id: String,
        /// `result/suggest`: `pass`, `review` or `risky`.
        suggest: String,
        /// `result/label`.
        label: String,
    },
    /// `trade_manage_remind_access_api`: the mini program must start uploading shipping information.
    ShippingAccessReminder {
        /// WeChat's message.
        msg: String,
    },
    /// `trade_manage_remind_shipping`: an order's shipping information is due (its funds are held until then).
    ShippingReminder {
        /// WeChat's transaction id.
        transaction_id: String,
        /// The merchant's order number (`out_trade_no`).
        merchant_trade_no: String,
        /// WeChat's message.
        msg: String,
    },
    /// `trade_manage_order_settlement`: an order was settled (its funds released), or will be.
    OrderSettlement {
        /// WeChat's transaction id.
        transaction_id: String,
        /// The merchant's order number.
        merchant_trade_no: String,
        /// Unix seconds, once settled.
        settlement_time: Option<String>,
    },
    /// A card event (`user_get_card`, `user_consume_card`, …): `wechat_card::events` types them.
    Card {
        /// `Event`.
        event: String,
    },
    /// Anything else, kept as received.
    Other {
        /// `Event`.
        event: String,
    },
}

impl Incoming {
    /// The key WeChat's retries share: `MsgId` for messages; `FromUserName` + `CreateTime` + event (+ the fields
    /// that tell two events of one second apart) for events. Store it with a unique index to handle each push once.
    pub fn dedupe_key(&self) -> String {
        let get = |k: &str| self.fields.get(k).map(String::as_str).unwrap_or("");
        if let Some(id) = self.fields.get("MsgId").filter(|v| !v.is_empty()) {
            return format!("msg:{id}");
        }
        // WeChat's rule is FromUserName + CreateTime; the fields that tell two events of one second apart (a card
        // code, a content check's trace id, a template message's id) are added so that neither is lost.
        format!(
            "event:{}:{}:{}:{}:{}{}{}",
            self.from_user_name,
            self.create_time,
            get("Event"),
            get("EventKey"),
            get("UserCardCode"),
            get("trace_id"),
            get("MsgID")
        )
    }

    /// `MsgType`.
    pub fn msg_type(&self) -> &str {
        self.fields.get("MsgType").map(String::as_str).unwrap_or("")
    }

    /// `Event`, for events.
    pub fn event_name(&self) -> Option<&str> {
        self.fields.get("Event").map(String::as_str)
    }
}

fn get(f: &Fields, k: &str) -> String {
    f.get(k).cloned().unwrap_or_default()
}

fn opt(f: &Fields, k: &str) -> Option<String> {
    f.get(k).filter(|v| !v.is_empty()).cloned()
}

fn num<T: std::str::FromStr + Default>(f: &Fields, k: &str) -> T {
    f.get(k).and_then(|v| v.trim().parse().ok()).unwrap_or_default()
}

/// The numbered items of a subscribe-message event: `{prefix}/{leaf}`, `{prefix}/{leaf}#2`, …
fn items(f: &Fields, prefix: &str, status_leaf: &str) -> Vec<SubscribeItem> {
    (1..=64)
        .map_while(|i| {
            let suffix = if i == 1 { String::new() } else { format!("#{i}") };
            let template_id = f.get(&format!("{prefix}/TemplateId{suffix}"))?;
            Some(SubscribeItem {
                template_id: template_id.clone(),
                status: f
                    .get(&format!("{prefix}/{status_leaf}{suffix}"))
                    .cloned()
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Parses a (verified, decrypted) push body: hostile XML is refused by the hardened codec; unknown types are kept.
///
/// ```
/// use wechat_message::incoming::{parse, Event, Kind};
/// let m = parse(b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>\
///     <CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>\
///     <EventKey><![CDATA[qrscene_c42]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket></xml>").unwrap();
/// assert_eq!(m.kind, Kind::Event(Event::Subscribe { scene: Some("c42".into()), ticket: Some("TICKET".into()) }));
/// assert_eq!(m.dedupe_key(), "event:o1:1700000000:subscribe:qrscene_c42:");
/// ```
pub fn parse(body: &[u8]) -> Result<Incoming, PushError> {
    let f = if body.trim_ascii_start().starts_with(b"{") {
        json_fields(body)?
    } else {
        xml::parse_push(body).map_err(|e| PushError::Body(e.to_string()))?
    };
    let msg_id = get(&f, "MsgId");
    let msg_type = get(&f, "MsgType");
    let kind = match msg_type.as_str() {
        "text" => Kind::Text {
            content: get(&f, "Content"),
            msg_id,
        },
        "image" => Kind::Image {
            pic_url: get(&f, "PicUrl"),
            media_id: get(&f, "MediaId"),
            msg_id,
        },
        "voice" => Kind::Voice {
            media_id: get(&f, "MediaId"),
            format: get(&f, "Format"),
            recognition: opt(&f, "Recognition"),
            msg_id,
        },
        "video" | "shortvideo" => Kind::Video {
            short: msg_type == "shortvideo",
            media_id: get(&f, "MediaId"),
            thumb_media_id: get(&f, "ThumbMediaId"),
            msg_id,
        },
        "location" => Kind::Location {
            latitude: num(&f, "Location_X"),
            longitude: num(&f, "Location_Y"),
            scale: num(&f, "Scale"),
            label: get(&f, "Label"),
            msg_id,
        },
        "link" => Kind::Link {
            title: get(&f, "Title"),
            description: get(&f, "Description"),
            url: get(&f, "Url"),
            msg_id,
        },
        "event" => Kind::Event(parse_event(&f)),
        _ => Kind::Other { msg_type },
    };
    Ok(Incoming {
        to_user_name: get(&f, "ToUserName"),
        from_user_name: get(&f, "FromUserName"),
        create_time: num(&f, "CreateTime"),
        kind,
        fields: f,
    })
}

/// A JSON push (the mini program's JSON format) as the same flat fields an XML one gives: nested objects as
/// `parent/child`, numbers and booleans as text. Bounded like the XML codec: the body size, the field count, the depth.
fn json_fields(body: &[u8]) -> Result<Fields, PushError> {
    if body.len() > xml::DEFAULT_MAX_BODY {
        return Err(PushError::Body("the push is too large".into()));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| PushError::Body(format!("JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(PushError::Body("a JSON push is an object".into()));
    };
    fn walk(
        prefix: &str,
        map: &serde_json::Map<String, serde_json::Value>,
        depth: usize,
        out: &mut Fields,
    ) -> Result<(), PushError> {
        if depth > 8 || out.len() > xml::MAX_FIELDS {
            return Err(PushError::Body(
                "the push is nested too deep or has too many fields".into(),
            ));
        }
        for (k, v) in map {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}/{k}")
            };
            let text = match v {
                serde_json::Value::Object(inner) => {
                    walk(&key, inner, depth + 1, out)?;
                    continue;
                }
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            if text.contains('\0') {
                return Err(PushError::Body("NUL character".into()));
            }
            out.insert(key, text);
        }
        Ok(())
    }
    let mut out = Fields::new();
    walk("", &map, 0, &mut out)?;
    Ok(out)
}

fn parse_event(f: &Fields) -> Event {
    let event = get(f, "Event");
    match event.as_str() {
        "subscribe" => Event::Subscribe {
            scene: opt(f, "EventKey").and_then(|k| k.strip_prefix("qrscene_").map(str::to_owned)),
            ticket: opt(f, "Ticket"),
        },
        "unsubscribe" => Event::Unsubscribe,
        e if e.eq_ignore_ascii_case("SCAN") => Event::Scan {
            scene: get(f, "EventKey"),
            ticket: opt(f, "Ticket"),
        },
        e if e.eq_ignore_ascii_case("LOCATION") => Event::Location {
            latitude: num(f, "Latitude"),
            longitude: num(f, "Longitude"),
            precision: num(f, "Precision"),
        },
        e if e.eq_ignore_ascii_case("CLICK") => Event::Click {
            key: get(f, "EventKey"),
        },
        e if e.eq_ignore_ascii_case("VIEW") => Event::View {
            url: get(f, "EventKey"),
        },
        e if e.eq_ignore_ascii_case("TEMPLATESENDJOBFINISH") => Event::TemplateSendJobFinish {
            msg_id: opt(f, "MsgID").unwrap_or_else(|| get(f, "MsgId")),
            status: get(f, "Status"),
        },
        "subscribe_msg_popup_event" => {
            Event::SubscribeMsgPopup(items(f, "SubscribeMsgPopupEvent/List", "SubscribeStatusString"))
        }
        "subscribe_msg_change_event" => {
            Event::SubscribeMsgChange(items(f, "SubscribeMsgChangeEvent/List", "SubscribeStatusString"))
        }
        "subscribe_msg_sent_event" => Event::SubscribeMsgSent(items(f, "SubscribeMsgSentEvent/List", "ErrorStatus")),
        "wxa_media_check" => Event::MediaCheck {
            trace_id: get(f, "trace_id"),
            suggest: get(f, "result/suggest"),
            label: get(f, "result/label"),
        },
        // 小程序发货信息管理 (mini-program shipping): WeChat holds a mini-program payment's funds until its shipping
        // is uploaded, and says so by these.
        "trade_manage_remind_access_api" => Event::ShippingAccessReminder { msg: get(f, "msg") },
        "trade_manage_remind_shipping" => Event::ShippingReminder {
            transaction_id: get(f, "transaction_id"),
            merchant_trade_no: get(f, "merchant_trade_no"),
            msg: get(f, "msg"),
        },
        "trade_manage_order_settlement" => Event::OrderSettlement {
            transaction_id: get(f, "transaction_id"),
            merchant_trade_no: get(f, "merchant_trade_no"),
            settlement_time: opt(f, "settlement_time"),
        },
        e if e.starts_with("user_") || e.starts_with("card_") => Event::Card { event },
        _ => Event::Other { event },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mini program's JSON pushes: the shipping events of WeChat's 发货信息管理 documentation and a content
    /// check verdict.
    #[test]
    fn json_pushes_parse_to_the_same_events() {
        let remind = r#"{"ToUserName":"gh_mp","FromUserName":"o-system","CreateTime":1700000000,"MsgType":"event","Event":"trade_manage_remind_shipping","transaction_id":"4200001","merchant_id":"1900000109","merchant_trade_no":"ORDER1","pay_time":1699990000,"msg":"请尽快发货"}"#;
        let m = parse(remind.as_bytes()).unwrap();
        assert_eq!(m.create_time, 1_700_000_000);
        assert_eq!(
            m.kind,
            Kind::Event(Event::ShippingReminder {
                transaction_id: "4200001".into(),
                merchant_trade_no: "ORDER1".into(),
                msg: "请尽快发货".into(),
            })
        );
        let check = br#"{"ToUserName":"gh_mp","FromUserName":"o","CreateTime":1,"MsgType":"event","Event":"wxa_media_check","appid":"wxmp","trace_id":"t1","version":2,"result":{"suggest":"risky","label":20002}}"#;
        assert_eq!(
            parse(check).unwrap().kind,
            Kind::Event(Event::MediaCheck {
                trace_id: "t1".into(),
                suggest: "risky".into(),
                label: "20002".into(),
            })
        );
        assert!(parse(b"[1,2]").is_err());
        assert!(parse(br#"{"a": "x\u0000y"}"#).is_err());
        let deep = format!("{}{}", "{\"a\":".repeat(20), "1".to_owned() + &"}".repeat(20));
        assert!(parse(deep.as_bytes()).is_err());
    }

    fn wrap(inner: &str) -> Vec<u8> {
        format!(
            "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName>\
             <CreateTime>1348831860</CreateTime>{inner}</xml>"
        )
        .into_bytes()
    }

    /// The samples of WeChat's "receiving messages" and "receiving events" documentation.
    #[test]
    fn every_documented_message_and_event_parses() {
        let cases: Vec<(&str, Kind)> = vec![
            (
                "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[this is a test]]></Content><MsgId>1234567890123456</MsgId>",
                Kind::Text {
                    content: "this is a test".into(),
                    msg_id: "1234567890123456".into(),
                },
            ),
            (
                "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://x/p.jpg]]></PicUrl><MediaId><![CDATA[m1]]></MediaId><MsgId>1</MsgId>",
                Kind::Image {
                    pic_url: "http://x/p.jpg".into(),
                    media_id: "m1".into(),
                    msg_id: "1".into(),
                },
            ),
            (
                "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[腾讯微信团队]]></Recognition><MsgId>2</MsgId>",
                Kind::Voice {
                    media_id: "m".into(),
                    format: "amr".into(),
                    recognition: Some("腾讯微信团队".into()),
                    msg_id: "2".into(),
                },
            ),
            (
                "<MsgType><![CDATA[video]]></MsgType><MediaId><![CDATA[m]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId><MsgId>3</MsgId>",
                Kind::Video {
                    short: false,
                    media_id: "m".into(),
                    thumb_media_id: "t".into(),
                    msg_id: "3".into(),
                },
            ),
            (
                "<MsgType><![CDATA[shortvideo]]></MsgType><MediaId><![CDATA[m]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId><MsgId>4</MsgId>",
                Kind::Video {
                    short: true,
                    media_id: "m".into(),
                    thumb_media_id: "t".into(),
                    msg_id: "4".into(),
                },
            ),
            (
                "<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[位置信息]]></Label><MsgId>5</MsgId>",
                Kind::Location {
                    latitude: 23.134521,
                    longitude: 113.358803,
                    scale: 20,
                    label: "位置信息".into(),
                    msg_id: "5".into(),
                },
            ),
            (
                "<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[公众平台官网链接]]></Title><Description><![CDATA[公众平台官网链接]]></Description><Url><![CDATA[url]]></Url><MsgId>6</MsgId>",
                Kind::Link {
                    title: "公众平台官网链接".into(),
                    description: "公众平台官网链接".into(),
                    url: "url".into(),
                    msg_id: "6".into(),
                },
            ),
            (
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>",
                Kind::Event(Event::Subscribe {
                    scene: None,
                    ticket: None,
                }),
            ),
            (
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
                Kind::Event(Event::Subscribe {
                    scene: Some("123123".into()),
                    ticket: Some("TICKET".into()),
                }),
            ),
            (
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[unsubscribe]]></Event>",
                Kind::Event(Event::Unsubscribe),
            ),
            (
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[SCENE_VALUE]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
                Kind::Event(Event::Scan {
                    scene: "SCENE_VALUE".into(),
                    ticket: Some("TICKET".into()),
                }),
            ),
            (
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event><Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>",
                Kind::Event(Event::Location {
                    latitude: 23.137466,
                    longitude: 113.352425,
                    precision: 119.38504,
                }),
            ),
            (
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[EVENTKEY]]></EventKey>",
                Kind::Event(Event::Click { key: "EVENTKEY".into() }),
            ),
            (
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[VIEW]]></Event><EventKey><![CDATA[www.qq.com]]></EventKey>",
                Kind::Event(Event::View {
                    url: "www.qq.com".into(),
                }),
            ),
            (
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID><Status><![CDATA[success]]></Status>",
                Kind::Event(Event::TemplateSendJobFinish {
                    msg_id: "200163836".into(),
                    status: "success".into(),
                }),
            ),
            (
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe_msg_popup_event]]></Event><SubscribeMsgPopupEvent>\
                 <List><TemplateId><![CDATA[VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId><SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString><PopupScene>2</PopupScene></List>\
                 <List><TemplateId><![CDATA[9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI]]></TemplateId><SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString><PopupScene>2</PopupScene></List>\
                 </SubscribeMsgPopupEvent>",
                Kind::Event(Event::SubscribeMsgPopup(vec![
                    SubscribeItem {
                        template_id: "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc".into(),
                        status: "accept".into(),
                    },
                    SubscribeItem {
                        template_id: "9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI".into(),
                        status: "reject".into(),
                    },
                ])),
            ),
            (
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe_msg_sent_event]]></Event><SubscribeMsgSentEvent>\
                 <List><TemplateId><![CDATA[VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId><MsgID>1700827132819554304</MsgID><ErrorCode>0</ErrorCode><ErrorStatus><![CDATA[success]]></ErrorStatus></List>\
                 </SubscribeMsgSentEvent>",
                Kind::Event(Event::SubscribeMsgSent(vec![SubscribeItem {
                    template_id: "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc".into(),
                    status: "success".into(),
                }])),
            ),
            (
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_media_check]]></Event><appid>wx1</appid><trace_id>60ae120f</trace_id><version>2</version>\
                 <result><suggest>risky</suggest><label>20002</label></result>",
                Kind::Event(Event::MediaCheck {
                    trace_id: "60ae120f".into(),
                    suggest: "risky".into(),
                    label: "20002".into(),
                }),
            ),
            (
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[user_get_card]]></Event><CardId>p1</CardId>",
                Kind::Event(Event::Card {
                    event: "user_get_card".into(),
                }),
            ),
            (
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[something_new]]></Event>",
                Kind::Event(Event::Other {
                    event: "something_new".into(),
                }),
            ),
            (
                "<MsgType><![CDATA[miniprogrampage]]></MsgType><MsgId>7</MsgId>",
                Kind::Other {
                    msg_type: "miniprogrampage".into(),
                },
            ),
        ];
        for (inner, want) in cases {
            let m = parse(&wrap(inner)).unwrap_or_else(|e| panic!("{inner}: {e}"));
            assert_eq!(m.kind, want, "{inner}");
            assert_eq!(
                (m.to_user_name.as_str(), m.from_user_name.as_str(), m.create_time),
                ("gh_test", "oUser", 1348831860)
            );
        }
    }

    #[test]
    fn dedupe_keys_follow_wechats_rule_and_hostile_bodies_are_refused() {
        let text = parse(&wrap("<MsgType>text</MsgType><Content>a</Content><MsgId>42</MsgId>")).unwrap();
        assert_eq!(text.dedupe_key(), "msg:42");
        let click = parse(&wrap(
            "<MsgType>event</MsgType><Event>CLICK</Event><EventKey>K</EventKey>",
        ))
        .unwrap();
        assert_eq!(click.dedupe_key(), "event:oUser:1348831860:CLICK:K:");
        assert!(
            parse(b"<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><Content>&e;</Content></xml>")
                .is_err()
        );
        assert!(parse(b"not xml").is_err());
        assert!(
            parse(&wrap("<MsgType>text</MsgType><MsgType>event</MsgType>")).is_err(),
            "a repeated field"
        );
    }
}
