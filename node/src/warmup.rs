//! Warmup: loading keys before anyone asks for them — what a warmup is (its configuration,
//! triggers and run records); running one is `engine/warming.rs`.
//!
//! The keys to prefetch are a keyspace's `warm_keys` plus its hot keys — the most read ones,
//! tracked per keyspace with bounded memory (`space/hot_keys.rs`) and shared between nodes, so
//! a node that becomes a key's owner knows what was hot elsewhere. Warmups run at start, after a
//! keyspace update, when a node joins or leaves, and on demand; each node warms only the keys
//! it owns and does not hold yet, so a cluster-wide warmup fetches every key once. Prefetches
//! run at most `concurrency` at a time per node, each waited for at most `min(timeout,
//! read_timeout)` (a fetch still running then keeps its slot until it ends), through the normal
//! read-through path (single-flight, rate limiter and circuit breaker included). Refresh-ahead
//! (`refresh_interval`) re-fetches each owner's hot keys, with jitter, on the owner only.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::Problems;
use crate::units::{MAX_INTERVAL, MAX_TIMEOUT};
use crate::wire::{KEPT_FAILURES, KeyFailure, WarmOutcome};

/// The hot keys one peer shared, by keyspace, and when.
#[derive(Debug, Clone)]
pub(crate) struct PeerHotKeys {
    pub received: std::time::Instant,
    pub by_keyspace: std::collections::HashMap<String, Vec<(String, u32)>>,
}

/// Warmup settings (the seed's, plus start and update warmups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarmupConfig {
    /// Hot keys per keyspace that a warmup prefetches (at most 10000). Default 100.
    pub max_hot_keys: usize,
    /// Reads a key needs to count as hot. Default 1.
    pub min_hits: u32,
    /// Prefetches at once, per node. Default 4.
    pub concurrency: usize,
    /// Deadline of one prefetch (the keyspace's `read_timeout` applies if shorter). Default 2 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Warm when a node joins. Default: on, unless only `warm_on_leave` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_on_join: Option<bool>,
    /// Warm when a node leaves. Default: on, unless only `warm_on_join` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_on_leave: Option<bool>,
    /// Warm when the node starts. Default on.
    pub warm_on_start: bool,
    /// Warm a keyspace after it is created or updated. Default on.
    pub warm_on_update: bool,
    /// How long start waits for its warmup before serving (the rest goes on behind). Default
    /// 10 s.
    #[serde(with = "humantime_serde")]
    pub start_timeout: Duration,
    /// Refresh-ahead: re-fetch each owner's hot keys this often (± 10% jitter). Default 0: off.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// How often hot-key counts halve, so old bursts fade. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub hot_key_halflife: Duration,
    /// How often nodes exchange their hot keys. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub share_interval: Duration,
}

impl Default for WarmupConfig {
    fn default() -> Self {
        WarmupConfig {
            max_hot_keys: 100,
            min_hits: 1,
            concurrency: 4,
            timeout: Duration::from_secs(2),
            warm_on_join: None,
            warm_on_leave: None,
            warm_on_start: true,
            warm_on_update: true,
            start_timeout: Duration::from_secs(10),
            refresh_interval: Duration::ZERO,
            hot_key_halflife: Duration::from_secs(60),
            share_interval: Duration::from_secs(10),
        }
    }
}

impl WarmupConfig {
    /// Whether joins and leaves trigger warmups (the seed's rule: neither set means both).
    pub fn on_join_and_leave(&self) -> (bool, bool) {
        match (self.warm_on_join, self.warm_on_leave) {
            (None, None) => (true, true),
            (join, leave) => (join.unwrap_or(false), leave.unwrap_or(false)),
        }
    }

    /// Every problem, fields named as in the TOML file.
    pub fn problems(&self) -> Problems {
        let mut problems = Problems::new();
        if self.concurrency == 0 {
            problems.push("concurrency", "must be at least 1");
        }
        for (field, value, max) in [
            ("timeout", self.timeout, MAX_TIMEOUT),
            ("start_timeout", self.start_timeout, MAX_TIMEOUT),
            ("hot_key_halflife", self.hot_key_halflife, MAX_INTERVAL),
            ("share_interval", self.share_interval, MAX_INTERVAL),
        ] {
            problems.duration_within(field, value, max);
        }
        // Zero switches refreshing off.
        if !self.refresh_interval.is_zero() {
            problems.duration_within("refresh_interval", self.refresh_interval, MAX_INTERVAL);
        }
        // Admission into a full candidate set scans it (4 × max_hot_keys) under a lock.
        if self.max_hot_keys > 10_000 {
            problems.push("max_hot_keys", "must be at most 10000");
        }
        problems
    }
}

