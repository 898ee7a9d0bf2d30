//! Failed authentications, limited per client address: a token bucket per address that only failures drain.
//! While an address's bucket is empty, every authenticated call from it is answered 429 without looking at the
//! credential, so guessing gains nothing and a flood of bad tokens costs no database work.
//!
//! The address is the TCP peer: behind a reverse proxy every client shares the proxy's address (run the limiter
//! at the proxy then, or raise `server.auth_failures_per_minute`).

use crate::http::errors::ApiError;
use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Addresses remembered at most; beyond it, the full (idle) buckets are forgotten first.
const MAX_TRACKED: usize = 10_000;

/// The per-address limiter.
#[derive(Debug)]
pub struct AuthLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl AuthLimiter {
    /// Allows `per_minute` failures per minute per address, with the same burst.
    pub fn new(per_minute: u32) -> Self {
        AuthLimiter {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_minute / 60.0).min(self.per_minute);
        b.at = now;
    }

    /// `Err(seconds until one more try)` while `ip` is locked out.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(b) = buckets.get_mut(&ip) else {
            return Ok(());
        };
        self.refill(b, now);
        if b.tokens >= 1.0 {
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) * 60.0 / self.per_minute;
            Err(wait.ceil().max(1.0) as u64)
        }
    }

    /// Counts one failed authentication from `ip`.
    pub fn failed_ip(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let full = self.per_minute;
            let per_minute = self.per_minute;
            buckets.retain(|_, b| {
                let elapsed = now.duration_since(b.at).as_secs_f64();
                b.tokens + elapsed * per_minute / 60.0 < full
            });
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: self.per_minute,
            at: now,
        });
        self.refill(b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }

    /// [`check_ip`](Self::check_ip) for a request: 429 with `Retry-After` while locked out.
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(ip) = req.peer_addr().map(|a| a.ip()) else {
            return Ok(());
        };
        self.check_ip(ip).map_err(|secs| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failed_authentications",
                format!("too many failed authentications from this address: try again in {secs} s"),
            )
            .with_retry_after(secs)
        })
    }

    /// [`failed_ip`](Self::failed_ip) for a request.
    pub fn failed(&self, req: &HttpRequest) {
        if let Some(ip) = req.peer_addr().map(|a| a.ip()) {
            self.failed_ip(ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_drain_the_bucket_and_other_addresses_are_unaffected() {
        let limiter = AuthLimiter::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..2 {
            limiter.failed_ip(a);
            assert_eq!(limiter.check_ip(a), Ok(()));
        }
        limiter.failed_ip(a);
        let wait = limiter.check_ip(a).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(limiter.check_ip(b), Ok(()));
    }
}
