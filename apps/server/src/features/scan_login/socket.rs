//! The login WebSocket, outside actix's HTTP dispatcher: a WebSocket upgrade is handed over (request head and raw
//! connection) by the HTTP service's upgrade hook, checked here (path, `Origin`, scene, watch key), answered with
//! `101 Switching Protocols`, and served in a task of its own by a lean WebSocket ([`super::ws`]): an idle login
//! page costs its connection, one timer and its scene subscription — no read or write buffers
//! (docs/benchmarks.md).
//!
//! One socket watches one scene: the current state first, then every event, a ping every 20 s, and the `expired`
//! event when the scene's time is up. The socket closes after a final event (confirmed, cancelled, expired).
//!
//! Sockets are accounted for: each keeps its connection's place in the instance's connection budget
//! (`server.max_connections`, shared with HTTP) until it closes, at most [`SOCKET_SHARE`] of the cap are sockets
//! (HTTP keeps the rest), a client (IPv4 address, IPv6 /64) holds at most `login.sockets_per_address`, and a scene
//! is watched by at most [`PER_SCENE`] — all refused before the `101`. A client that floods frames (pings included)
//! is closed with 1008.

use super::State;
use super::hub::{Signal, Subscription};
use super::service;
use super::ws::{self, Close};
use actix_codec::Framed;
use actix_rt::net::TcpStream;
use actix_web::HttpMessage as _;
use actix_web::web;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Seconds between pings (a proxy that drops idle connections after 30–60 s keeps this one).
pub const PING_SECS: u64 = 20;
/// The path prefix of login sockets.
pub const PATH: &str = "/ws/login/";

fn is_final(event: &str) -> bool {
    ["\"confirmed\"", "\"cancelled\"", "\"expired\""]
        .iter()
        .any(|e| event.contains(&format!("\"event\":{e}")))
}

/// Sockets one scene accepts: a page, a reconnect and a second tab or two.
pub const PER_SCENE: u32 = 4;
/// The share of the connection cap sockets may take (numerator, denominator): the rest stays for HTTP.
pub const SOCKET_SHARE: (usize, usize) = (3, 4);
/// Frames a client may send in [`FRAME_WINDOW`] (pings, pongs, anything): a page sends none but pongs.
pub const MAX_FRAMES_PER_WINDOW: u32 = 20;
/// The window of [`MAX_FRAMES_PER_WINDOW`].
pub const FRAME_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_client: std::collections::HashMap<std::net::IpAddr, u32>,
    by_scene: std::collections::HashMap<String, u32>,
}

/// The limits on open login sockets of this instance, and their counts.
#[derive(Debug, Clone)]
pub struct SocketLimits {
    total: usize,
    per_client: u32,
    counts: Arc<std::sync::Mutex<Counts>>,
}

/// Why a socket was refused before its `101`.
#[derive(Debug, PartialEq, Eq)]
pub enum SocketRefused {
    /// The instance's share of connections for sockets is taken.
    Full,
    /// This client holds `login.sockets_per_address` already.
    Client,
    /// The scene is watched by [`PER_SCENE`] sockets already.
    Scene,
}

/// One open socket's place in the counts, given back when it drops.
#[derive(Debug)]
pub struct SocketPermit {
    counts: Arc<std::sync::Mutex<Counts>>,
    client: Option<std::net::IpAddr>,
    scene: Option<String>,
}

