//! Circuit breaker: closed → open after `failure_threshold` consecutive failures → half-open
//! after `reset_timeout` (exactly one probe) → closed on the probe's success, open again on its
//! failure.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::spec::CircuitBreakerConfig;

/// The breaker's state, as shown in stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Fetches flow.
    Closed,
    /// Fetches are refused until the reset timeout passes.
    Open,
    /// One probe fetch decides whether to close again.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

pub(crate) struct CircuitBreaker {
    config: CircuitBreakerConfig,
    state: Mutex<State>,
}

/// Permission for one call. Dropping it without [`record`](Permit::record) (the limiter
/// refused, the caller went away) frees a half-open probe slot and counts nothing.
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    recorded: bool,
}

impl CircuitBreaker {
    pub fn new(config: &CircuitBreakerConfig) -> Self {
        CircuitBreaker {
            config: config.clone(),
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written (every update is
        // one assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Permission to call the source, or `None` while open (or while a probe is out).
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen { probing: true };
                true
            }
            State::Open { .. } => return None,
            State::HalfOpen { probing: true } => return None,
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                true
            }
        };
        Some(Permit {
            breaker: self,
            probe,
            recorded: false,
        })
    }

    fn on_success(&self, probe: bool) {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => *state = State::Closed { failures: 0 },
            State::HalfOpen { .. } if probe => *state = State::Closed { failures: 0 },
            // A call admitted before the breaker opened says nothing about now.
            _ => {}
        }
    }

    fn on_failure(&self, probe: bool) {
        let mut state = self.lock();
        let open = State::Open {
            until: crate::units::deadline_after(Instant::now(), self.config.reset_timeout),
        };
        match *state {
            State::Closed { failures } => {
                let failures = failures + 1;
                *state = if failures >= self.config.failure_threshold {
                    open
                } else {
                    State::Closed { failures }
                };
            }
            State::HalfOpen { .. } if probe => *state = open,
            _ => {}
        }
    }

    fn on_abandon(&self, probe: bool) {
        if probe {
            let mut state = self.lock();
            if let State::HalfOpen { probing: true } = *state {
                *state = State::HalfOpen { probing: false };
            }
        }
    }
}

impl Permit<'_> {
    /// Records the call's outcome.
    pub fn record(mut self, success: bool) {
        self.recorded = true;
        if success {
            self.breaker.on_success(self.probe);
        } else {
            self.breaker.on_failure(self.probe);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.on_abandon(self.probe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn breaker(threshold: u32) -> CircuitBreaker {
        CircuitBreaker::new(&CircuitBreakerConfig {
            failure_threshold: threshold,
            reset_timeout: Duration::from_secs(10),
        })
    }

    /// Opens after exactly `failure_threshold` consecutive failures; a success resets the count.
    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures() {
        let b = breaker(3);
        for _ in 0..2 {
            b.try_acquire().expect("closed").record(false);
        }
        b.try_acquire().expect("closed").record(true);
        for _ in 0..2 {
            b.try_acquire().expect("closed").record(false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.try_acquire().expect("closed").record(false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire().is_none());
    }

    /// After the reset timeout exactly one probe goes through; its success closes the breaker.
    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_probe_and_closes_on_success() {
        let b = breaker(1);
        b.try_acquire().expect("closed").record(false);
        assert!(b.try_acquire().is_none());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire().expect("probe");
        assert!(b.try_acquire().is_none(), "only one probe at a time");
        probe.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.try_acquire().is_some());
    }

    /// A failed probe re-opens the breaker for another reset timeout.
    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens() {
        let b = breaker(1);
        b.try_acquire().expect("closed").record(false);
        tokio::time::advance(Duration::from_secs(10)).await;
        b.try_acquire().expect("probe").record(false);
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(b.try_acquire().is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.try_acquire().is_some());
    }

    /// An abandoned probe (limiter refused, caller gone) frees the slot for the next caller.
    #[tokio::test(start_paused = true)]
    async fn abandoned_probe_frees_the_slot() {
        let b = breaker(1);
        b.try_acquire().expect("closed").record(false);
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(b.try_acquire().expect("probe"));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.try_acquire().expect("slot freed").record(true);
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
