//! Bounded retries with exponential backoff for transient failures.

use crate::error::Error;
use rand::Rng;
use std::time::Duration;

/// How often and how patiently a transient failure (errcode -1, HTTP 5xx, timeout, connection failure) is retried.
///
/// Errors that no retry can fix (40013 invalid appid, 40125 invalid secret, 40164 IP whitelist, quotas, business
/// errors) are returned at once, whatever the policy says.
///
/// ```
/// use std::time::Duration;
/// use wechat_core::RetryPolicy;
/// let policy = RetryPolicy::default();
/// assert_eq!(policy.max_attempts, 3);
/// assert!(policy.backoff(1) <= Duration::from_millis(200));
/// assert_eq!(RetryPolicy::none().max_attempts, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Total attempts, the first one included (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further retry.
    pub initial_backoff: Duration,
    /// Upper bound on a single delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// `max_attempts` in all (1 = no retry), the first retry after `initial_backoff`, each later one doubled up to
    /// `max_backoff`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = wechat_core::RetryPolicy::new(5, Duration::from_millis(50), Duration::from_secs(1));
    /// assert_eq!(p.max_attempts, 5);
    /// ```
    pub fn new(max_attempts: u32, initial_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            initial_backoff,
            max_backoff,
        }
    }

    /// The delay before retry number `retry` (1-based): exponential, capped, with up to 50 % random jitter
    /// subtracted so that many clients do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let capped = exp.min(self.max_backoff);
        let jitter = rand::rng().random_range(0.0..0.5);
        capped.mul_f64(1.0 - jitter)
    }

    /// Whether `error`, seen on attempt number `attempt` (1-based), should be retried.
    pub fn should_retry(&self, error: &Error, attempt: u32) -> bool {
        attempt < self.max_attempts && error.is_transient()
    }
}
