//! Time, injectable: the token manager, the client's retry backoff and token polling read a [`Clock`], so tests can
//! move time (and skip waits) without touching the system clock.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time, injectable for tests.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> i64;

    /// Waits `duration` (retry backoff, token polling). The default sleeps on tokio's timer; a test clock can
    /// return at once (and move its own time), so that backoff costs a test nothing.
    fn sleep(&self, duration: std::time::Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}
