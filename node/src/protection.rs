//! Data-source protection: a rate limiter and a circuit breaker around every fetch, and the
//! bound on loads running and waiting (`protection/loads.rs`).
//!
//! Order inside one guarded call (the seed's): the breaker is asked first (open → the source is
//! not called, `DataSourceCircuitOpen`); then the limiter (no token and `wait_timeout = 0` →
//! `DataSourceRateLimited`; otherwise wait up to `wait_timeout` → `Timeout`); then the source,
//! bounded by the keyspace's `read_timeout`; then the outcome is recorded in the breaker. Only
//! real failures count against the breaker: source errors and timeouts, not not-found and not a
//! limiter rejection (which frees a half-open probe slot for the next caller).

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result, SourceError};
use crate::spec::{CircuitBreakerConfig, RateLimitConfig};

mod breaker;
mod limiter;
mod loads;

pub use breaker::BreakerState;
use breaker::CircuitBreaker;
use limiter::RateLimiter;
pub(crate) use loads::{LoadGate, Pass};

/// The limiter and breaker of one keyspace (each optional).
pub(crate) struct Guard {
    keyspace: String,
    limiter: Option<RateLimiter>,
    breaker: Option<CircuitBreaker>,
}

impl Guard {
    /// Fresh protection state for `keyspace`.
    pub fn new(
        keyspace: &str,
        rate_limit: Option<&RateLimitConfig>,
        circuit_breaker: Option<&CircuitBreakerConfig>,
    ) -> Guard {
        Guard {
            keyspace: keyspace.to_owned(),
            limiter: rate_limit.map(RateLimiter::new),
            breaker: circuit_breaker.map(CircuitBreaker::new),
        }
    }

    /// The breaker's state, when there is a breaker.
    pub fn breaker_state(&self) -> Option<BreakerState> {
        self.breaker.as_ref().map(CircuitBreaker::state)
    }

    /// Runs `call` under the breaker, the limiter and `timeout`. `failed` decides whether a
    /// successful call still counts as a failure for the breaker (a batch where every key
    /// failed, say).
    pub async fn call<T, F>(
        &self,
        timeout: Duration,
        call: F,
        failed: impl FnOnce(&T) -> bool,
    ) -> Result<T>
    where
        F: Future<Output = Result<T, SourceError>>,
    {
        let permit = match &self.breaker {
            Some(breaker) => Some(
                breaker
                    .try_acquire()
                    .ok_or_else(|| Error::DataSourceCircuitOpen(self.keyspace.clone()))?,
            ),
            None => None,
        };
        if let Some(limiter) = &self.limiter {
            // On rejection the permit is dropped unrecorded, freeing a half-open probe slot.
            limiter.acquire(&self.keyspace).await?;
        }
        let outcome = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Error::DataSource(e)),
            Err(_) => Err(Error::timeout("fetch", timeout)),
        };
        if let Some(permit) = permit {
            match &outcome {
                // The source was never asked: nothing learnt about its health.
                Err(Error::DataSource(e)) if e.is_refusal() => drop(permit),
                Ok(value) => permit.record(!failed(value)),
                Err(_) => permit.record(false),
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting() -> (Arc<AtomicUsize>, impl Fn() -> Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        (calls, move || c.clone())
    }

    /// With no limiter and no breaker, the call just runs under the timeout.
    #[tokio::test]
    async fn unguarded_call_runs_and_times_out() {
        let guard = Guard::new("ks", None, None);
        let v = guard
            .call(Duration::from_secs(1), async { Ok(5) }, |_| false)
            .await;
        assert_eq!(v.ok(), Some(5));
        let slow = guard
            .call(
                Duration::from_millis(10),
                async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(1)
                },
                |_| false,
            )
            .await;
        assert!(matches!(slow, Err(Error::Timeout { .. })), "{slow:?}");
    }

    /// An open breaker refuses without calling the source.
    #[tokio::test]
    async fn open_breaker_skips_the_source() {
        let guard = Guard::new(
            "ks",
            None,
            Some(&CircuitBreakerConfig {
                failure_threshold: 2,
                reset_timeout: Duration::from_secs(60),
            }),
        );
        let (calls, handle) = counting();
        for _ in 0..2 {
            let c = handle();
            let r: Result<()> = guard
                .call(
                    Duration::from_secs(1),
                    async move {
                        c.fetch_add(1, Ordering::SeqCst);
                        Err(SourceError::new("down"))
                    },
                    |_| false,
                )
                .await;
            assert!(matches!(r, Err(Error::DataSource(_))));
        }
        let c = handle();
        let r: Result<()> = guard
            .call(
                Duration::from_secs(1),
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                },
                |_| false,
            )
            .await;
        assert!(matches!(r, Err(Error::DataSourceCircuitOpen(ref k)) if k == "ks"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(guard.breaker_state(), Some(BreakerState::Open));
    }

    /// A rate-limited call never reaches the source, and does not count as a breaker failure.
    #[tokio::test]
    async fn limiter_rejection_is_not_a_breaker_failure() {
        let guard = Guard::new(
            "ks",
            Some(&RateLimitConfig {
                requests_per_second: 0.001,
                burst: 1,
                wait_timeout: Duration::ZERO,
            }),
            Some(&CircuitBreakerConfig {
                failure_threshold: 1,
                reset_timeout: Duration::from_secs(60),
            }),
        );
        let ok = guard
            .call(Duration::from_secs(1), async { Ok(()) }, |_| false)
            .await;
        assert!(ok.is_ok());
        for _ in 0..3 {
            let r = guard
                .call(Duration::from_secs(1), async { Ok(()) }, |_| false)
                .await;
            assert!(matches!(r, Err(Error::DataSourceRateLimited(_))), "{r:?}");
        }
        assert_eq!(guard.breaker_state(), Some(BreakerState::Closed));
    }

    /// A call whose result is judged failed counts against the breaker.
    #[tokio::test]
    async fn judged_failures_count() {
        let guard = Guard::new(
            "ks",
            None,
            Some(&CircuitBreakerConfig {
                failure_threshold: 1,
                reset_timeout: Duration::from_secs(60),
            }),
        );
        let r = guard
            .call(Duration::from_secs(1), async { Ok(vec![1]) }, |v| {
                v.len() == 1
            })
            .await;
        assert!(r.is_ok());
        assert_eq!(guard.breaker_state(), Some(BreakerState::Open));
    }
}
