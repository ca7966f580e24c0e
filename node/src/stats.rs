//! Per-keyspace counters and the serialisable snapshot the admin API shows.
//!
//! The counters are the seed's (groupcache's) plus a few that operators asked the seed for:
//! - `gets`: every valid key this node's clients asked for (a `get_many` of 10 keys counts
//!   10), = hits + loads. A read is counted once, on the node that answered the client: a
//!   peer's read of a key this node owns is not a get here (see `engine/read.rs`);
//! - `cache_hits`: answered from the main or hot cache (remembered not-found included);
//! - `loads`: gets that missed both caches (`gets - cache_hits`);
//! - `loads_deduped`: loads that actually ran after single-flight (the rest joined one);
//! - `local_loads` / `local_load_errs`: fetches from this node's data source that answered /
//!   failed;
//! - `peer_loads` / `peer_errors`: loads answered by / failed at the owning peer;
//! - `remove_keys_requests` / `removed_keys`: delete requests / keys actually removed here;
//! - `not_found`, `rate_limited`, `circuit_open`, `timeouts`: outcomes of loads;
//! - `peer_requests`: keys other nodes read from this node (it owns them).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::protection::BreakerState;

/// Live counters of one keyspace. Survive keyspace updates; dropped with the keyspace.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub cache_hits: Counter,
    pub peer_loads: Counter,
    pub peer_errors: Counter,
    pub loads: Counter,
    pub loads_deduped: Counter,
    pub local_loads: Counter,
    pub local_load_errs: Counter,
    pub remove_keys_requests: Counter,
    pub removed_keys: Counter,
    pub not_found: Counter,
    pub rate_limited: Counter,
    pub circuit_open: Counter,
    pub timeouts: Counter,
    pub warmups: Counter,
    pub warmed_keys: Counter,
    pub peer_requests: Counter,
}

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

impl Counters {
    /// A copy of every counter.
    pub fn snapshot(&self) -> Stats {
        // Every get is a hit or a load: counting both would cost the hit path an atomic.
        let cache_hits = self.cache_hits.get();
        let loads = self.loads.get();
        Stats {
            gets: cache_hits + loads,
            cache_hits,
            peer_loads: self.peer_loads.get(),
            peer_errors: self.peer_errors.get(),
            loads,
            loads_deduped: self.loads_deduped.get(),
            local_loads: self.local_loads.get(),
            local_load_errs: self.local_load_errs.get(),
            remove_keys_requests: self.remove_keys_requests.get(),
            removed_keys: self.removed_keys.get(),
            not_found: self.not_found.get(),
            rate_limited: self.rate_limited.get(),
            circuit_open: self.circuit_open.get(),
            timeouts: self.timeouts.get(),
            warmups: self.warmups.get(),
            warmed_keys: self.warmed_keys.get(),
            peer_requests: self.peer_requests.get(),
        }
    }
}

/// Counters of one keyspace at one moment (field names as in the seed's admin JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Keys asked for.
    pub gets: u64,
    /// Keys answered from the main or hot cache.
    pub cache_hits: u64,
    /// Keys loaded through the owning peer.
    pub peer_loads: u64,
    /// Loads through a peer that failed (and fell back to a local load).
    pub peer_errors: u64,
    /// Keys that missed both caches.
    pub loads: u64,
    /// Loads that ran after single-flight de-duplication.
    pub loads_deduped: u64,
    /// Fetches from this node's data source that answered (found or not found).
    pub local_loads: u64,
    /// Fetches from this node's data source that failed.
    pub local_load_errs: u64,
    /// Delete requests.
    pub remove_keys_requests: u64,
    /// Keys actually removed from this node's caches.
    pub removed_keys: u64,
    /// Loads answered "not found".
    #[serde(default)]
    pub not_found: u64,
    /// Loads refused by the rate limiter.
    #[serde(default)]
    pub rate_limited: u64,
    /// Loads refused by the open circuit breaker.
    #[serde(default)]
    pub circuit_open: u64,
    /// Loads that ran out of time.
    #[serde(default)]
    pub timeouts: u64,
    /// Warmup runs of this keyspace on this node.
    #[serde(default)]
    pub warmups: u64,
    /// Keys loaded by warmups (and refresh-ahead) on this node.
    #[serde(default)]
    pub warmed_keys: u64,
    /// Keys other nodes read from this node, which owns them (not counted in `gets`).
    #[serde(default)]
    pub peer_requests: u64,
}

/// A keyspace as the admin API shows it: definition, cache sizes and counters. Field names and
/// order follow the seed's `GET /_distcache/admin/keyspaces`; durations are humantime strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeySpaceSnapshot {
    /// Keyspace name.
    pub name: String,
    /// Effective max bytes on this node.
    pub max_bytes: u64,
    /// Effective default TTL (`null` when none).
    pub default_ttl: Option<String>,
    /// Effective read timeout.
    pub read_timeout: String,
    /// Effective write timeout.
    pub write_timeout: String,
    /// Warm keys.
    pub warm_keys: Vec<String>,
    /// Bytes in the main cache.
    pub main_cache_bytes: u64,
    /// Bytes in the hot cache.
    pub hot_cache_bytes: u64,
    /// Counters.
    pub stats: Stats,
    /// Entries in the main cache.
    #[serde(default)]
    pub main_cache_entries: u64,
    /// Entries in the hot cache.
    #[serde(default)]
    pub hot_cache_entries: u64,
    /// Effective negative TTL (`null` when none).
    #[serde(default)]
    pub negative_ttl: Option<String>,
    /// Eviction policy.
    #[serde(default)]
    pub eviction: crate::spec::Eviction,
    /// Kind of data source (`http`, `sqlite`, `postgres`, `registered`, `none`).
    #[serde(default)]
    pub source: String,
    /// Circuit breaker state (`null` without a breaker).
    #[serde(default)]
    pub circuit_breaker: Option<BreakerState>,
    /// Whether a rate limiter guards the source.
    #[serde(default)]
    pub rate_limited: bool,
    /// The newest warmup run of this keyspace on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_warmup: Option<crate::warmup::WarmupRun>,
    /// The hottest keys on this node (up to 10), hottest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hot_keys: Vec<HotKey>,
}

/// A hot key and its (estimated, aged) read count on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotKey {
    /// The key.
    pub key: String,
    /// Reads counted.
    pub count: u32,
}
