//! Dispatch: each push to the async handler for its type, event, menu key or QR scene.

use crate::dedupe::DedupeStore;
use crate::incoming::{Event, Incoming, Kind};
use crate::reply::Reply;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a handler may fail with (the push is then not acknowledged, and WeChat resends it).
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;
/// A handler's answer: a passive reply, or none (`success`).
pub type Outcome = Result<Option<Reply>, HandlerError>;
type BoxFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// An async handler of pushes. Any `Fn(Incoming) -> impl Future<Output = Outcome>` is one.
pub trait Handler: Send + Sync + 'static {
    /// Handles one push.
    fn call(&self, message: Incoming) -> BoxFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(Incoming) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    fn call(&self, message: Incoming) -> BoxFuture {
        Box::pin(self(message))
    }
}

/// Routes pushes to handlers. The most specific route wins: a QR scene, then an event's key (menu clicks and
/// views), then the event, then the message type, then the fallback. Event names match in any letter case.
///
/// ```
/// use wechat_message::{Reply, Router, incoming};
/// # tokio_test();
/// # fn tokio_test() { tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let router = Router::new()
///     .on_message("text", |m: incoming::Incoming| async move {
///         Ok(Some(Reply::text(format!("you said {}", m.fields["Content"]))))
///     })
///     .on_scene("c42", |_m| async { Ok(Some(Reply::text("welcome, here is your coupon"))) });
/// let text = incoming::parse(b"<xml><FromUserName>o1</FromUserName><MsgType>text</MsgType>\
///     <Content>hi</Content><MsgId>1</MsgId></xml>").unwrap();
/// assert_eq!(router.dispatch(text).await.unwrap(), Some(Reply::text("you said hi")));
/// let scan = incoming::parse(b"<xml><MsgType>event</MsgType><Event>SCAN</Event><EventKey>c42</EventKey></xml>").unwrap();
/// assert_eq!(router.dispatch(scan).await.unwrap(), Some(Reply::text("welcome, here is your coupon")));
/// # }) }
/// ```
#[derive(Clone, Default)]
pub struct Router {
    messages: HashMap<String, Arc<dyn Handler>>,
    events: HashMap<String, Arc<dyn Handler>>,
    event_keys: HashMap<(String, String), Arc<dyn Handler>>,
    scenes: HashMap<String, Arc<dyn Handler>>,
    fallback: Option<Arc<dyn Handler>>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = |m: Vec<String>| {
            let mut m = m;
            m.sort();
            m
        };
        f.debug_struct("Router")
            .field("messages", &keys(self.messages.keys().cloned().collect()))
            .field("events", &keys(self.events.keys().cloned().collect()))
            .field(
                "event_keys",
                &keys(self.event_keys.keys().map(|(e, k)| format!("{e}:{k}")).collect()),
            )
            .field("scenes", &keys(self.scenes.keys().cloned().collect()))
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl Router {
    /// No routes: every push is acknowledged with no reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Messages of a `MsgType` (`text`, `image`, `voice`, `video`, `shortvideo`, `location`, `link`…).
    pub fn on_message(mut self, msg_type: &str, handler: impl Handler) -> Self {
        self.messages.insert(msg_type.to_owned(), Arc::new(handler));
        self
    }

    /// Events by `Event` (`subscribe`, `unsubscribe`, `SCAN`, `CLICK`, `TEMPLATESENDJOBFINISH`, card events…).
    pub fn on_event(mut self, event: &str, handler: impl Handler) -> Self {
        self.events.insert(event.to_ascii_lowercase(), Arc::new(handler));
        self
    }

    /// An event with a given `EventKey` (a menu button's key, a menu link's URL).
    pub fn on_event_key(mut self, event: &str, key: &str, handler: impl Handler) -> Self {
        self.event_keys
            .insert((event.to_ascii_lowercase(), key.to_owned()), Arc::new(handler));
        self
    }

    /// A parametric QR code's scene, however it arrives: `subscribe` with `qrscene_{scene}` (a new follower) or
    /// `SCAN` (a follower).
    pub fn on_scene(mut self, scene: &str, handler: impl Handler) -> Self {
        self.scenes.insert(scene.to_owned(), Arc::new(handler));
        self
    }

    /// Everything no other route takes.
    pub fn fallback(mut self, handler: impl Handler) -> Self {
        self.fallback = Some(Arc::new(handler));
        self
    }

    /// The handler a push goes to.
    pub fn route(&self, message: &Incoming) -> Option<&Arc<dyn Handler>> {
        let scene = match &message.kind {
            Kind::Event(Event::Subscribe { scene: Some(s), .. }) | Kind::Event(Event::Scan { scene: s, .. }) => {
                self.scenes.get(s)
            }
            _ => None,
        };
        let event = message.event_name().map(str::to_ascii_lowercase);
        let by_key = event.as_ref().and_then(|e| {
            let key = message.fields.get("EventKey")?;
            self.event_keys.get(&(e.clone(), key.clone()))
        });
        scene
            .or(by_key)
            .or_else(|| event.as_ref().and_then(|e| self.events.get(e)))
            .or_else(|| match message.kind {
                Kind::Event(_) => None,
                _ => self.messages.get(message.msg_type()),
            })
            .or(self.fallback.as_ref())
    }

    /// Runs the handler for a push (no route: no reply).
    pub async fn dispatch(&self, message: Incoming) -> Outcome {
        match self.route(&message) {
            Some(h) => h.call(message).await,
            None => Ok(None),
        }
    }

    /// Like [`dispatch`](Self::dispatch), once per push: a key already seen by `store` (WeChat's retry, another
    /// instance's) gets no handler call and no reply. A store that cannot answer is an error: the push is not
    /// acknowledged and WeChat resends it.
    pub async fn dispatch_once(&self, store: &dyn DedupeStore, message: Incoming, now_ms: i64) -> Outcome {
        if !store.first_seen(&message.dedupe_key(), now_ms).await? {
            return Ok(None);
        }
        self.dispatch(message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedupe::MemoryDedupeStore;
    use crate::incoming::parse;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn push(inner: &str) -> Incoming {
        parse(
            format!("<xml><FromUserName>o1</FromUserName><CreateTime>1700000000</CreateTime>{inner}</xml>").as_bytes(),
        )
        .unwrap()
    }

    fn says(s: &'static str) -> impl Handler {
        move |_m: Incoming| async move { Ok(Some(Reply::text(s))) }
    }

    #[tokio::test]
    async fn the_most_specific_route_wins() {
        let r = Router::new()
            .on_message("text", says("text"))
            .on_event("CLICK", says("any click"))
            .on_event_key("click", "V1001_TODAY_MUSIC", says("music"))
            .on_event("subscribe", says("welcome"))
            .on_scene("c42", says("coupon 42"))
            .fallback(says("fallback"));
        let cases = [
            ("<MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId>", "text"),
            (
                "<MsgType>event</MsgType><Event>CLICK</Event><EventKey>V1001_TODAY_MUSIC</EventKey>",
                "music",
            ),
            (
                "<MsgType>event</MsgType><Event>CLICK</Event><EventKey>OTHER</EventKey>",
                "any click",
            ),
            ("<MsgType>event</MsgType><Event>subscribe</Event>", "welcome"),
            (
                "<MsgType>event</MsgType><Event>subscribe</Event><EventKey>qrscene_c42</EventKey>",
                "coupon 42",
            ),
            (
                "<MsgType>event</MsgType><Event>subscribe</Event><EventKey>qrscene_c7</EventKey>",
                "welcome",
            ),
            (
                "<MsgType>event</MsgType><Event>SCAN</Event><EventKey>c42</EventKey>",
                "coupon 42",
            ),
            (
                "<MsgType>event</MsgType><Event>SCAN</Event><EventKey>c7</EventKey>",
                "fallback",
            ),
            ("<MsgType>image</MsgType><MsgId>2</MsgId>", "fallback"),
        ];
        for (inner, want) in cases {
            assert_eq!(
                r.dispatch(push(inner)).await.unwrap(),
                Some(Reply::text(want)),
                "{inner}"
            );
        }
        assert_eq!(
            Router::new().dispatch(push("<MsgType>text</MsgType>")).await.unwrap(),
            None
        );
        assert!(format!("{r:?}").contains("c42"));
    }

    #[tokio::test]
    async fn a_push_retried_is_handled_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let r = Router::new().on_message("text", move |_m: Incoming| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(Some(Reply::text("once")))
            }
        });
        let store = MemoryDedupeStore::new(600);
        let body = "<MsgType>text</MsgType><Content>x</Content><MsgId>99</MsgId>";
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(r.dispatch_once(&store, push(body), 1_700_000_000_000).await.unwrap());
        }
        assert_eq!(answers, vec![Some(Reply::text("once")), None, None]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A handler failure is the caller's to report (the push is then not acknowledged).
        let failing = Router::new().on_message("text", |_m: Incoming| async {
            Err::<Option<Reply>, HandlerError>("db down".into())
        });
        assert!(failing.dispatch(push(body)).await.is_err());
    }
}