/// What started a warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WarmupTrigger {
    /// The node started.
    Start,
    /// A node joined.
    Join,
    /// A node left.
    Leave,
    /// The keyspace was created or updated.
    Update,
    /// Someone asked (admin API, CLI, dashboard).
    Demand,
    /// Refresh-ahead of hot keys.
    Refresh,
}

/// One warmup run on this node, while it runs and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WarmupRun {
    /// Run id, unique on this node.
    pub id: u64,
    /// The keyspace.
    pub keyspace: String,
    /// What started it.
    pub trigger: WarmupTrigger,
    /// When it started (milliseconds since the Unix epoch).
    pub started_at_ms: u64,
    /// How long it took (so far).
    pub duration_ms: u64,
    /// Keys it set out to warm: the keys asked for or the keyspace's plan (warm keys and hot
    /// keys); keys another node owns count as skipped.
    pub planned: usize,
    /// Keys loaded into a cache.
    pub warmed: usize,
    /// Keys that failed to load (see `failures`).
    pub failed: usize,
    /// Keys skipped: already cached, owned by another node, or not found at the source.
    pub skipped: usize,
    /// Finished.
    pub done: bool,
    /// The first failures, with their errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<KeyFailure>,
}

/// Runs kept per node.
const KEPT_RUNS: usize = 64;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What asking for a demand run led to.
#[derive(Debug)]
pub(crate) enum DemandStart {
    /// A new run, with this id.
    Started(u64),
    /// The run of the keyspace already going.
    Running(WarmupRun),
    /// This many demand runs are going: no room for another.
    Busy(usize),
}

/// The runs of one node, newest last.
#[derive(Default)]
pub(crate) struct WarmupLog {
    runs: Mutex<VecDeque<WarmupRun>>,
    next: AtomicU64,
}