impl SocketLimits {
    /// Limits for a server whose connection cap is `connection_cap`.
    pub fn new(connection_cap: usize, per_client: u32) -> Self {
        SocketLimits {
            total: (connection_cap * SOCKET_SHARE.0 / SOCKET_SHARE.1).max(1),
            per_client: per_client.max(1),
            counts: Arc::default(),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A place for a socket of `client` (its address, grouped), if the instance and the client have room.
    pub fn admit(&self, client: Option<std::net::IpAddr>) -> Result<SocketPermit, SocketRefused> {
        let client = client.map(crate::http::ratelimit::client_key);
        let mut counts = self.counts();
        if counts.total >= self.total {
            return Err(SocketRefused::Full);
        }
        if let Some(ip) = client {
            let n = counts.by_client.entry(ip).or_default();
            if *n >= self.per_client {
                return Err(SocketRefused::Client);
            }
            *n += 1;
        }
        counts.total += 1;
        Ok(SocketPermit {
            counts: self.counts.clone(),
            client,
            scene: None,
        })
    }

    /// Open sockets on this instance.
    pub fn open(&self) -> usize {
        self.counts().total
    }
}

impl SocketPermit {
    /// Adds the scene the socket watches, if it has room.
    pub fn watch(&mut self, scene: &str) -> Result<(), SocketRefused> {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = counts.by_scene.entry(scene.to_owned()).or_default();
        if *n >= PER_SCENE {
            return Err(SocketRefused::Scene);
        }
        *n += 1;
        drop(counts);
        self.scene = Some(scene.to_owned());
        Ok(())
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(ip) = self.client
            && let Some(n) = counts.by_client.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_client.remove(&ip);
            }
        }
        if let Some(scene) = self.scene.take()
            && let Some(n) = counts.by_scene.get_mut(&scene)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_scene.remove(&scene);
            }
        }
    }
}

/// Open sockets on this instance, for `/metrics`.
static OPEN: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

struct OpenGuard;

impl OpenGuard {
    fn new() -> Self {
        let n = OPEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        metrics::gauge!("wxkit_login_sockets").set(n as f64);
        OpenGuard
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let n = OPEN.fetch_sub(1, std::sync::atomic::Ordering::Relaxed) - 1;
        metrics::gauge!("wxkit_login_sockets").set(n as f64);
    }
}

fn count(status: u16) {
    metrics::counter!("wxkit_http_requests_total", "method" => "GET", "route" => "/ws/login/{scene}", "status" => status.to_string())
        .increment(1);
    // The access line of the upgrade, as the HTTP middleware writes one for every other request.
    let _ = UPGRADE.try_with(|(started, client)| {
        let latency_ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
        let client = client.map(|ip| ip.to_string()).unwrap_or_default();
        let request_id = uuid::Uuid::new_v4().to_string();
        tracing::info!(
            target: "wxkit::access",
            request_id,
            method = "GET",
            route = "/ws/login/{scene}",
            status,
            latency_ms,
            client,
            "access"
        );
    });
}

tokio::task_local! {
    /// When the upgrade request arrived and from whom (behind a trusted proxy, the client it names).
    static UPGRADE: (std::time::Instant, Option<std::net::IpAddr>);
}

/// Refuses the upgrade with an HTTP error in the JSON envelope, and closes the connection.
async fn refuse(io: &mut TcpStream, status: u16, reason: &str, code: &str, message: &str) {
    count(status);
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let retry = if matches!(status, 429 | 503) {
        "retry-after: 30\r\n"
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nx-content-type-options: nosniff\r\n{retry}\r\n{body}",
        body.len()
    );
    let _ = io.write_all(response.as_bytes()).await;
    let _ = io.shutdown().await;
}

fn header(req: &actix_http::Request, name: actix_web::http::header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Answers a refused socket: 503 when the instance is full, 429 when the client or the scene has enough.
async fn refuse_socket(io: &mut TcpStream, why: SocketRefused) {
    let (status, reason, message) = match why {
        SocketRefused::Full => (
            503,
            "Service Unavailable",
            "the server has no room for more login sockets right now: try again shortly",
        ),
        SocketRefused::Client => (
            429,
            "Too Many Requests",
            "too many login pages are open from this network: close some, then reload",
        ),
        SocketRefused::Scene => (
            429,
            "Too Many Requests",
            "this login code is already open in several tabs: close one, or reload for a new code",
        ),
    };
    refuse(io, status, reason, "too_many_sockets", message).await;
}

/// What the upgrade needs from the request head (the head itself is dropped before the socket starts: an idle
/// socket should hold nothing but itself).
struct Asked {
    scene: Option<String>,
    same_origin: bool,
    ws_key: Option<String>,
    version_13: bool,
    key: String,
    client: Option<std::net::IpAddr>,
}

fn read_head(state: &State, req: &actix_http::Request) -> Asked {
    use actix_web::http::header;
    Asked {
        scene: req
            .path()
            .strip_prefix(PATH)
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .map(str::to_owned),
        same_origin: match (header(req, header::ORIGIN), url::Url::parse(&state.public_base_url)) {
            (Some(origin), Ok(base)) => base.origin().ascii_serialization() == origin,
            _ => false,
        },
        ws_key: header(req, header::SEC_WEBSOCKET_KEY).map(str::to_owned),
        version_13: header(req, header::SEC_WEBSOCKET_VERSION) == Some("13"),
        key: req
            .uri()
            .query()
            .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "key"))
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default(),
        // Behind a trusted proxy, the client it names (a login page's sockets are limited per client).
        client: state
            .limits
            .proxies
            .client(req.peer_addr().map(|a| a.ip()), req.headers())
            .ip,
    }
}

