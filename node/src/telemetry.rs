//! The instruments the node records into: counters, lock-free histograms, the engine's
//! operations by name, calls to peers by peer, and the sampler that keeps hits cheap.
//!
//! These atomics are the source of truth for every metric the node shows: `GET /metrics`
//! reads them at scrape time (`server/metrics.rs`), and the OpenTelemetry export observes the
//! same values. Recording is an atomic add, never a lock or an allocation, except for the
//! first call to a new peer or a keyspace operation (rare: the set is bounded by members and
//! keyspaces).
//!
//! A cache hit costs about as much as two clock reads, so hits are timed 1 in
//! [`HitSampler`]'s `every` and recorded with that weight: the duration histograms' counts
//! and percentiles stay right on average while a hit pays one thread-local increment.
//! Everything else (misses, writes, keyspace operations, fetches, peer calls) is timed every
//! time.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode};

mod histogram;
mod spans;

pub(crate) use histogram::{BUCKETS, Histogram, HistogramSnapshot};
pub use spans::Spans;
pub(crate) use spans::{end as end_span, span_name, within};

/// One monotonically increasing counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter that every hit adds to, from every thread at once: one cache line per stripe,
/// each thread adding to its own, and a read summing them. With one atomic, the line would
/// move between cores at every hit.
#[derive(Debug, Default)]
pub(crate) struct StripedCounter([Stripe; STRIPES]);

/// Stripes of a [`StripedCounter`]: threads past this many share them.
const STRIPES: usize = 8;

/// One stripe, alone on its cache line (128 bytes: adjacent lines are fetched in pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

thread_local! {
    /// This thread's stripe, given in turn as threads first count.
    static STRIPE: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES
    };
}

impl StripedCounter {
    #[inline]
    pub fn inc(&self) {
        let stripe = STRIPE.with(|s| *s);
        if let Some(Stripe(count)) = self.0.get(stripe) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> u64 {
        self.0
            .iter()
            .map(|Stripe(count)| count.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// The engine's operations, by the seed's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Op {
    Get,
    GetMany,
    Put,
    PutMany,
    Delete,
    DeleteMany,
    CreateKeyspace,
    UpdateKeyspace,
    DeleteKeyspace,
    DeleteKeyspaces,
}

impl Op {
    /// The operations on keys, counted per keyspace (indexes of [`KeyOps`]).
    pub const KEYS: [Op; 6] = [
        Op::Get,
        Op::GetMany,
        Op::Put,
        Op::PutMany,
        Op::Delete,
        Op::DeleteMany,
    ];

    /// The name in metrics and spans.
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::GetMany => "get_many",
            Op::Put => "put",
            Op::PutMany => "put_many",
            Op::Delete => "delete",
            Op::DeleteMany => "delete_many",
            Op::CreateKeyspace => "create_keyspace",
            Op::UpdateKeyspace => "update_keyspace",
            Op::DeleteKeyspace => "delete_keyspace",
            Op::DeleteKeyspaces => "delete_keyspaces",
        }
    }
}

/// Calls of one operation: how many, how they failed, how long they took.
#[derive(Debug, Default)]
pub(crate) struct OpStats {
    pub requests: Counter,
    errors: [Counter; ErrorCode::ALL.len()],
    pub duration: Histogram,
}

impl OpStats {
    /// Counts a failed call by its error's code.
    pub fn error(&self, error: &Error) {
        self.errors[error.code() as usize].inc();
    }

    /// Counts a finished call (started at `started`) and its error if it failed.
    pub fn finish<T>(&self, started: Instant, result: &Result<T, Error>) {
        self.requests.inc();
        self.duration.record(started.elapsed());
        if let Err(e) = result {
            self.error(e);
        }
    }

    pub fn snapshot(&self) -> OpSnapshot {
        OpSnapshot {
            requests: self.requests.get(),
            errors: ErrorCode::ALL
                .iter()
                .zip(&self.errors)
                .map(|(code, n)| (code.as_str(), n.get()))
                .filter(|(_, n)| *n > 0)
                .collect(),
            duration: self.duration.snapshot(),
        }
    }
}

/// One operation at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct OpSnapshot {
    pub requests: u64,
    /// Errors by code (codes that never happened left out).
    pub errors: Vec<(&'static str, u64)>,
    pub duration: HistogramSnapshot,
}

/// The operations on keys of one keyspace (`get` calls are counted where the read is, see
/// `engine/read.rs`).
#[derive(Debug, Default)]
pub(crate) struct KeyOps([OpStats; Op::KEYS.len()]);

impl KeyOps {
    #[inline]
    pub fn of(&self, op: Op) -> &OpStats {
        let index = Op::KEYS.iter().position(|o| *o == op).unwrap_or(0);
        &self.0[index]
    }

