//! # wechat-message
//!
//! What an official account's server URL receives and answers:
//!
//! * [`incoming`]: every message type (text, image, voice, video, shortvideo, location, link) and event (subscribe
//!   and unsubscribe with a parametric code's scene, SCAN, LOCATION, CLICK, VIEW, TEMPLATESENDJOBFINISH, the
//!   subscribe-message popup / change / sent events, `wxa_media_check`, card events), typed; anything else kept raw;
//!   parsed by wechat-core's hardened XML codec;
//! * [`Router`]: each push to the async handler for its QR scene, event key, event, message type or a fallback;
//!   [`Router::dispatch_once`] handles a push once across WeChat's retries through a [`DedupeStore`];
//! * [`Reply`]: passive replies (text, image, voice, video, music, news, transfer to customer service), rendered with
//!   CDATA that cannot be broken out of, and encrypted for safe mode;
//! * [`send`]: template messages, subscribe messages (mini program and official account) and customer-service
//!   messages, with typed refusals (43101, 43004, 47003, 40037, 40003, 45015, 45047), never resent blindly;
//! * [`qrcode`]: parametric QR codes (`qrcode/create`), temporary and permanent, whose scans arrive as scene events.
//!
//! Verifying the push (signature, safe-mode decryption, appid) is `wechat_core::push::open_push`; checking its
//! timestamp is `wechat_core::push::check_timestamp`.
//!
//! ```
//! use wechat_core::push::{open_push, server_signature, PushQuery, PushSecurity};
//! use wechat_message::{incoming, MemoryDedupeStore, Reply, Router, NO_REPLY};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let router = Router::new().on_message("text", |m: incoming::Incoming| async move {
//!     Ok(Some(Reply::text(format!("收到：{}", m.fields["Content"]))))
//! });
//! let store = MemoryDedupeStore::new(600);
//! // In the POST handler of the server URL:
//! let query = PushQuery { signature: server_signature("token", "1700000000", "n1"),
//!     timestamp: "1700000000".into(), nonce: "n1".into(), ..PushQuery::default() };
//! let body = b"<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>1700000000</CreateTime>\
//!     <MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId></xml>";
//! let plain = open_push("token", PushSecurity::Plaintext, &query, body).unwrap();
//! let message = incoming::parse(plain.as_bytes()).unwrap();
//! let (to, from) = (message.from_user_name.clone(), message.to_user_name.clone());
//! let answer = match router.dispatch_once(&store, message, 1_700_000_000_000).await.unwrap() {
//!     Some(reply) => reply.render(&to, &from, 1_700_000_001),
//!     None => NO_REPLY.to_owned(),
//! };
//! assert!(answer.contains("收到：hi"));
//! # });
//! ```

#![deny(missing_docs)]
pub mod dedupe;
pub mod incoming;
pub mod qrcode;
pub mod reply;
pub mod router;
pub mod send;

pub use dedupe::{DedupeStore, MemoryDedupeStore};
pub use incoming::{Event, Incoming, Kind};
pub use reply::{Article, NO_REPLY, Reply};
pub use router::{Handler, HandlerError, Outcome, Router};
