//! Per-keyspace counters and the serialisable snapshot the admin API shows.
//!
//! The counters are the seed's (groupcache's) plus a few that operators asked the seed for:
//! - `gets`: every valid key this node's clients asked for (a `get_many` of 10 keys counts
//!   10), = hits + loads. A read is counted once, on the node that answered the client: a
//!   peer's read of a key this node owns is not a get here (see `engine/read.rs`);
//! - `cache_hits`: answered from the main or hot cache (remembered not-found included);
//!   `hot_cache_hits`: the part of them the hot cache answered;
//! - `loads`: gets that missed both caches (`gets - cache_hits`);
//! - `loads_deduped`: loads that actually ran after single-flight (the rest joined one);
//! - `local_loads` / `local_load_errs`: fetches from this node's data source that answered /
//!   failed;
//! - `peer_loads` / `peer_errors`: loads answered by / failed at the owning peer;
//! - `remove_keys_requests` / `removed_keys`: delete requests / keys actually removed here;
//! - `not_found`, `rate_limited`, `circuit_open`, `timeouts`: outcomes of loads;
//! - `overloaded`: keys whose load was refused by the load bound (`max_queued_loads`, or no
//!   call slot within `read_timeout`);
//! - `peer_requests`: keys other nodes read from this node (it owns them).
//!
//! [`KeySpaceTotal::sum`] adds up the snapshots of several nodes per keyspace: the cluster-wide
//! view the dashboard and `distcache stats --cluster` show; [`KeySpaceTotal::rates`] (in
//! `stats/rates.rs`) turns two such polls into per-second [`Rates`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::protection::BreakerState;
use crate::telemetry::{Counter, FetchDurations, KeyOps, Op, OpSnapshot, StripedCounter};

mod families;
mod rates;

pub(crate) use families::{Labels, Rows, Scrape};

pub use rates::Rates;

/// Live counters of one keyspace. Survive keyspace updates; dropped with the keyspace.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Added to by every hit: striped, so that hits on several threads share no line.
    pub cache_hits: StripedCounter,
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
    pub overloaded: Counter,
    pub warmups: Counter,
    pub warmed_keys: Counter,
    pub peer_requests: Counter,
    /// Hits answered from the hot cache (copies of keys other nodes own); in `cache_hits` too.
    pub hot_hits: StripedCounter,
    /// Keys read by `get_many` (in `cache_hits` or `loads` too): what tells single gets apart.
    pub batch_keys: Counter,
    /// Calls of each operation on keys, their errors and durations. A `get` that passed
    /// validation is counted as a hit or a load, not here (see [`Counters::ops`]).
    pub key_ops: KeyOps,
    /// Durations of data-source fetches.
    pub fetches: FetchDurations,
}

impl Counters {
    /// Every operation on keys: `get` calls are the hits and loads that were not part of a
    /// `get_many`, plus the calls refused before the read (the hit path pays no counter of its
    /// own for them).
    pub fn ops(&self) -> Vec<(Op, OpSnapshot)> {
        let mut ops = self.key_ops.snapshot();
        for (op, snapshot) in &mut ops {
            if *op == Op::Get {
                let reads = (self.cache_hits.get() + self.loads.get())
                    .saturating_sub(self.batch_keys.get());
                snapshot.requests = snapshot.requests.saturating_add(reads);
            }
        }
        ops
    }

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
            overloaded: self.overloaded.get(),
            warmups: self.warmups.get(),
            warmed_keys: self.warmed_keys.get(),
            peer_requests: self.peer_requests.get(),
            hot_cache_hits: self.hot_hits.get(),
        }
    }
}

/// Counters of one keyspace at one moment (field names as in the seed's admin JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Loads refused by the load bound (`OVERLOADED`).
    #[serde(default)]
    pub overloaded: u64,
    /// Warmup runs of this keyspace on this node.
    #[serde(default)]
    pub warmups: u64,
    /// Keys loaded by warmups (and refresh-ahead) on this node.
    #[serde(default)]
    pub warmed_keys: u64,
    /// Keys other nodes read from this node, which owns them (not counted in `gets`).
    #[serde(default)]
    pub peer_requests: u64,
    /// Hits answered from the hot cache (copies of keys other nodes own; in `cache_hits`).
    #[serde(default)]
    pub hot_cache_hits: u64,
}

