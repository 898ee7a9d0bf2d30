//! Passive replies: what the answer to a push may carry, rendered as WeChat expects, and encrypted in safe mode.

use wechat_core::push::MessageCrypto;

/// The body that means "no reply" (WeChat also accepts an empty body).
pub const NO_REPLY: &str = "success";

/// The one article of a news reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Article {
    /// `Title`.
    pub title: String,
    /// `Description`.
    pub description: String,
    /// `PicUrl`: the picture.
    pub pic_url: String,
    /// `Url`: where a tap goes.
    pub url: String,
}

/// A passive reply.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// Text.
    Text(String),
    /// An image by media id.
    Image {
        /// `MediaId`.
        media_id: String,
    },
    /// A voice message by media id.
    Voice {
        /// `MediaId`.
        media_id: String,
    },
    /// A video by media id.
    Video {
        /// `MediaId`.
        media_id: String,
        /// `Title`.
        title: Option<String>,
        /// `Description`.
        description: Option<String>,
    },
    /// Music.
    Music {
        /// `Title`.
        title: String,
        /// `Description`.
        description: String,
        /// `MusicUrl`.
        music_url: String,
        /// `HQMusicUrl`.
        hq_music_url: String,
        /// `ThumbMediaId`.
        thumb_media_id: String,
    },
    /// News: one article (WeChat shows one since 2018).
    News(Article),
    /// Hands the conversation to customer service (to one account when given).
    TransferCustomerService {
        /// `TransInfo/KfAccount`.
        kf_account: Option<String>,
    },
}

/// `<![CDATA[…]]>`, with `]]>` inside split so that the text cannot close the section early.
fn cdata(s: &str) -> String {
    // XML 1.0 forbids most control characters; WeChat would refuse the whole reply.
    let clean: String = s
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .collect();
    format!("<![CDATA[{}]]>", clean.replace("]]>", "]]]]><![CDATA[>"))
}

impl Reply {
    /// A text reply.
    pub fn text(content: impl Into<String>) -> Self {
        Reply::Text(content.into())
    }

