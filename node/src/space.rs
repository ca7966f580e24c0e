//! The runtime of one keyspace on one node: its caches, data source, protection, flights and
//! counters, and the read-through load of the keys this node owns.
//!
//! A keyspace update replaces the whole `Space` (fresh caches, limiter and breaker; counters
//! carried over), so nothing here is ever reconfigured in place.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::cluster::Cluster;
use crate::config::{EngineConfig, Settings};
use crate::error::{Error, Result};
use crate::fence::Fence;
use crate::flight::Flights;
use crate::keyspace::KeySpace;
use crate::protection::{Guard, LoadGate};
use crate::source::DataSource;
use crate::spec::KeySpaceSpec;
use crate::stats::{Counters, KeySpaceSnapshot};
use crate::store::{Cached, Store};
use crate::units::format_duration;
use hot_keys::HotKeys;

mod fallback;
pub(crate) mod hot_keys;
mod load;
mod order;
mod takeover;
mod tasks;

pub(crate) use tasks::LoadTasks;

pub(crate) use takeover::Takeover;

/// When an entry expires.
pub(crate) enum Deadline {
    /// At this instant, or never.
    At(Option<Instant>),
    /// Its time to live is zero or already over: it must not be stored.
    AlreadyPast,
}

/// One keyspace, live on this node.
pub(crate) struct Space {
    pub spec: KeySpaceSpec,
    pub settings: Settings,
    /// Keys this node owns.
    pub main: Store,
    /// Copies of popular keys owned by other nodes.
    pub hot: Store,
    pub(crate) source: Arc<dyn DataSource>,
    expiry: Option<Arc<dyn KeySpace>>,
    pub(crate) guard: Guard,
    /// The bound on data-source calls running and keys waiting for one.
    pub(crate) loads: LoadGate,
    /// Loads of keys this node owns (from the data source).
    pub flights: Flights,
    /// Loads through other nodes (into the hot cache). Kept apart from `flights`: a peer's
    /// request for a key must never wait on this node's own request for it to that peer,
    /// as it would while a joining node forwards the key back here.
    pub peer_flights: Flights,
    pub stats: Arc<Counters>,
    /// Reads per key, for warmup (kept across updates like the counters).
    pub hot_keys: Arc<HotKeys>,
    /// Where loads run, so that `stop` can wait for them.
    pub(crate) tasks: LoadTasks,
    /// While this node takes its keys over: whether the caches were flushed meanwhile.
    takeover: std::sync::Mutex<Option<Takeover>>,
    /// The engine's spans, for the fetches and peer calls of loads.
    pub(crate) spans: crate::telemetry::Spans,
    /// The node's cache fence (`fence.rs`); `None` without a cluster. While it is closed,
    /// lookups find nothing and loads keep nothing.
    pub(crate) fence: Option<Arc<Fence>>,
    /// The cluster this node serves the keyspace in, for the loads that need the membership
    /// (a key's replica, whether its owner is suspect); `None` without one.
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// Orders an owner's writes of a key, and its read repairs, in a keyspace with replicas
    /// (`space/order.rs`).
    pub(crate) write_order: order::WriteOrder,
}

impl Space {
    /// Builds the runtime of `spec` with the engine's defaults.
    pub fn new(
        spec: KeySpaceSpec,
        engine: &EngineConfig,
        source: Arc<dyn DataSource>,
        expiry: Option<Arc<dyn KeySpace>>,
        stats: Arc<Counters>,
        hot_keys: Arc<HotKeys>,
        tasks: LoadTasks,
    ) -> Space {
        let settings = Settings::resolve(&spec, engine);
        let hot_bytes = ((settings.max_bytes as f64) * engine.hot_cache_ratio) as u64;
        let main_bytes = settings.max_bytes - hot_bytes.min(settings.max_bytes);
        let guard = Guard::new(
            &spec.name,
            settings.rate_limit.as_ref(),
            settings.circuit_breaker.as_ref(),
        );
        let loads = LoadGate::new(
            &spec.name,
            settings.max_concurrent_loads,
            settings.max_queued_loads,
        );
        Space {
            loads,
            main: Store::new(main_bytes, settings.eviction),
            hot: Store::new(hot_bytes, settings.eviction),
            source,
            expiry,
            guard,
            flights: Flights::default(),
            peer_flights: Flights::default(),
            stats,
            hot_keys,
            tasks,
            settings,
            spec,
            takeover: std::sync::Mutex::new(None),
            spans: crate::telemetry::Spans::default(),
            fence: None,
            cluster: None,
            write_order: order::WriteOrder::default(),
        }
    }

    /// The keyspace's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The cached answer for `key` from the main cache, else the hot cache.
    #[inline]
    pub async fn cached(&self, key: &str) -> Option<Cached> {
        self.lookup(key).await.map(|(hit, _)| hit)
    }

    /// The cached answer for `key` and the cache that had it: the main cache, else the hot
    /// cache (`true`).
    #[inline]
    pub async fn lookup(&self, key: &str) -> Option<(Cached, bool)> {
        if !self.caching() {
            return None;
        }
        match self.main.get(key).await {
            Some(hit) => Some((hit, false)),
            None => self.hot.get(key).await.map(|hit| (hit, true)),
        }
    }

    /// The entry of `key` in the main cache (what this node holds as the key's owner or
    /// replica), unless the fence is closed.
    pub async fn held(&self, key: &str) -> Option<Cached> {
        if !self.caching() {
            return None;
        }
        self.main.get(key).await
    }