impl WarmupLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<WarmupRun>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts recording a run; returns its id.
    pub fn begin(&self, keyspace: &str, trigger: WarmupTrigger, planned: usize) -> u64 {
        let mut runs = self.lock();
        self.push(&mut runs, keyspace, trigger, planned)
    }

    /// Starts recording a demand run, unless `reuse` and a demand run of `keyspace` is going
    /// (that one is returned), or `max_running` demand runs are going already. Checked and
    /// recorded under one lock, so concurrent requests cannot slip past the limit.
    pub fn begin_demand(
        &self,
        keyspace: &str,
        planned: usize,
        reuse: bool,
        max_running: usize,
    ) -> DemandStart {
        let mut runs = self.lock();
        let running = || {
            runs.iter()
                .filter(|r| !r.done && r.trigger == WarmupTrigger::Demand)
        };
        if reuse && let Some(run) = running().find(|r| r.keyspace == keyspace) {
            return DemandStart::Running(run.clone());
        }
        let count = running().count();
        if count >= max_running {
            return DemandStart::Busy(count);
        }
        DemandStart::Started(self.push(&mut runs, keyspace, WarmupTrigger::Demand, planned))
    }

    fn push(
        &self,
        runs: &mut VecDeque<WarmupRun>,
        keyspace: &str,
        trigger: WarmupTrigger,
        planned: usize,
    ) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        runs.push_back(WarmupRun {
            id,
            keyspace: keyspace.to_owned(),
            trigger,
            started_at_ms: now_ms(),
            duration_ms: 0,
            planned,
            warmed: 0,
            failed: 0,
            skipped: 0,
            done: false,
            failures: Vec::new(),
        });
        // Finished runs make room, oldest first; a run still going is never dropped, so whoever
        // follows it can (running runs are few: one manager duty at a time, capped demand runs).
        while runs.len() > KEPT_RUNS {
            match runs.iter().position(|r| r.done) {
                Some(oldest_done) => {
                    runs.remove(oldest_done);
                }
                None => break,
            }
        }
        id
    }

    /// Adds what a batch of run `id` did.
    pub fn add(&self, id: u64, outcome: &WarmOutcome) {
        if let Some(run) = self.lock().iter_mut().find(|r| r.id == id) {
            // Outcomes come from peers too: counts saturate rather than overflow.
            run.warmed = run.warmed.saturating_add(outcome.warmed);
            run.failed = run.failed.saturating_add(outcome.failed);
            run.skipped = run.skipped.saturating_add(outcome.skipped);
            for f in &outcome.failures {
                if run.failures.len() < KEPT_FAILURES {
                    run.failures.push(f.clone());
                }
            }
            run.duration_ms = now_ms().saturating_sub(run.started_at_ms);
        }
    }

    /// Marks run `id` finished.
    pub fn finish(&self, id: u64) {
        if let Some(run) = self.lock().iter_mut().find(|r| r.id == id) {
            run.done = true;
            run.duration_ms = now_ms().saturating_sub(run.started_at_ms);
        }
    }

    /// Run `id`, if still kept.
    pub fn get(&self, id: u64) -> Option<WarmupRun> {
        self.lock().iter().find(|r| r.id == id).cloned()
    }

    /// Every kept run, oldest first.
    pub fn all(&self) -> Vec<WarmupRun> {
        self.lock().iter().cloned().collect()
    }

    /// The newest run of `keyspace`.
    pub fn last_of(&self, keyspace: &str) -> Option<WarmupRun> {
        self.lock()
            .iter()
            .rev()
            .find(|r| r.keyspace == keyspace)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Neither join nor leave set means both; one set means only what is set.
    #[test]
    fn join_and_leave_defaults() {
        let mut c = WarmupConfig::default();
        assert_eq!(c.on_join_and_leave(), (true, true));
        c.warm_on_join = Some(true);
        assert_eq!(c.on_join_and_leave(), (true, false));
        assert!(c.problems().is_empty());
        c.concurrency = 0;
        c.timeout = Duration::ZERO;
        let fields: Vec<String> = c.problems().iter().map(|p| p.field.clone()).collect();
        assert_eq!(fields, ["concurrency", "timeout"]);
    }

    /// Runs accumulate batches, keep a few failures, and are found by id and by keyspace.
    #[test]
    fn log_records_runs() {
        let log = WarmupLog::default();
        let id = log.begin("users", WarmupTrigger::Demand, 30);
        let failures = (0..20)
            .map(|i| KeyFailure {
                key: format!("k{i}"),
                error: "boom".into(),
            })
            .collect();
        log.add(
            id,
            &WarmOutcome {
                warmed: 5,
                failed: 20,
                skipped: 5,
                failures,
            },
        );
        log.finish(id);
        let run = log.get(id).expect("kept");
        assert_eq!(
            (run.warmed, run.failed, run.skipped, run.done),
            (5, 20, 5, true)
        );
        assert_eq!(run.failures.len(), KEPT_FAILURES);
        assert_eq!(log.last_of("users").map(|r| r.id), Some(id));
        assert!(log.last_of("other").is_none());
    }

    /// Issue 17: a peer's warm outcome counts whatever it says, however large: the run's sums
    /// saturate instead of overflowing (a panic in a debug build, nonsense in a release one).
    #[test]
    fn issue_17_outcomes_of_any_size_saturate() {
        use proptest::prelude::*;
        let counts = (any::<usize>(), any::<usize>(), any::<usize>());
        proptest!(
            ProptestConfig::with_cases(64),
            |(batches in proptest::collection::vec(counts, 1..5))| {
                let log = WarmupLog::default();
                let id = log.begin("users", WarmupTrigger::Demand, 1);
                let mut sums = (0usize, 0usize, 0usize);
                for &(warmed, failed, skipped) in &batches {
                    log.add(id, &WarmOutcome { warmed, failed, skipped, failures: Vec::new() });
                    sums = (
                        sums.0.saturating_add(warmed),
                        sums.1.saturating_add(failed),
                        sums.2.saturating_add(skipped),
                    );
                }
                let run = log.get(id).expect("kept");
                prop_assert_eq!((run.warmed, run.failed, run.skipped), sums);
            }
        );
    }

    /// A full log drops its oldest finished runs, never one still going.
    #[test]
    fn running_runs_are_kept() {
        let log = WarmupLog::default();
        let DemandStart::Started(running) = log.begin_demand("users", 10, true, 2) else {
            panic!("the log is empty")
        };
        for _ in 0..KEPT_RUNS * 2 {
            let id = log.begin("users", WarmupTrigger::Refresh, 1);
            log.finish(id);
        }
        assert_eq!(log.all().len(), KEPT_RUNS);
        assert!(log.get(running).is_some_and(|r| !r.done));
        // The same keyspace's plan again: the run going; another keyspace: a new run; then full.
        assert!(
            matches!(log.begin_demand("users", 10, true, 2), DemandStart::Running(r) if r.id == running)
        );
        assert!(matches!(
            log.begin_demand("orders", 3, true, 2),
            DemandStart::Started(_)
        ));
        assert!(matches!(
            log.begin_demand("users", 1, false, 2),
            DemandStart::Busy(2)
        ));
        log.finish(running);
        assert!(matches!(
            log.begin_demand("users", 1, false, 2),
            DemandStart::Started(_)
        ));
    }
}