impl Stats {
    /// Fetches from the data source, answered or failed: `local_loads + local_load_errs`.
    pub fn fetches(&self) -> u64 {
        self.local_loads.saturating_add(self.local_load_errs)
    }

    /// Failed or refused loads: `local_load_errs + peer_errors + rate_limited + circuit_open
    /// + overloaded`.
    pub fn errors(&self) -> u64 {
        [
            self.peer_errors,
            self.rate_limited,
            self.circuit_open,
            self.overloaded,
        ]
        .into_iter()
        .fold(self.local_load_errs, u64::saturating_add)
    }

    /// Adds `other`'s counters to these (saturating: a sum never wraps).
    pub fn add(&mut self, other: &Stats) {
        self.each_with(other, |sum, n| *sum = sum.saturating_add(n));
    }

    /// Calls `f` with each counter of these and the same counter of `other`.
    fn each_with(&mut self, other: &Stats, mut f: impl FnMut(&mut u64, u64)) {
        // Destructured so that a new counter cannot be forgotten here.
        let Stats {
            gets,
            cache_hits,
            peer_loads,
            peer_errors,
            loads,
            loads_deduped,
            local_loads,
            local_load_errs,
            remove_keys_requests,
            removed_keys,
            not_found,
            rate_limited,
            circuit_open,
            timeouts,
            overloaded,
            warmups,
            warmed_keys,
            peer_requests,
            hot_cache_hits,
        } = other;
        for (mine, theirs) in [
            (&mut self.gets, gets),
            (&mut self.cache_hits, cache_hits),
            (&mut self.peer_loads, peer_loads),
            (&mut self.peer_errors, peer_errors),
            (&mut self.loads, loads),
            (&mut self.loads_deduped, loads_deduped),
            (&mut self.local_loads, local_loads),
            (&mut self.local_load_errs, local_load_errs),
            (&mut self.remove_keys_requests, remove_keys_requests),
            (&mut self.removed_keys, removed_keys),
            (&mut self.not_found, not_found),
            (&mut self.rate_limited, rate_limited),
            (&mut self.circuit_open, circuit_open),
            (&mut self.timeouts, timeouts),
            (&mut self.overloaded, overloaded),
            (&mut self.warmups, warmups),
            (&mut self.warmed_keys, warmed_keys),
            (&mut self.peer_requests, peer_requests),
            (&mut self.hot_cache_hits, hot_cache_hits),
        ] {
            f(mine, *theirs);
        }
    }
}

/// A keyspace as the admin API shows it: definition, cache sizes and counters. Field names and
/// order follow the seed's `GET /_distcache/admin/keyspaces`; durations are humantime strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Effective most data-source calls at once on this node.
    #[serde(default)]
    pub max_concurrent_loads: u64,
    /// Effective most keys waiting for a data-source call on this node.
    #[serde(default)]
    pub max_queued_loads: u64,
    /// Data-source calls running now.
    #[serde(default)]
    pub loads_running: u64,
    /// Keys waiting for a data-source call now.
    #[serde(default)]
    pub loads_queued: u64,
    /// Keys being loaded now, from the data source or through their owner (each counted
    /// once, however many readers wait for it).
    #[serde(default)]
    pub keys_loading: u64,
}

/// A hot key and its (estimated, aged) read count on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HotKey {
    /// The key.
    pub key: String,
    /// Reads counted.
    pub count: u32,
}

/// One keyspace summed over the nodes that serve it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeySpaceTotal {
    /// Nodes that reported it.
    pub nodes: usize,
    /// Sum of the nodes' `max_bytes`.
    pub max_bytes: u64,
    /// Bytes in the main and hot caches.
    pub bytes: u64,
    /// Entries in the main and hot caches.
    pub entries: u64,
    /// The counters, summed.
    pub stats: Stats,
    /// The worst breaker state over the nodes (open, then half-open, then closed); `None`
    /// when no node has a breaker.
    pub circuit_breaker: Option<BreakerState>,
}