/// The HTTP service's upgrade hook: every `Upgrade: websocket` request arrives here.
pub async fn upgrade(
    state: web::Data<State>,
    req: actix_http::Request,
    framed: Framed<TcpStream, actix_http::h1::Codec>,
) -> Result<(), actix_web::Error> {
    let asked = read_head(&state, &req);
    UPGRADE
        .scope(
            (std::time::Instant::now(), asked.client),
            serve_upgrade(state, req, framed, asked),
        )
        .await
}

async fn serve_upgrade(
    state: web::Data<State>,
    req: actix_http::Request,
    framed: Framed<TcpStream, actix_http::h1::Codec>,
    asked: Asked,
) -> Result<(), actix_web::Error> {
    drop(req);
    // Only the connection and any bytes already read stay; actix's buffers and codec go now.
    let (mut io, leftover) = {
        let parts = framed.into_parts();
        (parts.io, parts.read_buf.to_vec())
    };
    let Some(scene) = asked.scene else {
        refuse(&mut io, 404, "Not Found", "not_found", "no such route").await;
        return Ok(());
    };
    if !asked.same_origin {
        refuse(
            &mut io,
            403,
            "Forbidden",
            "bad_origin",
            "the login socket only serves this site's own pages",
        )
        .await;
        return Ok(());
    }
    let Some(ws_key) = asked.ws_key else {
        refuse(
            &mut io,
            400,
            "Bad Request",
            "not_websocket",
            "Sec-WebSocket-Key is missing",
        )
        .await;
        return Ok(());
    };
    if !asked.version_13 {
        refuse(
            &mut io,
            400,
            "Bad Request",
            "not_websocket",
            "only WebSocket version 13 is spoken",
        )
        .await;
        return Ok(());
    }
    let mut permit = match state.sockets.admit(asked.client) {
        Ok(p) => p,
        Err(why) => {
            refuse_socket(&mut io, why).await;
            return Ok(());
        }
    };
    // Subscribed before the scene is read: an event in between arrives twice at worst, never not at all. A pending
    // scene's first event then comes from this one read (no second database trip per connecting socket).
    let sub = state.login_hub.subscribe(&scene);
    let row = match service::load(&state, &scene).await {
        Ok(row) => row,
        Err(e) => {
            let e = crate::http::errors::ApiError::from(e);
            let (status, reason) = match e.code() {
                "not_found" => (404, "Not Found"),
                _ => (503, "Service Unavailable"),
            };
            refuse(&mut io, status, reason, e.code(), e.message()).await;
            return Ok(());
        }
    };
    let given = crate::platform::crypto::sha256_hex(&asked.key);
    if !wechat_core::constant_time_eq(given.as_bytes(), row.watch_key_hash.as_bytes()) {
        refuse(
            &mut io,
            403,
            "Forbidden",
            "bad_key",
            "this socket's key does not belong to the scene",
        )
        .await;
        return Ok(());
    }
    if let Err(why) = permit.watch(&scene) {
        refuse_socket(&mut io, why).await;
        return Ok(());
    }
    let expires_at = row.expires_at;
    let first = (row.status == super::repo::SceneStatus::Pending && !service::expired(&row, state.clock.now_ms()))
        .then(|| service::event_json("waiting", serde_json::json!({"expires_at": expires_at})));
    drop(row);
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(ws_key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
    );
    if io.write_all(response.as_bytes()).await.is_err() {
        return Ok(());
    }
    count(101);
    // The socket leaves the connection's task (whose future holds actix's dispatcher state) for a lean task of its
    // own; the connection's place in the instance's budget (`server.max_connections`) goes with it, so sockets and
    // HTTP connections still share one cap. The permit (the socket counts) is given back when the socket ends.
    let place = crate::http::limits::take_connection_place();
    // Registered anew with the reactor: actix's dispatcher read the request through this socket, so the reactor
    // holds the connection task's waker for it — and a waker keeps its task's memory (the whole dispatcher, about
    // 10 KB) alive after the task ends, for as long as the socket lives. Measured: 14.9 KB per idle socket with the
    // old registration (docs/benchmarks.md).
    let Ok(io) = io.into_std().and_then(TcpStream::from_std) else {
        return Ok(());
    };
    actix_rt::spawn(async move {
        run(state, scene, expires_at, io, leftover, sub, first).await;
        drop((permit, place));
    });
    Ok(())
}

