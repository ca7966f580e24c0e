//! A lock-free latency histogram: fixed buckets in seconds, atomic adds into one of a few
//! per-thread copies (no cache line shared by threads recording at once), read at scrape time. Recording never locks and never allocates, so it can sit on the load
//! and write paths (hits record only a sample, see [`HitSampler`](super::HitSampler)).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: from 10 µs (a hit) to 10 s (a slow source).
pub(crate) const BUCKETS: [f64; 18] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The same bounds in nanoseconds, for the comparison on the recording path.
const BOUNDS_NANOS: [u64; 18] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

/// How many copies of the counters a histogram keeps: each thread records into one of them,
/// so threads serving requests at once do not fight over the same cache lines.
const SHARDS: usize = 4;

/// One copy of the counters: observations per bucket (not cumulative; the last slot is
/// `+Inf`), their number and their sum in nanoseconds, on cache lines of their own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Shard {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

thread_local! {
    /// The shard this thread records into, given out in turn on first use.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

/// Observations counted per bucket, their number and their sum, kept in [`SHARDS`] copies
/// that a snapshot adds up.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    shards: [Shard; SHARDS],
}

impl Histogram {
    /// Records one observation.
    #[inline]
    pub fn record(&self, elapsed: Duration) {
        self.record_weighted(elapsed, 1);
    }

    /// Records one observation standing for `weight` alike (a sample of 1 in `weight`).
    pub fn record_weighted(&self, elapsed: Duration, weight: u64) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let slot = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        let shard = &self.shards[SHARD.with(|s| *s)];
        shard.buckets[slot].fetch_add(weight, Ordering::Relaxed);
        shard.count.fetch_add(weight, Ordering::Relaxed);
        shard
            .sum_nanos
            .fetch_add(nanos.saturating_mul(weight), Ordering::Relaxed);
    }

    /// The histogram now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let total = |read: &dyn Fn(&Shard) -> u64| {
            self.shards.iter().map(read).fold(0u64, u64::wrapping_add)
        };
        let buckets = BUCKETS
            .iter()
            .chain([&f64::INFINITY])
            .enumerate()
            .map(|(i, &bound)| (bound, total(&|s| s.buckets[i].load(Ordering::Relaxed))))
            .collect();
        HistogramSnapshot {
            buckets,
            count: total(&|s| s.count.load(Ordering::Relaxed)),
            sum_seconds: total(&|s| s.sum_nanos.load(Ordering::Relaxed)) as f64 / 1e9,
        }
    }
}

/// A histogram at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HistogramSnapshot {
    /// `(upper bound in seconds, observations in this bucket)`, not cumulative, the last
    /// bound infinite (what both the Prometheus encoder and OTLP take).
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Their sum in seconds.
    pub sum_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_agree() {
        for (seconds, nanos) in BUCKETS.iter().zip(BOUNDS_NANOS) {
            assert_eq!((seconds * 1e9).round() as u64, nanos);
        }
    }

    /// An observation lands in the first bucket whose bound is at or above it, and a weight
    /// counts as that many observations.
    #[test]
    fn observations_land_in_their_bucket() {
        let h = Histogram::default();
        h.record(Duration::from_micros(10)); // exactly on the first bound
        h.record(Duration::from_micros(11));
        h.record_weighted(Duration::from_millis(3), 4);
        h.record(Duration::from_secs(60)); // above every bound: +Inf only
        let s = h.snapshot();
        assert_eq!(s.count, 7);
        assert_eq!(s.buckets.len(), BUCKETS.len() + 1);
        assert_eq!(s.buckets[0], (0.000_01, 1));
        assert_eq!(s.buckets[1], (0.000_025, 1));
        let at = |bound: f64| s.buckets.iter().find(|(b, _)| *b == bound).map(|(_, n)| *n);
        assert_eq!(at(0.002_5), Some(0));
        assert_eq!(at(0.005), Some(4));
        assert_eq!(at(10.0), Some(0));
        assert_eq!(at(f64::INFINITY), Some(1));
        assert_eq!(s.buckets.iter().map(|(_, n)| n).sum::<u64>(), s.count);
        let expected = 0.000_021 + 4.0 * 0.003 + 60.0;
        assert!((s.sum_seconds - expected).abs() < 1e-9, "{}", s.sum_seconds);
    }

    /// Threads record into their own copies; a snapshot counts every observation once.
    #[test]
    fn threads_add_up() {
        let h = Histogram::default();
        std::thread::scope(|scope| {
            for _ in 0..6 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        h.record(Duration::from_micros(30));
                    }
                });
            }
        });
        let s = h.snapshot();
        assert_eq!(s.count, 6000);
        assert_eq!(s.buckets[2], (0.000_05, 6000));
        assert!((s.sum_seconds - 0.18).abs() < 1e-9, "{}", s.sum_seconds);
    }
}
