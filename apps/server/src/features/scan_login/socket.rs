//! One browser's WebSocket on one scene: the current state first, then every event, a ping every 20 s, and the
//! `expired` event when the scene's time is up. The socket closes after a final event (confirmed, cancelled,
//! expired).

use super::hub::{Signal, Subscription};
use super::service;
use crate::startup::AppState;
use actix_web::web;
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Seconds between pings (a proxy that drops idle connections after 30–60 s keeps this one).
pub const PING_SECS: u64 = 20;

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

/// Serves the socket until a final event, the client leaving, or a failed write.
pub async fn run(
    state: web::Data<AppState>,
    scene: String,
    expires_at: i64,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    mut sub: Subscription,
) {
    let _open = OpenGuard::new();
    // Subscribed before reading the state: an event in between arrives twice at worst, never not at all.
    let mut last: Option<Arc<str>> = None;
    let reason = 'socket: {
        let send_current = async |session: &mut actix_ws::Session, last: &mut Option<Arc<str>>| -> Option<bool> {
            let event = match service::current_event(&state, &scene).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "login socket: cannot read the scene");
                    return None;
                }
            };
            if last.as_deref() == Some(&*event) && !is_final(&event) {
                return Some(false);
            }
            session.text(event.to_string()).await.ok()?;
            *last = Some(event.clone());
            Some(is_final(&event))
        };
        match send_current(&mut session, &mut last).await {
            Some(true) => break 'socket CloseCode::Normal,
            Some(false) => {}
            None => break 'socket CloseCode::Error,
        }
        let mut ping = tokio::time::interval(Duration::from_secs(PING_SECS));
        ping.tick().await;
        let left_ms = (expires_at * 1000 - state.clock.now_ms()).max(0);
        let expiry = tokio::time::sleep(Duration::from_millis(u64::try_from(left_ms).unwrap_or(0) + 50));
        tokio::pin!(expiry);
        let mut expiry_done = false;
        loop {
            tokio::select! {
                signal = sub.next() => match signal {
                    Some(Signal::Event(event)) => {
                        if session.text(event.to_string()).await.is_err() {
                            break 'socket CloseCode::Away;
                        }
                        if is_final(&event) {
                            break 'socket CloseCode::Normal;
                        }
                        last = Some(event);
                    }
                    Some(Signal::Resync(_)) => match send_current(&mut session, &mut last).await {
                        Some(true) => break 'socket CloseCode::Normal,
                        Some(false) => {}
                        None => break 'socket CloseCode::Error,
                    },
                    None => break 'socket CloseCode::Restart,
                },
                _ = &mut expiry, if !expiry_done => {
                    expiry_done = true;
                    match send_current(&mut session, &mut last).await {
                        Some(true) => break 'socket CloseCode::Normal,
                        Some(false) => {}
                        None => break 'socket CloseCode::Error,
                    }
                }
                _ = ping.tick() => {
                    if session.ping(b"").await.is_err() {
                        break 'socket CloseCode::Away;
                    }
                    // The app's clock may run ahead of the timer (tests move it): look again.
                    if state.clock.now_ms() / 1000 >= expires_at {
                        match send_current(&mut session, &mut last).await {
                            Some(true) => break 'socket CloseCode::Normal,
                            Some(false) => {}
                            None => break 'socket CloseCode::Error,
                        }
                    }
                }
                message = stream.next() => match message {
                    Some(Ok(Message::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            break 'socket CloseCode::Away;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Err(_)) => break 'socket CloseCode::Protocol,
                    Some(Ok(_)) => {}
                },
            }
        }
    };
    let _ = session
        .close(Some(CloseReason {
            code: reason,
            description: None,
        }))
        .await;
}