/// Sends the scene's current state unless it repeats the last event; `Some(final?)`, or `None` when the socket or
/// the database failed.
async fn send_current(state: &State, scene: &str, io: &mut TcpStream, last: &mut Option<Arc<str>>) -> Option<bool> {
    let event = match service::current_event(state, scene).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "login socket: cannot read the scene");
            return None;
        }
    };
    if last.as_deref() == Some(&*event) && !is_final(&event) {
        return Some(false);
    }
    ws::send_text(io, &event).await.ok()?;
    let done = is_final(&event);
    *last = Some(event);
    Some(done)
}

/// What the client's frames call for.
enum After {
    Continue,
    /// The client left (or closed, and was answered).
    Return,
    Close(Close),
}

/// Reads and answers what the client sent: pongs to its pings, the closing handshake; counts every frame.
async fn client_frames(io: &mut TcpStream, pending: &mut Vec<u8>, window: &mut (tokio::time::Instant, u32)) -> After {
    let list = match ws::read(io, pending) {
        ws::Read::Eof => return After::Return,
        ws::Read::Invalid(code) => return After::Close(code),
        ws::Read::Frames(list) => list,
    };
    for frame in list {
        // A page sends a pong per ping, so a flood is an abuse of this instance's CPU, and ends the socket.
        if window.0.elapsed() >= FRAME_WINDOW {
            *window = (tokio::time::Instant::now(), 0);
        }
        window.1 += 1;
        if window.1 > MAX_FRAMES_PER_WINDOW {
            return After::Close(Close::Policy);
        }
        match frame {
            ws::Frame::Ping(payload) => {
                if ws::send_pong(io, &payload).await.is_err() {
                    return After::Return;
                }
            }
            // The closing handshake: answer with the client's code, then end.
            ws::Frame::Close(code) => {
                ws::close(io, code.unwrap_or(Close::Normal as u16)).await;
                return After::Return;
            }
            ws::Frame::Other => {}
        }
    }
    After::Continue
}

