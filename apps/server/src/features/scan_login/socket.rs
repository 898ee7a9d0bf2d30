//! The login WebSocket, outside actix's HTTP dispatcher: a WebSocket upgrade is handed over (request head and raw
//! connection) by the HTTP service's upgrade hook, checked here (path, `Origin`, scene, watch key), answered with
//! `101 Switching Protocols`, and served by tokio-tungstenite with a 512-byte read buffer. An idle login page then
//! costs a few KiB instead of the dispatcher's two 8 KiB buffers plus a payload channel (docs/benchmarks.md).
//!
//! One socket watches one scene: the current state first, then every event, a ping every 20 s, and the `expired`
//! event when the scene's time is up. The socket closes after a final event (confirmed, cancelled, expired).

use super::State;
use super::hub::{Signal, Subscription};
use super::service;
use actix_codec::Framed;
use actix_rt::net::TcpStream;
use actix_web::HttpMessage as _;
use actix_web::web;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

/// Seconds between pings (a proxy that drops idle connections after 30–60 s keeps this one).
pub const PING_SECS: u64 = 20;
/// The path prefix of login sockets.
pub const PATH: &str = "/ws/login/";

fn is_final(event: &str) -> bool {
    ["\"confirmed\"", "\"cancelled\"", "\"expired\""]
        .iter()
        .any(|e| event.contains(&format!("\"event\":{e}")))
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
}

/// Refuses the upgrade with an HTTP error in the JSON envelope, and closes the connection.
async fn refuse(io: &mut TcpStream, status: u16, reason: &str, code: &str, message: &str) {
    count(status);
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nx-content-type-options: nosniff\r\n\r\n{body}",
        body.len()
    );
    let _ = io.write_all(response.as_bytes()).await;
    let _ = io.shutdown().await;
}

fn header(req: &actix_http::Request, name: actix_web::http::header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// What the upgrade needs from the request head (the head itself is dropped before the socket starts: an idle
/// socket should hold nothing but itself).
struct Asked {
    scene: Option<String>,
    same_origin: bool,
    ws_key: Option<String>,
    version_13: bool,
    key: String,
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
    }
}

/// The HTTP service's upgrade hook: every `Upgrade: websocket` request arrives here.
pub async fn upgrade(
    state: web::Data<State>,
    req: actix_http::Request,
    framed: Framed<TcpStream, actix_http::h1::Codec>,
) -> Result<(), actix_web::Error> {
    let asked = read_head(&state, &req);
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
    let config = WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_frame_size(Some(4096))
        .max_message_size(Some(4096));
    let ws = WebSocketStream::from_partially_read(io, leftover, Role::Server, Some(config)).await;
    // A task of its own: the connection's HTTP task (and everything the upgrade held) ends here, so an idle
    // socket costs its own small future only.
    actix_rt::spawn(run(state, scene, expires_at, ws, sub, first));
    Ok(())
}

type Socket = WebSocketStream<TcpStream>;

/// Sends the scene's current state unless it repeats the last event; `Some(final?)`, or `None` when the socket or
/// the database failed.
async fn send_current(state: &State, scene: &str, ws: &mut Socket, last: &mut Option<Arc<str>>) -> Option<bool> {
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
    ws.send(Message::text(event.to_string())).await.ok()?;
    let done = is_final(&event);
    *last = Some(event);
    Some(done)
}

/// Serves the socket until a final event, the client leaving, or a failed write.
async fn run(
    state: web::Data<State>,
    scene: String,
    expires_at: i64,
    mut ws: Socket,
    mut sub: Subscription,
    first: Option<Arc<str>>,
) {
    let _open = OpenGuard::new();
    let mut last: Option<Arc<str>> = None;
    let code = 'socket: {
        match first {
            Some(event) => {
                if ws.send(Message::text(event.to_string())).await.is_err() {
                    break 'socket CloseCode::Away;
                }
                last = Some(event);
            }
            None => match Box::pin(send_current(&state, &scene, &mut ws, &mut last)).await {
                Some(true) => break 'socket CloseCode::Normal,
                Some(false) => {}
                None => break 'socket CloseCode::Error,
            },
        }
        let mut ping = tokio::time::interval(Duration::from_secs(PING_SECS));
        ping.tick().await;
        let left_ms = (expires_at * 1000 - state.clock.now_ms()).max(0);
        let expiry = tokio::time::sleep(Duration::from_millis(u64::try_from(left_ms).unwrap_or(0) + 50));
        tokio::pin!(expiry);
        let mut expiry_done = false;
        loop {
            // What woke us; the socket is used only after the select, so no future holds it meanwhile.
            enum Wake {
                Signal(Option<Signal>),
                Expiry,
                Ping,
                Incoming(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
            }
            let wake = tokio::select! {
                signal = sub.next() => Wake::Signal(signal),
                _ = &mut expiry, if !expiry_done => Wake::Expiry,
                _ = ping.tick() => Wake::Ping,
                message = ws.next() => Wake::Incoming(message),
            };
            match wake {
                Wake::Signal(Some(Signal::Event(event))) => {
                    if ws.send(Message::text(event.to_string())).await.is_err() {
                        break 'socket CloseCode::Away;
                    }
                    if is_final(&event) {
                        break 'socket CloseCode::Normal;
                    }
                    last = Some(event);
                }
                Wake::Signal(Some(Signal::Resync(_))) => {
                    match Box::pin(send_current(&state, &scene, &mut ws, &mut last)).await {
                        Some(true) => break 'socket CloseCode::Normal,
                        Some(false) => {}
                        None => break 'socket CloseCode::Error,
                    }
                }
                Wake::Signal(None) => break 'socket CloseCode::Restart,
                Wake::Expiry => {
                    expiry_done = true;
                    match Box::pin(send_current(&state, &scene, &mut ws, &mut last)).await {
                        Some(true) => break 'socket CloseCode::Normal,
                        Some(false) => {}
                        None => break 'socket CloseCode::Error,
                    }
                }
                Wake::Ping => {
                    if ws.send(Message::Ping(Default::default())).await.is_err() {
                        break 'socket CloseCode::Away;
                    }
                    // The app's clock may run ahead of the timer (tests move it): look again.
                    if state.clock.now_ms() / 1000 >= expires_at {
                        match Box::pin(send_current(&state, &scene, &mut ws, &mut last)).await {
                            Some(true) => break 'socket CloseCode::Normal,
                            Some(false) => {}
                            None => break 'socket CloseCode::Error,
                        }
                    }
                }
                // tungstenite answers pings itself; a close or an error ends the socket.
                Wake::Incoming(Some(Ok(Message::Close(_)))) | Wake::Incoming(None) => return,
                Wake::Incoming(Some(Err(_))) => break 'socket CloseCode::Protocol,
                Wake::Incoming(Some(Ok(_))) => {}
            }
        }
    };
    let _ = ws
        .close(Some(CloseFrame {
            code,
            reason: "".into(),
        }))
        .await;
}