impl KeySpaceTotal {
    /// Sums the keyspaces of several nodes (one slice per node) by keyspace name.
    pub fn sum<'a>(
        nodes: impl IntoIterator<Item = &'a [KeySpaceSnapshot]>,
    ) -> BTreeMap<String, KeySpaceTotal> {
        let mut totals: BTreeMap<String, KeySpaceTotal> = BTreeMap::new();
        for keyspace in nodes.into_iter().flatten() {
            let total = totals.entry(keyspace.name.clone()).or_default();
            total.add(keyspace);
        }
        totals
    }

    fn add(&mut self, k: &KeySpaceSnapshot) {
        self.nodes += 1;
        self.max_bytes = self.max_bytes.saturating_add(k.max_bytes);
        self.bytes = self
            .bytes
            .saturating_add(k.main_cache_bytes.saturating_add(k.hot_cache_bytes));
        self.entries = self
            .entries
            .saturating_add(k.main_cache_entries.saturating_add(k.hot_cache_entries));
        self.stats.add(&k.stats);
        if k.circuit_breaker.map(severity) > self.circuit_breaker.map(severity) {
            self.circuit_breaker = k.circuit_breaker;
        }
    }
}

/// How bad a breaker state is, for the worst over several nodes.
fn severity(state: BreakerState) -> u8 {
    match state {
        BreakerState::Closed => 1,
        BreakerState::HalfOpen => 2,
        BreakerState::Open => 3,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A snapshot of keyspace `name` on one node: 100 bytes and 2 entries in its caches,
    /// `max_bytes` 1000, `gets` gets of which `hits` hits, one peer error.
    pub(crate) fn snapshot(
        name: &str,
        gets: u64,
        hits: u64,
        breaker: Option<BreakerState>,
    ) -> KeySpaceSnapshot {
        serde_json::from_value(serde_json::json!({
            "name": name, "max_bytes": 1000, "default_ttl": null, "read_timeout": "5s",
            "write_timeout": "5s", "warm_keys": [], "main_cache_bytes": 80,
            "hot_cache_bytes": 20,
            "stats": {"gets": gets, "cache_hits": hits, "peer_loads": 0, "peer_errors": 1,
                      "loads": gets - hits, "loads_deduped": 0, "local_loads": 0,
                      "local_load_errs": 0, "remove_keys_requests": 0, "removed_keys": 0},
            "main_cache_entries": 1, "hot_cache_entries": 1, "circuit_breaker": breaker
        }))
        .unwrap()
    }

    /// Keyspaces are summed by name over the nodes, and the worst breaker state wins.
    #[test]
    fn totals_sum_by_keyspace() {
        let a = [
            snapshot("users", 10, 4, Some(BreakerState::Closed)),
            snapshot("orders", 1, 1, None),
        ];
        let b = [snapshot("users", 5, 5, Some(BreakerState::HalfOpen))];
        let c = [snapshot("users", 0, 0, Some(BreakerState::Closed))];
        let totals = KeySpaceTotal::sum([&a[..], &b[..], &c[..]]);
        assert_eq!(totals.keys().collect::<Vec<_>>(), ["orders", "users"]);
        let users = &totals["users"];
        assert_eq!(
            (users.nodes, users.max_bytes, users.bytes, users.entries),
            (3, 3000, 300, 6)
        );
        assert_eq!(
            (
                users.stats.gets,
                users.stats.cache_hits,
                users.stats.loads,
                users.stats.peer_errors
            ),
            (15, 9, 6, 3)
        );
        assert_eq!(users.circuit_breaker, Some(BreakerState::HalfOpen));
        assert_eq!(totals["orders"].nodes, 1);
        assert_eq!(totals["orders"].circuit_breaker, None);
    }

    /// Counters add up without wrapping.
    #[test]
    fn stats_add_saturates() {
        let mut sum = Stats {
            gets: u64::MAX - 1,
            ..Stats::default()
        };
        sum.add(&Stats {
            gets: 5,
            warmed_keys: 2,
            ..Stats::default()
        });
        assert_eq!((sum.gets, sum.warmed_keys), (u64::MAX, 2));
    }
}
