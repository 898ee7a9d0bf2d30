//! Failed authentications, limited per client address: a token bucket per address that only failures drain.
//! While an address's bucket is empty, a call with an unknown credential is answered 429 without looking at it, so
//! guessing gains nothing and a flood of bad tokens costs no database work. A credential verified recently is always
//! served: the till, the admin's script and the logged-in phone that share an address (a shop's Wi-Fi, a mall NAT)
//! with someone sending bad tokens keep working.
//!
//! Addresses are grouped as one client: an IPv4 address alone, an IPv6 address by its /64 (one subscriber's
//! network; rotating through it must not reset a limit).
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

/// How long a verified credential stays exempt from its address's lock-out.
const VERIFIED_FOR: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// The client an address stands for in per-address limits: IPv4 (also IPv4-mapped IPv6) alone, IPv6 by its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The per-address limiter.
#[derive(Debug)]
pub struct AuthLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    /// SHA-256 (hex) of credentials that verified, and when: exempt from lock-outs for [`VERIFIED_FOR`].
    verified: Mutex<HashMap<String, Instant>>,
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
            verified: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_minute / 60.0).min(self.per_minute);
        b.at = now;
    }

    /// `Err(seconds until one more try)` while `ip` is locked out.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), u64> {
        let ip = client_key(ip);
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
        let ip = client_key(ip);
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

    /// Remembers that the credential with this SHA-256 (hex) verified: it is served through lock-outs.
    pub fn verified(&self, credential_sha256: &str) {
        let now = Instant::now();
        let mut verified = self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() >= MAX_TRACKED && !verified.contains_key(credential_sha256) {
            verified.retain(|_, at| now.duration_since(*at) < VERIFIED_FOR);
            if verified.len() >= MAX_TRACKED {
                // Still full of live entries: the oldest make room.
                let mut ages: Vec<Instant> = verified.values().copied().collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                verified.retain(|_, at| *at > cut);
            }
        }
        verified.insert(credential_sha256.to_owned(), now);
    }

    /// Whether the credential with this SHA-256 (hex) verified within [`VERIFIED_FOR`].
    pub fn is_verified(&self, credential_sha256: &str) -> bool {
        let verified = self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        verified
            .get(credential_sha256)
            .is_some_and(|at| at.elapsed() < VERIFIED_FOR)
    }

    /// [`check`](Self::check) for a request presenting a credential: one that verified recently is always let
    /// through; any other waits out its address's lock-out.
    pub fn check_credential(&self, req: &HttpRequest, credential_sha256: Option<&str>) -> Result<(), ApiError> {
        if credential_sha256.is_some_and(|c| self.is_verified(c)) {
            return Ok(());
        }
        self.check(req)
    }

    /// [`check_ip`](Self::check_ip) for a request: 429 with `Retry-After` while locked out.
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(ip) = crate::http::client::client_ip(req) else {
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
        if let Some(ip) = crate::http::client::client_ip(req) {
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

    #[test]
    fn an_ipv6_subscriber_is_one_client_and_verified_credentials_are_remembered() {
        let limiter = AuthLimiter::new(2);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        limiter.failed_ip(a);
        limiter.failed_ip(b);
        assert!(limiter.check_ip(a).is_err(), "the /64 shares one bucket");
        assert!(limiter.check_ip(other).is_ok(), "the next /64 is another client");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert!(!limiter.is_verified("abc"));
        limiter.verified("abc");
        assert!(limiter.is_verified("abc"));
    }
}

/// The request limits of the public endpoints (`rate_limits.*`), on `governor`'s keyed GCRA limiters: a key's
/// state is one timestamp, checked without a lock shared across keys.
pub struct RateLimits {
    limiters: Vec<Option<Keyed>>,
}

type Keyed = governor::RateLimiter<
    String,
    governor::state::keyed::DefaultKeyedStateStore<String>,
    governor::clock::DefaultClock,
>;

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

/// What is limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `/auth/callback`, per address.
    OAuthCallback = 0,
    /// Coupon pages and QR images, per address.
    CouponPages = 1,
    /// The coupon page's status poll, per session.
    CouponStatus = 2,
    /// POS redemptions, per staff token.
    Pos = 3,
    /// WeChat's pushes, per address.
    Push = 4,
    /// Login APIs, per address.
    Login = 5,
    /// Orders placed, per buyer.
    Orders = 6,
    /// Login code images fetched from WeChat, per instance (one key).
    LoginCodes = 7,
}