/// Serves the socket until a final event, the client leaving, or a failed write. `pending`: client bytes that
/// arrived with the upgrade request.
async fn run(
    state: web::Data<State>,
    scene: String,
    expires_at: i64,
    mut io: TcpStream,
    mut pending: Vec<u8>,
    mut sub: Subscription,
    first: Option<Arc<str>>,
) {
    let _open = OpenGuard::new();
    let mut last: Option<Arc<str>> = None;
    let code = 'socket: {
        match first {
            Some(event) => {
                if ws::send_text(&mut io, &event).await.is_err() {
                    break 'socket Close::Away;
                }
                last = Some(event);
            }
            None => match Box::pin(send_current(&state, &scene, &mut io, &mut last)).await {
                Some(true) => break 'socket Close::Normal,
                Some(false) => {}
                None => break 'socket Close::Error,
            },
        }
        let now = tokio::time::Instant::now();
        let left_ms = (expires_at * 1000 - state.clock.now_ms()).max(0);
        let expiry_at = now + Duration::from_millis(u64::try_from(left_ms).unwrap_or(0) + 50);
        let mut expiry_done = false;
        let mut next_ping = now + Duration::from_secs(PING_SECS);
        // One timer for the pings and the expiry: an idle socket holds a single timer entry.
        let deadline = |ping: tokio::time::Instant, expired: bool| if expired { ping } else { ping.min(expiry_at) };
        let timer = tokio::time::sleep_until(deadline(next_ping, expiry_done));
        tokio::pin!(timer);
        let mut window = (now, 0u32);
        let mut read_first = !pending.is_empty();
        loop {
            // What woke us; the socket is written only after the select, so no future holds it meanwhile.
            enum Wake {
                Signal(Option<Signal>),
                Timer,
                Readable(bool),
            }
            let wake = if std::mem::take(&mut read_first) {
                Wake::Readable(true)
            } else {
                tokio::select! {
                    signal = sub.next() => Wake::Signal(signal),
                    () = &mut timer => Wake::Timer,
                    ready = io.readable() => Wake::Readable(ready.is_ok()),
                }
            };
            match wake {
                Wake::Signal(Some(Signal::Event(event))) => {
                    if ws::send_text(&mut io, &event).await.is_err() {
                        break 'socket Close::Away;
                    }
                    if is_final(&event) {
                        break 'socket Close::Normal;
                    }
                    last = Some(event);
                }
                Wake::Signal(Some(Signal::Resync(_))) => {
                    match Box::pin(send_current(&state, &scene, &mut io, &mut last)).await {
                        Some(true) => break 'socket Close::Normal,
                        Some(false) => {}
                        None => break 'socket Close::Error,
                    }
                }
                Wake::Signal(None) => break 'socket Close::Restart,
                Wake::Signal(Some(Signal::Shutdown)) => break 'socket Close::Away,
                Wake::Timer => {
                    let now = tokio::time::Instant::now();
                    // The scene's time is up (the app's clock may run ahead of the timer — tests move it — so a
                    // ping looks again too).
                    let expired = (!expiry_done && now >= expiry_at) || state.clock.now_ms() / 1000 >= expires_at;
                    if now >= next_ping {
                        if ws::send_ping(&mut io).await.is_err() {
                            break 'socket Close::Away;
                        }
                        next_ping = now + Duration::from_secs(PING_SECS);
                    }
                    if expired && !expiry_done {
                        expiry_done = now >= expiry_at;
                        match Box::pin(send_current(&state, &scene, &mut io, &mut last)).await {
                            Some(true) => break 'socket Close::Normal,
                            Some(false) => {}
                            None => break 'socket Close::Error,
                        }
                    }
                    timer.as_mut().reset(deadline(next_ping, expiry_done));
                }
                Wake::Readable(false) => return,
                Wake::Readable(true) => match client_frames(&mut io, &mut pending, &mut window).await {
                    After::Continue => {}
                    After::Return => return,
                    After::Close(code) => break 'socket code,
                },
            }
        }
    };
    ws::close(&mut io, code as u16).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_limited_per_instance_client_and_scene() {
        let limits = SocketLimits::new(8, 3);
        let a: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let b2: std::net::IpAddr = "2001:db8::2".parse().unwrap();
        let mut held = vec![limits.admit(Some(a)).unwrap(), limits.admit(Some(a)).unwrap()];
        held.push(limits.admit(Some(a)).unwrap());
        assert_eq!(limits.admit(Some(a)).err(), Some(SocketRefused::Client));
        held.push(limits.admit(Some(b)).unwrap());
        held.push(limits.admit(Some(b2)).unwrap());
        held.push(limits.admit(None).unwrap());
        // 3/4 of 8: the seventh is refused whoever asks.
        assert_eq!(limits.admit(None).err(), Some(SocketRefused::Full));
        held.truncate(2);
        assert_eq!(limits.open(), 2);
        let mut permits: Vec<SocketPermit> = (0..PER_SCENE).map(|_| limits.admit(None).unwrap()).collect();
        held.clear();
        for p in &mut permits {
            p.watch("s1").unwrap();
        }
        let mut extra = limits.admit(None).unwrap();
        assert_eq!(extra.watch("s1"), Err(SocketRefused::Scene));
        assert_eq!(extra.watch("s2"), Ok(()));
        permits.pop();
        let mut again = limits.admit(None).unwrap();
        assert_eq!(again.watch("s1"), Ok(()), "a closed socket frees its scene's place");
        drop((permits, extra, again));
        assert_eq!(limits.open(), 0);
        assert!(limits.counts().by_scene.is_empty() && limits.counts().by_client.is_empty());
    }
}
