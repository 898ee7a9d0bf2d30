//! Delivers scene events to the sockets watching them. Each instance keeps a map scene → broadcast channel for the
//! scenes its sockets watch (a socket subscribes, then reads the current state from the database, so a channel only
//! carries what happens next; a socket that falls behind re-reads the state). An event is delivered to local sockets at once and, on PostgreSQL,
//! published with `NOTIFY` after its commit; every instance `LISTEN`s on one dedicated connection (tokio-postgres:
//! the notification is pushed by the server, not polled) and delivers events of other instances to its sockets.
//! If the listening connection drops, the hub reconnects and asks every local socket to re-read its scene's state,
//! so nothing published meanwhile is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// The NOTIFY channel.
pub const CHANNEL: &str = "wxkit_login";

/// What a watching socket is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// An event's JSON text frame, to send as is.
    Event(Arc<str>),
    /// Events may have been missed (the listener reconnected): re-read the scene from the database.
    Resync(u64),
    /// This instance is stopping: close with 1001 (going away), so that the page reconnects — to another instance.
    Shutdown,
}

/// The scene event hub of one instance. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LoginHub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    scenes: Mutex<HashMap<String, broadcast::Sender<Signal>>>,
    /// This instance, so that it skips its own notifications (already delivered locally).
    instance: String,
    /// The PostgreSQL listener is connected and listening.
    listening: std::sync::atomic::AtomicBool,
}

/// A socket's subscription to one scene; leaving the last one forgets the scene.
#[derive(Debug)]
pub struct Subscription {
    hub: LoginHub,
    scene: String,
    rx: Option<broadcast::Receiver<Signal>>,
}