    /// `(operation, snapshot)` for every operation on keys.
    pub fn snapshot(&self) -> Vec<(Op, OpSnapshot)> {
        Op::KEYS
            .iter()
            .zip(&self.0)
            .map(|(op, stats)| (*op, stats.snapshot()))
            .collect()
    }
}

/// How a data-source fetch of one key ended, for the fetch histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchOutcome {
    Found,
    NotFound,
    Error,
}

impl FetchOutcome {
    pub const ALL: [FetchOutcome; 3] = [
        FetchOutcome::Found,
        FetchOutcome::NotFound,
        FetchOutcome::Error,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FetchOutcome::Found => "found",
            FetchOutcome::NotFound => "not_found",
            FetchOutcome::Error => "error",
        }
    }
}

/// Durations of one keyspace's data-source fetches, by outcome (a key of a batch is one
/// observation of the batch's duration).
#[derive(Debug, Default)]
pub(crate) struct FetchDurations([Histogram; 3]);

impl FetchDurations {
    pub fn record(&self, outcome: FetchOutcome, elapsed: Duration) {
        self.0[outcome as usize].record(elapsed);
    }

    pub fn snapshot(&self) -> Vec<(FetchOutcome, HistogramSnapshot)> {
        FetchOutcome::ALL
            .iter()
            .zip(&self.0)
            .map(|(outcome, h)| (*outcome, h.snapshot()))
            .collect()
    }
}

thread_local! {
    static HIT_TICK: Cell<u32> = const { Cell::new(0) };
}

/// Decides which hits are timed: 1 in `every` per thread, or none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HitSampler {
    /// 0: hits are not timed.
    every: u32,
}

impl HitSampler {
    /// Times 1 hit in `every`; 0 times none.
    pub fn new(every: u32) -> Self {
        HitSampler { every }
    }

    /// When this read is one to time: its start. A countdown per thread, so that a read
    /// that is not timed pays a thread-local decrement and no division.
    #[inline]
    pub fn start(self) -> Option<Instant> {
        if self.every == 0 {
            return None;
        }
        let due = HIT_TICK.with(|t| match t.get() {
            0 => {
                t.set(self.every - 1);
                true
            }
            n => {
                t.set(n - 1);
                false
            }
        });
        due.then(Instant::now)
    }

    /// The weight of one timed hit.
    pub fn weight(self) -> u64 {
        u64::from(self.every)
    }
}

/// Operations not tied to one live keyspace: keyspace operations (the keyspace may not exist
/// before or after) and key operations on a keyspace that does not exist (labelled with no
/// keyspace, so that a client cannot grow the label set with made-up names).
#[derive(Debug, Default)]
pub(crate) struct NodeOps(RwLock<BTreeMap<(Op, String), Arc<OpStats>>>);

impl NodeOps {
    /// The instruments of `op` on `keyspace` ("" for none).
    pub fn of(&self, op: Op, keyspace: &str) -> Arc<OpStats> {
        let key = (op, keyspace.to_owned());
        if let Some(stats) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Arc::clone(stats);
        }
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(key).or_default())
    }

    /// `(operation, keyspace, snapshot)` of every operation seen.
    pub fn snapshot(&self) -> Vec<(Op, String, OpSnapshot)> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((op, keyspace), stats)| (*op, keyspace.clone(), stats.snapshot()))
            .collect()
    }
}

/// Calls to one peer of one kind.
#[derive(Debug, Default)]
pub(crate) struct PeerCallStats {
    pub requests: Counter,
    pub errors: Counter,
    pub duration: Histogram,
}

/// One peer's calls of one kind at one moment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PeerCallSnapshot {
    pub peer: String,
    pub operation: &'static str,
    pub requests: u64,
    pub errors: u64,
    pub duration: HistogramSnapshot,
}

