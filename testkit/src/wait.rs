//! Waiting on a condition with a deadline: the one way tests synchronise.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(2);

/// Polls `condition` until it holds; fails the test, naming `what`, after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        holds_within(limit, POLL, condition).await,
        "timed out after {limit:?} waiting until {what}"
    );
}

/// Polls `condition` every `every` until it holds (true) or `limit` passes (false), for a
/// caller that explains a time-out itself (say, with what it saw last) or whose check is
/// costly (say, it runs a process).
pub async fn holds_within<F, Fut>(limit: Duration, every: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// [`wait_until`] for a condition that needs no waiting to check.
pub async fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    wait_until(limit, what, || std::future::ready(condition())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let mut polls = 0;
        wait_for(Duration::from_secs(5), "three polls", || {
            polls += 1;
            polls >= 3
        })
        .await;
        assert_eq!(polls, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting until never")]
    async fn fails_after_the_limit_naming_the_condition() {
        wait_for(Duration::from_millis(20), "never", || false).await;
    }
}