    /// Whether the caches may answer and keep what loads bring (the fence is open).
    #[inline]
    pub(crate) fn caching(&self) -> bool {
        self.fence.as_ref().is_none_or(|fence| fence.is_open())
    }

    /// When an entry for `key` should expire: its own TTL, else the keyspace's
    /// `expires_at(key)`, else `default_ttl`, else never.
    pub(crate) fn deadline(&self, key: &str, own_ttl: Option<Duration>, now: Instant) -> Deadline {
        let ttl = match own_ttl {
            Some(ttl) => Some(ttl),
            None => match self.expiry.as_ref().and_then(|k| k.expires_at(key)) {
                Some(at) => Some(at.duration_since(SystemTime::now()).unwrap_or_default()),
                None => self.settings.default_ttl,
            },
        };
        match ttl {
            Some(ttl) if ttl.is_zero() => Deadline::AlreadyPast,
            Some(ttl) => Deadline::At(now.checked_add(ttl)),
            None => Deadline::At(None),
        }
    }

    /// The entry to store for a put of `value` with optional `ttl`, or `None` when it would
    /// expire at once.
    pub fn entry_for_put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Option<Cached> {
        match self.deadline(key, ttl, Instant::now()) {
            Deadline::At(expires_at) => Some(Cached {
                value: Some(value),
                expires_at,
            }),
            Deadline::AlreadyPast => None,
        }
    }

    /// Stores a put in the main cache, ordered after any load of the key in flight.
    pub async fn store_put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let entry = self.entry_for_put(key, value, ttl);
        if let Some(entry) = &entry
            && !self.main.fits(key, entry)
        {
            return Err(Error::ValueTooLarge {
                len: entry.value_len(),
                max: usize::try_from(self.main.capacity())
                    .unwrap_or(usize::MAX)
                    .saturating_sub(key.len() + crate::store::ENTRY_OVERHEAD),
            });
        }
        self.invalidate_flights(key);
        match entry {
            Some(entry) => {
                self.main.insert(key, entry).await;
            }
            // An entry that expires at once replaces the old value with nothing.
            None => {
                self.main.remove(key).await;
            }
        }
        self.hot.remove(key).await;
        // A load that claimed the key between the first invalidation and the insert fetched
        // before the put landed: stop it from storing too.
        self.invalidate_flights(key);
        Ok(())
    }

    /// Stops every load of `key` in flight from storing what it loaded.
    fn invalidate_flights(&self, key: &str) {
        self.flights.invalidate(key);
        self.peer_flights.invalidate(key);
    }

    /// Empties both caches and keeps loads in flight from refilling them.
    pub fn flush(&self) {
        self.note_flush();
        self.flights.invalidate_all();
        self.peer_flights.invalidate_all();
        self.main.clear();
        self.hot.clear();
    }

    /// Removes `key` from both caches (and stops loads in flight from storing it again);
    /// returns whether anything was removed.
    pub async fn remove(&self, key: &str) -> bool {
        self.invalidate_flights(key);
        let main = self.main.remove(key).await;
        let hot = self.hot.remove(key).await;
        self.invalidate_flights(key);
        main || hot
    }

    /// Removes `key` from the hot cache only (and stops loads in flight from storing it):
    /// what the main cache holds of it stays. Returns whether anything was removed.
    pub async fn remove_copy(&self, key: &str) -> bool {
        self.invalidate_flights(key);
        let hot = self.hot.remove(key).await;
        self.invalidate_flights(key);
        hot
    }

    /// Runs both caches' pending maintenance, so that their sizes are exact.
    pub async fn settle_caches(&self) {
        self.main.settle().await;
        self.hot.settle().await;
    }

    /// Definition, sizes and counters, with cache maintenance run first so sizes are exact.
    pub async fn snapshot(&self) -> KeySpaceSnapshot {
        self.settle_caches().await;
        self.snapshot_now()
    }

    /// Definition, sizes and counters as they stand, without waiting for the caches to
    /// settle (sizes may lag the last writes by moka's pending work).
    pub fn snapshot_now(&self) -> KeySpaceSnapshot {
        let s = &self.settings;
        KeySpaceSnapshot {
            name: self.spec.name.clone(),
            max_bytes: s.max_bytes,
            default_ttl: s.default_ttl.map(format_duration),
            read_timeout: format_duration(s.read_timeout),
            write_timeout: format_duration(s.write_timeout),
            warm_keys: s.warm_keys.clone(),
            main_cache_bytes: self.main.bytes(),
            hot_cache_bytes: self.hot.bytes(),
            stats: self.stats.snapshot(),
            main_cache_entries: self.main.entries(),
            hot_cache_entries: self.hot.entries(),
            negative_ttl: s.negative_ttl.map(format_duration),
            eviction: s.eviction,
            source: self.spec.source.kind().to_owned(),
            circuit_breaker: self.guard.breaker_state(),
            rate_limited: s.rate_limit.is_some(),
            last_warmup: None,
            hot_keys: Vec::new(),
            max_concurrent_loads: s.max_concurrent_loads as u64,
            max_queued_loads: s.max_queued_loads as u64,
            loads_running: self.loads.running() as u64,
            loads_queued: self.loads.queued() as u64,
            keys_loading: (self.flights.len() + self.peer_flights.len()) as u64,
        }
    }
}