impl Subscription {
    /// The next signal (waits; `None` if the hub is gone).
    pub async fn next(&mut self) -> Option<Signal> {
        let rx = self.rx.as_mut()?;
        match rx.recv().await {
            Ok(signal) => Some(signal),
            // Fell behind: the database has the state.
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Signal::Resync(0)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut scenes = self
            .hub
            .inner
            .scenes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if scenes.get(&self.scene).is_some_and(|tx| tx.receiver_count() == 0) {
            scenes.remove(&self.scene);
        }
    }
}

impl Default for LoginHub {
    fn default() -> Self {
        Self::new()
    }
}

impl LoginHub {
    /// An empty hub.
    pub fn new() -> Self {
        LoginHub {
            inner: Arc::new(Inner {
                scenes: Mutex::new(HashMap::new()),
                instance: uuid::Uuid::new_v4().simple().to_string(),
                listening: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Whether the PostgreSQL listener (or the MySQL relay) is connected and listening (for readiness and tests).
    pub fn listening(&self) -> bool {
        self.inner.listening.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the cross-instance listener (or MySQL relay) as connected or not.
    pub(super) fn set_listening(&self, on: bool) {
        self.inner.listening.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// This instance's id in notifications.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Scenes watched on this instance.
    pub fn watched(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Signal>>> {
        self.inner
            .scenes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts watching `scene`.
    pub fn subscribe(&self, scene: &str) -> Subscription {
        let mut scenes = self.lock();
        let rx = match scenes.get(scene) {
            Some(tx) => tx.subscribe(),
            None => {
                // A scene has few events (scanned, then a final one); a socket that falls behind re-reads the scene.
                let (tx, rx) = broadcast::channel(4);
                scenes.insert(scene.to_owned(), tx);
                rx
            }
        };
        Subscription {
            hub: self.clone(),
            scene: scene.to_owned(),
            rx: Some(rx),
        }
    }

    /// Delivers an event to this instance's sockets watching `scene`.
    pub fn deliver(&self, scene: &str, event: Arc<str>) {
        if let Some(tx) = self.lock().get(scene) {
            let _ = tx.send(Signal::Event(event));
        }
    }

    /// Tells every local socket that this instance is stopping (see [`Signal::Shutdown`]); returns how many sockets
    /// were told.
    pub fn shutdown(&self) -> usize {
        self.lock()
            .values()
            .map(|tx| tx.send(Signal::Shutdown).unwrap_or(0))
            .sum()
    }

    /// Tells every local socket to re-read its scene.
    pub fn resync_all(&self) {
        static ROUND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let round = ROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for tx in self.lock().values() {
            let _ = tx.send(Signal::Resync(round));
        }
    }

    /// The NOTIFY payload for an event: `{"i": instance, "s": scene, "e": event}`.
    pub fn notification(&self, scene: &str, event: &str) -> String {
        serde_json::json!({"i": self.inner.instance, "s": scene, "e": event}).to_string()
    }

    /// Handles a NOTIFY payload from any instance: events of other instances go to local sockets.
    pub fn on_notification(&self, payload: &str) {
        #[derive(serde::Deserialize)]
        struct Note {
            i: String,
            s: String,
            e: String,
        }
        match serde_json::from_str::<Note>(payload) {
            Ok(n) if n.i == self.inner.instance => {}
            Ok(n) => self.deliver(&n.s, Arc::from(n.e)),
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed login notification"),
        }
    }

    /// Listens on PostgreSQL at `url` until dropped (reconnecting with backoff), delivering other instances'
    /// events: a background job.
    pub fn listener(&self, url: String) -> impl std::future::Future<Output = ()> + Send + 'static {
        let hub = self.clone();
        async move {
            let mut delay = std::time::Duration::from_millis(200);
            let mut first = true;
            loop {
                match hub.listen_once(&url, &mut first).await {
                    Ok(()) => tracing::warn!("login listener: connection closed; reconnecting"),
                    // tokio-postgres says "db error" and keeps the server's message in the source.
                    Err(e) => {
                        tracing::warn!(error = %e, cause = ?e.source().map(ToString::to_string), "login listener failed; reconnecting")
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }

    async fn listen_once(&self, url: &str, first: &mut bool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        use futures_util::StreamExt;
        let (url, tls) = listener_tls(url)?;
        let (client, mut connection) = tokio_postgres::connect(&url, tls).await?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // The connection future yields notifications; drive it in its own task.
        let driver = AbortOnDrop(tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        if tx.send(n.payload().to_owned()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "login listener connection error");
                        break;
                    }
                }
            }
        }));
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        if !std::mem::take(first) {
            // Reconnected: whatever was published while we were away is in the database.
            self.resync_all();
        }
        tracing::debug!("login listener ready");
        self.inner.listening.store(true, std::sync::atomic::Ordering::Relaxed);
        while let Some(payload) = rx.recv().await {
            self.on_notification(&payload);
        }
        self.inner.listening.store(false, std::sync::atomic::Ordering::Relaxed);
        drop(driver);
        drop(client);
        Ok(())
    }
}

/// Aborts its task when dropped: the connection's driver ends with the listener that owns it, also when the
/// listener is stopped mid-wait.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_reach_subscribers_and_the_last_one_out_forgets_the_scene() {
        let hub = LoginHub::new();
        let mut a = hub.subscribe("s1");
        let mut b = hub.subscribe("s1");
        assert_eq!(hub.watched(), 1);
        hub.deliver("s1", Arc::from("{\"event\":\"scanned\"}"));
        hub.deliver("other", Arc::from("x"));
        assert_eq!(
            a.next().await,
            Some(Signal::Event(Arc::from("{\"event\":\"scanned\"}")))
        );
        assert_eq!(
            b.next().await,
            Some(Signal::Event(Arc::from("{\"event\":\"scanned\"}")))
        );
        drop(a);
        assert_eq!(hub.watched(), 1);
        drop(b);
        assert_eq!(hub.watched(), 0);
    }

    #[tokio::test]
    async fn own_notifications_are_skipped_and_others_delivered() {
        let hub = LoginHub::new();
        let other = LoginHub::new();
        let mut sub = hub.subscribe("s");
        hub.on_notification(&hub.notification("s", "mine"));
        other.on_notification("not json");
        hub.on_notification(&other.notification("s", "theirs"));
        assert_eq!(sub.next().await, Some(Signal::Event(Arc::from("theirs"))));
    }
}

/// The listener's connection string and TLS connector, with libpq's `sslmode` meanings (which tokio-postgres only
/// partly knows): `disable`/`allow`/`prefer`/`require` as tokio-postgres has them (no certificate checks, as libpq —
/// except that `require` with `sslrootcert` checks the chain, as libpq does); `verify-ca` checks the chain,
/// `verify-full` the chain and the host name. `sslrootcert` is the CA file.
pub fn listener_tls(url: &str) -> Result<(String, postgres_openssl::MakeTlsConnector), String> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let mut parsed = url::Url::parse(url).map_err(|e| format!("database URL: {e}"))?;
    let mut mode = "prefer".to_owned();
    let mut root = None;
    let mut kept = Vec::new();
    for (k, v) in parsed.query_pairs().into_owned() {
        match k.as_str() {
            "sslmode" => mode = v,
            "sslrootcert" => root = Some(v),
            // libpq-only parameters the listener does not need.
            "sslcert" | "sslkey" | "sslcrl" | "sslpassword" | "sslcompression" | "target_session_attrs" => {}
            _ => kept.push((k, v)),
        }
    }
    let (tp_mode, verify_chain, verify_host) = match mode.as_str() {
        "disable" => ("disable", false, false),
        "allow" | "prefer" => ("prefer", false, false),
        "require" => ("require", root.is_some(), false),
        "verify-ca" => ("require", true, false),
        "verify-full" => ("require", true, true),
        other => return Err(format!("sslmode={other} is not a libpq sslmode")),
    };
    let mut builder = SslConnector::builder(SslMethod::tls()).map_err(|e| e.to_string())?;
    if let Some(root) = &root {
        builder
            .set_ca_file(root)
            .map_err(|e| format!("sslrootcert {root}: {e}"))?;
    }
    if !verify_chain {
        builder.set_verify(SslVerifyMode::NONE);
    }
    let mut tls = postgres_openssl::MakeTlsConnector::new(builder.build());
    if !verify_host {
        tls.set_callback(|config, _| {
            config.set_verify_hostname(false);
            Ok(())
        });
    }
    kept.push(("sslmode".to_owned(), tp_mode.to_owned()));
    parsed.query_pairs_mut().clear().extend_pairs(kept);
    Ok((parsed.to_string(), tls))
}

#[cfg(test)]
mod tls_tests {
    use super::listener_tls;

    #[test]
    fn libpq_sslmodes_map_onto_the_listener() {
        let (url, _) = listener_tls("postgres://u@h:5432/db?sslmode=verify-full&connect_timeout=3").unwrap();
        assert_eq!(url, "postgres://u@h:5432/db?connect_timeout=3&sslmode=require");
        let (url, _) = listener_tls("postgres://u@h/db").unwrap();
        assert!(url.ends_with("sslmode=prefer"), "{url}");
        assert!(listener_tls("postgres://u@h/db?sslmode=bogus").is_err());
        assert!(listener_tls("postgres://u@h/db?sslmode=verify-ca&sslrootcert=/nonexistent.pem").is_err());
    }
}