    /// `MsgType` of the reply.
    pub fn msg_type(&self) -> &'static str {
        match self {
            Reply::Text(_) => "text",
            Reply::Image { .. } => "image",
            Reply::Voice { .. } => "voice",
            Reply::Video { .. } => "video",
            Reply::Music { .. } => "music",
            Reply::News(_) => "news",
            Reply::TransferCustomerService { .. } => "transfer_customer_service",
        }
    }

    /// The reply XML to `to_user` (the openid that wrote) from `from_user` (our `gh_…`).
    ///
    /// ```
    /// use wechat_message::reply::Reply;
    /// let xml = Reply::text("你好 <b>]]>").render("oUser", "gh_1", 1700000000);
    /// assert!(xml.starts_with("<xml><ToUserName><![CDATA[oUser]]></ToUserName>"));
    /// assert!(xml.contains("<Content><![CDATA[你好 <b>]]]]><![CDATA[>]]></Content>"));
    /// ```
    pub fn render(&self, to_user: &str, from_user: &str, create_time: i64) -> String {
        let mut x = format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{create_time}</CreateTime><MsgType>{}</MsgType>",
            cdata(to_user),
            cdata(from_user),
            cdata(self.msg_type())
        );
        match self {
            Reply::Text(content) => x.push_str(&format!("<Content>{}</Content>", cdata(content))),
            Reply::Image { media_id } => x.push_str(&format!("<Image><MediaId>{}</MediaId></Image>", cdata(media_id))),
            Reply::Voice { media_id } => x.push_str(&format!("<Voice><MediaId>{}</MediaId></Voice>", cdata(media_id))),
            Reply::Video {
                media_id,
                title,
                description,
            } => x.push_str(&format!(
                "<Video><MediaId>{}</MediaId><Title>{}</Title><Description>{}</Description></Video>",
                cdata(media_id),
                cdata(title.as_deref().unwrap_or("")),
                cdata(description.as_deref().unwrap_or(""))
            )),
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => x.push_str(&format!(
                "<Music><Title>{}</Title><Description>{}</Description><MusicUrl>{}</MusicUrl><HQMusicUrl>{}</HQMusicUrl><ThumbMediaId>{}</ThumbMediaId></Music>",
                cdata(title),
                cdata(description),
                cdata(music_url),
                cdata(hq_music_url),
                cdata(thumb_media_id)
            )),
            Reply::News(a) => x.push_str(&format!(
                "<ArticleCount>1</ArticleCount><Articles><item><Title>{}</Title><Description>{}</Description><PicUrl>{}</PicUrl><Url>{}</Url></item></Articles>",
                cdata(&a.title),
                cdata(&a.description),
                cdata(&a.pic_url),
                cdata(&a.url)
            )),
            Reply::TransferCustomerService { kf_account } => {
                if let Some(kf) = kf_account {
                    x.push_str(&format!("<TransInfo><KfAccount>{}</KfAccount></TransInfo>", cdata(kf)));
                }
            }
        }
        x.push_str("</xml>");
        x
    }

    /// The reply for safe mode: rendered, encrypted, and wrapped as `<xml><Encrypt/><MsgSignature/><TimeStamp/>
    /// <Nonce/></xml>`.
    pub fn render_encrypted(
        &self,
        crypto: &MessageCrypto,
        to_user: &str,
        from_user: &str,
        create_time: i64,
        nonce: &str,
    ) -> String {
        crypto.encrypt_reply(
            &self.render(to_user, from_user, create_time),
            &create_time.to_string(),
            nonce,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incoming::parse;

    #[test]
    fn every_reply_renders_as_documented_and_parses_back() {
        let article = Article {
            title: "领券".into(),
            description: "点此查看你的券".into(),
            pic_url: "https://x.example/p.png".into(),
            url: "https://x.example/c/ABCD".into(),
        };
        let replies = [
            Reply::text("hi"),
            Reply::Image { media_id: "m".into() },
            Reply::Voice { media_id: "m".into() },
            Reply::Video {
                media_id: "m".into(),
                title: Some("t".into()),
                description: None,
            },
            Reply::Music {
                title: "t".into(),
                description: "d".into(),
                music_url: "u".into(),
                hq_music_url: "h".into(),
                thumb_media_id: "th".into(),
            },
            Reply::News(article),
            Reply::TransferCustomerService {
                kf_account: Some("kf2001@gh".into()),
            },
            Reply::TransferCustomerService { kf_account: None },
        ];
        for r in replies {
            let xml = r.render("oUser", "gh_1", 1_700_000_000);
            let back = wechat_core::xml::parse_push(xml.as_bytes()).unwrap_or_else(|e| panic!("{xml}: {e}"));
            assert_eq!(back["MsgType"], r.msg_type());
            assert_eq!(back["ToUserName"], "oUser");
            assert_eq!(back["FromUserName"], "gh_1");
            match &r {
                Reply::News(_) => {
                    assert_eq!(back["ArticleCount"], "1");
                    assert_eq!(back["Articles/item/Url"], "https://x.example/c/ABCD");
                }
                Reply::Image { .. } => assert_eq!(back["Image/MediaId"], "m"),
                Reply::Music { .. } => assert_eq!(back["Music/HQMusicUrl"], "h"),
                _ => {}
            }
        }
        // A text that tries to break out of its CDATA or smuggle control characters stays text.
        let xml = Reply::text("a]]><Evil>1</Evil>\u{0}\u{7}b").render("o", "g", 1);
        let back = wechat_core::xml::parse_push(xml.as_bytes()).unwrap();
        assert_eq!(back["Content"], "a]]><Evil>1</Evil>b");
        assert!(!back.contains_key("Evil"));
    }

    #[test]
    fn safe_mode_replies_round_trip() {
        let crypto = MessageCrypto::new("token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx1").unwrap();
        let wrapped = Reply::text("你好").render_encrypted(&crypto, "oUser", "gh_1", 1_700_000_000, "n1");
        let f = wechat_core::xml::parse_push(wrapped.as_bytes()).unwrap();
        assert!(!wrapped.contains("你好"), "encrypted");
        let plain = crypto
            .decrypt_message(&f["MsgSignature"], &f["TimeStamp"], &f["Nonce"], wrapped.as_bytes())
            .unwrap();
        let m = parse(plain.as_bytes()).unwrap();
        assert_eq!(m.fields["Content"], "你好");
        assert_eq!(m.to_user_name, "oUser");
    }
}