/// Keys remembered per bucket before the idle ones are forgotten.
const MAX_KEYS: usize = 50_000;

impl RateLimits {
    /// The limiters of `settings` (a 0 leaves that bucket unlimited).
    pub fn new(settings: &crate::configuration::RateLimitSettings) -> RateLimits {
        let per = [
            settings.oauth_callback_per_minute,
            settings.coupon_pages_per_minute,
            settings.coupon_status_per_minute,
            settings.pos_per_minute,
            settings.push_per_minute,
            settings.login_per_minute,
            settings.orders_per_minute,
            settings.login_codes_per_minute,
        ];
        RateLimits {
            limiters: per
                .iter()
                .map(|&n| {
                    std::num::NonZeroU32::new(n).map(|n| governor::RateLimiter::keyed(governor::Quota::per_minute(n)))
                })
                .collect(),
        }
    }

    /// `Err(seconds to wait)` when `key` is over `bucket`'s limit.
    pub fn check_key(&self, bucket: Limit, key: &str) -> Result<(), u64> {
        let Some(Some(limiter)) = self.limiters.get(bucket as usize) else {
            return Ok(());
        };
        if limiter.len() > MAX_KEYS {
            limiter.retain_recent();
        }
        limiter.check_key(&key.to_owned()).map_err(|not_until| {
            use governor::clock::Clock;
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// [`check_key`](Self::check_key) for an API: 429 `rate_limited` with `Retry-After`.
    pub fn check(&self, bucket: Limit, key: &str) -> Result<(), ApiError> {
        self.check_key(bucket, key).map_err(|secs| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests: try again in {secs} s"),
            )
            .with_retry_after(secs.max(1))
        })
    }

    /// [`check`](Self::check) keyed by the client's address.
    pub fn check_ip(&self, bucket: Limit, req: &HttpRequest) -> Result<(), ApiError> {
        match crate::http::client::client_ip(req) {
            Some(ip) => self.check(bucket, &client_key(ip).to_string()),
            None => Ok(()),
        }
    }

    /// For pages: the 429 page with `Retry-After` when the client's address is over the limit.
    pub fn check_page(&self, bucket: Limit, req: &HttpRequest) -> Option<actix_web::HttpResponse> {
        let ip = crate::http::client::client_ip(req).map(|ip| client_key(ip).to_string())?;
        self.check_key(bucket, &ip).err().map(|secs| {
            let mut res = crate::http::pages::error_page_with(
                StatusCode::TOO_MANY_REQUESTS,
                "请求太频繁",
                &format!(
                    "Too many requests from this network: wait {} s, then try again.",
                    secs.max(1)
                ),
                &[crate::http::pages::Action::retry(req.uri().path().to_owned())],
            );
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&secs.max(1).to_string()) {
                res.headers_mut().insert(actix_web::http::header::RETRY_AFTER, v);
            }
            res
        })
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn a_bucket_limits_each_key_alone_and_zero_is_off() {
        let limits = RateLimits::new(&crate::configuration::RateLimitSettings {
            pos_per_minute: 2,
            push_per_minute: 0,
            ..Default::default()
        });
        assert!(limits.check_key(Limit::Pos, "a").is_ok());
        assert!(limits.check_key(Limit::Pos, "a").is_ok());
        let wait = limits.check_key(Limit::Pos, "a").unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(limits.check_key(Limit::Pos, "b").is_ok());
        for _ in 0..100 {
            assert!(limits.check_key(Limit::Push, "a").is_ok());
        }
        let err = limits.check(Limit::Pos, "a").unwrap_err();
        assert_eq!(err.code(), "rate_limited");
    }
}
