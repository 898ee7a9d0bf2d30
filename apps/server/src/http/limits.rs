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

/// The instance's connection budget (`server.max_connections`, or what the descriptor limit allows): HTTP
/// connections and login sockets draw on it alike. actix counts only the connections its dispatcher serves; a login
/// socket leaves the dispatcher for a task of its own and takes its connection's place along
/// ([`take_connection_place`]), so the total stays within the budget either way.
#[derive(Clone, Debug)]
pub struct ConnectionBudget {
    cap: usize,
    used: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// One connection's place in the [`ConnectionBudget`], given back when dropped.
#[derive(Debug)]
pub struct ConnectionPlace(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for ConnectionPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl ConnectionBudget {
    /// A budget of `cap` connections.
    pub fn new(cap: usize) -> Self {
        ConnectionBudget {
            cap: cap.max(1),
            used: std::sync::Arc::default(),
        }
    }

    /// A place, if the budget has one.
    pub fn take(&self) -> Option<ConnectionPlace> {
        use std::sync::atomic::Ordering;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.cap).then_some(n + 1))
            .ok()
            .map(|_| ConnectionPlace(self.used.clone()))
    }

    /// Connections holding a place now.
    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Acquire)
    }
}

tokio::task_local! {
    /// The place of the connection this task serves (set around each connection's service call).
    static PLACE: std::cell::RefCell<Option<ConnectionPlace>>;
}

/// Serves one connection with its place in the budget: `serve` runs with the place reachable by
/// [`take_connection_place`], and the place is given back when the connection ends — unless it was taken.
pub async fn with_connection_place<F: std::future::Future>(place: ConnectionPlace, serve: F) -> F::Output {
    PLACE.scope(std::cell::RefCell::new(Some(place)), serve).await
}

/// Takes the current connection's place out of its task (a login socket that moves to a task of its own keeps it).
pub fn take_connection_place() -> Option<ConnectionPlace> {
    PLACE.try_with(|p| p.borrow_mut().take()).ok().flatten()
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

    #[tokio::test]
    async fn a_place_travels_with_the_connection_until_dropped() {
        let budget = ConnectionBudget::new(2);
        let (a, b) = (budget.take().unwrap(), budget.take().unwrap());
        assert!(budget.take().is_none(), "the budget is spent");
        drop(a);
        assert_eq!(budget.used(), 1);
        // A place taken out of its connection's task outlives the task (a login socket keeps it).
        let kept = with_connection_place(b, async { take_connection_place() }).await;
        assert_eq!(budget.used(), 1);
        drop(kept);
        assert_eq!(budget.used(), 0);
        // Not taken: given back when the connection ends.
        with_connection_place(budget.take().unwrap(), async {}).await;
        assert_eq!(budget.used(), 0);
        assert!(
            take_connection_place().is_none(),
            "no connection outside a connection's task"
        );
    }
}
