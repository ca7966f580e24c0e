//! Token-bucket rate limiter on fetches (GCRA through `governor`).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter as Gcra};

use crate::error::{Error, Result};
use crate::spec::RateLimitConfig;
use crate::spec::validate::{MAX_BURST, MIN_REQUESTS_PER_SECOND};
use crate::units::deadline_after;

type Direct = Gcra<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    DefaultClock,
    governor::middleware::NoOpMiddleware,
>;

pub(crate) struct RateLimiter {
    inner: Direct,
    clock: DefaultClock,
    wait_timeout: Duration,
}

impl RateLimiter {
    /// A limiter for a validated config (rate > 0, burst ≥ 1; anything else is clamped to the
    /// nearest valid value rather than panicking).
    pub fn new(config: &RateLimitConfig) -> Self {
        let rps = if config.requests_per_second.is_finite() && config.requests_per_second > 0.0 {
            config.requests_per_second
        } else {
            f64::MIN_POSITIVE
        };
        let slowest = Duration::from_secs_f64(1.0 / MIN_REQUESTS_PER_SECOND);
        let period = Duration::try_from_secs_f64(1.0 / rps)
            .unwrap_or(slowest)
            .clamp(Duration::from_nanos(1), slowest);
        let burst = NonZeroU32::new(config.burst.min(MAX_BURST)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let clock = DefaultClock::default();
        RateLimiter {
            inner: Gcra::direct_with_clock(quota, clock.clone()),
            clock,
            wait_timeout: config.wait_timeout,
        }
    }

    /// Takes a token: at once, or by waiting up to `wait_timeout`. When the next token comes
    /// later than the wait allows, fails straight away instead of sleeping for nothing.
    pub async fn acquire(&self, keyspace: &str) -> Result<()> {
        let not_until = match self.inner.check() {
            Ok(()) => return Ok(()),
            Err(not_until) => not_until,
        };
        if self.wait_timeout.is_zero() {
            return Err(Error::DataSourceRateLimited(keyspace.to_owned()));
        }
        let deadline = deadline_after(tokio::time::Instant::now(), self.wait_timeout);
        let mut wait = not_until.wait_time_from(self.clock.now());
        loop {
            if deadline_after(tokio::time::Instant::now(), wait) > deadline {
                return Err(Error::timeout("rate limiter wait", self.wait_timeout));
            }
            tokio::time::sleep(wait).await;
            match self.inner.check() {
                Ok(()) => return Ok(()),
                Err(not_until) => wait = not_until.wait_time_from(self.clock.now()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rps: f64, burst: u32, wait: Duration) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            requests_per_second: rps,
            burst,
            wait_timeout: wait,
        })
    }

    /// With wait 0, the burst passes and the next call is refused at once.
    #[tokio::test]
    async fn zero_wait_denies_immediately() {
        let l = limiter(0.01, 3, Duration::ZERO);
        for _ in 0..3 {
            assert!(l.acquire("ks").await.is_ok());
        }
        let started = std::time::Instant::now();
        let err = l.acquire("ks").await.expect_err("denied");
        assert!(matches!(err, Error::DataSourceRateLimited(ref k) if k == "ks"));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    /// With a wait long enough for the next token, the call waits and passes.
    #[tokio::test]
    async fn waits_for_a_token_within_the_timeout() {
        let l = limiter(50.0, 1, Duration::from_secs(2));
        assert!(l.acquire("ks").await.is_ok());
        assert!(l.acquire("ks").await.is_ok(), "second token comes in ~20ms");
    }

    /// When the next token is further away than the wait allows, the error is a timeout.
    #[tokio::test]
    async fn wait_past_the_timeout_is_a_deadline_error() {
        let l = limiter(0.01, 1, Duration::from_millis(20));
        assert!(l.acquire("ks").await.is_ok());
        let err = l.acquire("ks").await.expect_err("times out");
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    }

    /// Out-of-range configs never panic.
    #[tokio::test]
    async fn odd_configs_do_not_panic() {
        let l = limiter(f64::NAN, 0, Duration::ZERO);
        let _ = l.acquire("ks").await;
        let l = limiter(1e300, 5, Duration::ZERO);
        assert!(l.acquire("ks").await.is_ok());
        let l = limiter(1e-300, u32::MAX, Duration::ZERO);
        assert!(l.acquire("ks").await.is_ok());
    }
}