/// Calls this node made to its peers, by peer address and call.
#[derive(Debug, Default)]
pub struct PeerCalls(RwLock<BTreeMap<(String, &'static str), Arc<PeerCallStats>>>);

impl PeerCalls {
    pub(crate) fn of(&self, peer: &str, operation: &'static str) -> Arc<PeerCallStats> {
        let found = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(peer.to_owned(), operation))
            .cloned();
        match found {
            Some(stats) => stats,
            None => Arc::clone(
                self.0
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry((peer.to_owned(), operation))
                    .or_default(),
            ),
        }
    }

    /// Counts one call that started at `started` and failed or not.
    pub(crate) fn record(&self, peer: &str, operation: &'static str, started: Instant, ok: bool) {
        let stats = self.of(peer, operation);
        stats.requests.inc();
        stats.duration.record(started.elapsed());
        if !ok {
            stats.errors.inc();
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<PeerCallSnapshot> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((peer, operation), stats)| PeerCallSnapshot {
                peer: peer.clone(),
                operation,
                requests: stats.requests.get(),
                errors: stats.errors.get(),
                duration: stats.duration.snapshot(),
            })
            .collect()
    }
}

/// The engine's instruments that are not per keyspace.
#[derive(Debug)]
pub(crate) struct EngineTelemetry {
    pub ops: NodeOps,
    /// How long catalog changes took to commit (through raft when the catalog is replicated).
    pub catalog_commit: Histogram,
    pub hits: HitSampler,
    /// The engine's OpenTelemetry spans (none without a tracer).
    pub spans: Spans,
}

impl EngineTelemetry {
    pub fn new(hit_timing_every: u32, spans: Spans) -> Self {
        EngineTelemetry {
            ops: NodeOps::default(),
            catalog_commit: Histogram::default(),
            hits: HitSampler::new(hit_timing_every),
            spans,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A striped counter loses no count, with more threads than stripes adding at once.
    #[test]
    fn striped_counter_sums_every_thread() {
        let counter = Arc::new(StripedCounter::default());
        let threads: Vec<_> = (0..STRIPES * 2 + 1)
            .map(|_| {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || (0..1000).for_each(|_| counter.inc()))
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counter.get(), (STRIPES as u64 * 2 + 1) * 1000);
    }

    /// Error counters are indexed by `code as usize`: that must be the code's place in ALL.
    #[test]
    fn error_codes_index_their_counters() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "{code:?}");
        }
        let stats = OpStats::default();
        stats.finish(Instant::now(), &Err::<(), _>(Error::EmptyKey));
        stats.finish(Instant::now(), &Ok::<_, Error>(()));
        let s = stats.snapshot();
        assert_eq!(s.requests, 2);
        assert_eq!(s.errors, vec![("EMPTY_KEY", 1)]);
        assert_eq!(s.duration.count, 2);
    }

    #[test]
    fn fetch_outcomes_index_their_histograms() {
        for (i, outcome) in FetchOutcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, i);
        }
    }

    /// 1 in `every` starts is timed, per thread.
    #[test]
    fn the_sampler_times_one_in_every() {
        let sampler = HitSampler::new(4);
        let timed = (0..400).filter(|_| sampler.start().is_some()).count();
        assert_eq!(timed, 100);
        assert!((0..10).all(|_| HitSampler::new(0).start().is_none()));
        assert!((0..10).all(|_| HitSampler::new(1).start().is_some()));
    }

    #[test]
    fn ops_are_kept_by_operation_and_keyspace() {
        let ops = NodeOps::default();
        ops.of(Op::CreateKeyspace, "a").requests.inc();
        ops.of(Op::CreateKeyspace, "a").requests.inc();
        ops.of(Op::DeleteKeyspaces, "").requests.inc();
        let s = ops.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].0, s[0].1.as_str(), s[0].2.requests),
            (Op::CreateKeyspace, "a", 2)
        );
        let key_ops = KeyOps::default();
        key_ops.of(Op::DeleteMany).requests.inc();
        let snap = key_ops.snapshot();
        assert_eq!(
            snap[5],
            (
                Op::DeleteMany,
                OpSnapshot {
                    requests: 1,
                    ..snap[5].1.clone()
                }
            )
        );
        assert_eq!(snap[0].1.requests, 0);
    }
}
