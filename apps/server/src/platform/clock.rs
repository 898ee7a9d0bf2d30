//! Time. Handlers and services read the application's clock (`AppState::clock`), so tests can move it; the CLI and
//! start-up read the system clock directly.

use std::sync::atomic::{AtomicI64, Ordering};

pub use wechat_core::{Clock, SystemClock};

/// Unix milliseconds now, by the system clock.
pub fn now_ms() -> i64 {
    SystemClock.now_ms()
}

/// The system clock moved by an offset that tests set: a coupon's expiry is tested by moving time, not by rewriting
/// the database.
///
/// ```
/// use wxkit::platform::clock::{Clock, OffsetClock, now_ms};
/// let clock = OffsetClock::default();
/// clock.advance_secs(86_400);
/// assert!(clock.now_ms() >= now_ms() + 86_399_000);
/// ```
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    /// Moves the clock by `secs` (negative: back).
    pub fn advance_secs(&self, secs: i64) {
        self.offset_ms.fetch_add(secs.saturating_mul(1000), Ordering::Relaxed);
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }
}
