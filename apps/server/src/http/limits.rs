//! Limits that keep slow or stalled clients from holding the server: a deadline for each request body, and the
//! connection cap computed from the descriptor limit.

use actix_web::HttpMessage as _;
use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_core::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A request body that must be complete by a deadline. Past it the stream ends with a timeout error: the
/// extractor fails (408), the response is sent and the connection — whose body was not read to its end — is closed.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    done: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            if item.is_none() {
                self.done = true;
            }
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request body deadline passed",
            )))));
        }
        Poll::Pending
    }
}

use std::future::Future as _;

/// Wraps the request's body in a deadline of `timeout` from now.
pub fn body_deadline(req: &mut ServiceRequest, timeout: Duration) {
    // A WebSocket's "body" is the socket itself and lives as long as the page: no deadline (pings keep it honest).
    let upgrade = req
        .headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if upgrade {
        return;
    }
    let inner = req.take_payload();
    let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(Deadline {
        inner,
        sleep: Box::pin(tokio::time::sleep(timeout)),
        done: false,
    });
    req.set_payload(Payload::from(stream));
}

/// The soft limit on open descriptors of this process, if it can be read (Linux: `/proc/self/limits`).
pub fn descriptor_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.trim_start_matches("Max open files").split_whitespace().next()?;
    // "unlimited" leaves the cap at actix's own default.
    soft.parse().ok()
}

/// Descriptors kept for everything but client connections: the database pool, outgoing WeChat calls, the
/// listener, log and library files.
pub fn reserved_descriptors(pool_size: u32) -> u64 {
    64 + 2 * u64::from(pool_size)
}

/// The total connection cap: the configured one, else what the descriptor limit leaves after the reserve (at least
/// 16), and never more than actix's default of 25,000 per worker.
pub fn connection_cap(configured: Option<u32>, descriptor_limit: Option<u64>, pool_size: u32) -> usize {
    if let Some(n) = configured {
        return usize::try_from(n).unwrap_or(usize::MAX).max(1);
    }
    let reserve = reserved_descriptors(pool_size);
    let from_limit = descriptor_limit.map_or(25_000, |l| l.saturating_sub(reserve).max(16));
    usize::try_from(from_limit).unwrap_or(25_000).min(25_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_pool_and_outgoing_calls() {
        assert_eq!(connection_cap(Some(100), Some(256), 10), 100);
        assert_eq!(connection_cap(None, Some(1024), 10), 1024 - 84);
        assert_eq!(connection_cap(None, Some(50), 10), 16);
        assert_eq!(connection_cap(None, None, 10), 25_000);
        assert_eq!(connection_cap(None, Some(1 << 20), 10), 25_000);
        assert!(descriptor_limit().is_some_and(|l| l > 0));
    }
}
