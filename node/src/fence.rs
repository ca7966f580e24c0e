//! Whether this node's caches may answer: the fence a clustered node closes while it may have
//! missed invalidations, so that it never serves a value another node has overwritten.
//!
//! An owner drops every other node's copy of a key it writes, but only the copies of nodes
//! in its ring. A node outside some peer's ring — one that just started, or was cut off or
//! paused long enough for the peer to drop it — misses that peer's invalidations, and what it
//! caches may be stale. So the fence is open only while
//!
//! - every reachable peer that serves its keys (ready and owning) lists this node in its ring
//!   (the last probe round said so: a peer that dropped this node flushes it before listing
//!   it again; a peer still joining owns nothing yet), and
//! - the last probe round started within the **lease**: `(failure_threshold - 1) ×
//!   probe_interval + failure_threshold × probe_timeout`, the least time a peer takes to drop
//!   a node that is silent but holds its port (paused, or cut off: each of the peer's probes
//!   waits out its timeout). It also covers the gap between two rounds of this node (at most
//!   an interval and two timeouts). A paused process (SIGSTOP) wakes with its lease run out
//!   and serves nothing from its caches until a fresh round has spoken to its peers.
//!
//! While the fence is closed, reads bypass the caches and loads store nothing: they answer
//! from the owner or the source. A node without a cluster has no fence.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Fence {
    /// Every reachable, ready peer listed this node in the last probe round.
    listed: AtomicBool,
    /// The lease runs out at this many milliseconds after `epoch`.
    lease_until_ms: AtomicU64,
    epoch: Instant,
    lease: Duration,
}

impl Fence {
    /// A closed fence whose rounds renew it for `lease`.
    pub(crate) fn new(lease: Duration) -> Fence {
        Fence {
            listed: AtomicBool::new(false),
            lease_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            lease,
        }
    }

    /// The lease of a membership that drops a peer after `failure_threshold` failed probes,
    /// one every `probe_interval`, each failing after `probe_timeout` when the peer is silent.
    pub(crate) fn lease_for(
        failure_threshold: u32,
        probe_interval: Duration,
        probe_timeout: Duration,
    ) -> Duration {
        probe_interval
            .saturating_mul(failure_threshold.saturating_sub(1))
            .saturating_add(probe_timeout.saturating_mul(failure_threshold.max(1)))
    }

    /// A probe round that started at `started` ended: `listed` says whether every reachable,
    /// ready peer lists this node. The lease counts from the round's start (the peers'
    /// answers are at least that old).
    pub(crate) fn renew(&self, started: Instant, listed: bool) {
        self.listed.store(listed, Ordering::Release);
        let until = started
            .saturating_duration_since(self.epoch)
            .saturating_add(self.lease);
        self.lease_until_ms.store(
            u64::try_from(until.as_millis()).unwrap_or(u64::MAX),
            Ordering::Release,
        );
    }

    /// Whether the caches may answer now.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.listed.load(Ordering::Acquire) && {
            let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            now <= self.lease_until_ms.load(Ordering::Acquire)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Closed until a round lists the node; closed again when a round does not, or when the
    /// lease runs out.
    #[test]
    fn opens_with_listing_rounds_and_closes_when_the_lease_runs_out() {
        let fence = Fence::new(Duration::from_secs(60));
        assert!(!fence.is_open(), "closed before the first round");
        fence.renew(Instant::now(), true);
        assert!(fence.is_open());
        fence.renew(Instant::now(), false);
        assert!(!fence.is_open(), "a peer does not list this node");
        let short = Fence::new(Duration::from_millis(1));
        short.renew(Instant::now(), true);
        let deadline = Instant::now() + Duration::from_secs(5);
        while short.is_open() && Instant::now() < deadline {
            std::hint::spin_loop();
        }
        assert!(!short.is_open(), "the lease ran out");
        assert_eq!(
            Fence::lease_for(3, Duration::from_millis(100), Duration::from_millis(300)),
            Duration::from_millis(1100)
        );
        assert_eq!(
            Fence::lease_for(0, Duration::from_secs(1), Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
