//! The runtime of one keyspace on one node: its caches, data source, protection, flights and
//! counters, and the read-through load of the keys this node owns.
//!
//! A keyspace update replaces the whole `Space` (fresh caches, limiter and breaker; counters
//! carried over), so nothing here is ever reconfigured in place.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, warn};

use crate::config::{EngineConfig, Settings};
use crate::error::{Error, Result};
use crate::flight::{Claim, Flights, Outcome, Pending, Ticket};
use crate::keyspace::KeySpace;
use crate::protection::Guard;
use crate::source::{DataSource, FetchResult, Fetched};
use crate::spec::KeySpaceSpec;
use crate::stats::{Counters, KeySpaceSnapshot};
use crate::store::{Cached, Store};
use crate::units::format_duration;

/// When an entry expires.
enum Deadline {
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
    source: Arc<dyn DataSource>,
    expiry: Option<Arc<dyn KeySpace>>,
    guard: Guard,
    pub flights: Flights,
    pub stats: Arc<Counters>,
    /// Where loads run, so that `stop` can wait for them.
    tasks: TaskTracker,
}

impl Space {
    /// Builds the runtime of `spec` with the engine's defaults.
    pub fn new(
        spec: KeySpaceSpec,
        engine: &EngineConfig,
        source: Arc<dyn DataSource>,
        expiry: Option<Arc<dyn KeySpace>>,
        stats: Arc<Counters>,
        tasks: TaskTracker,
    ) -> Space {
        let settings = Settings::resolve(&spec, engine);
        let hot_bytes = ((settings.max_bytes as f64) * engine.hot_cache_ratio) as u64;
        let main_bytes = settings.max_bytes - hot_bytes.min(settings.max_bytes);
        let guard = Guard::new(
            &spec.name,
            settings.rate_limit.as_ref(),
            settings.circuit_breaker.as_ref(),
        );
        Space {
            main: Store::new(main_bytes, settings.eviction),
            hot: Store::new(hot_bytes, settings.eviction),
            source,
            expiry,
            guard,
            flights: Flights::default(),
            stats,
            tasks,
            settings,
            spec,
        }
    }

    /// The keyspace's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The cached answer for `key` from the main cache, else the hot cache.
    #[inline]
    pub async fn cached(&self, key: &str) -> Option<Cached> {
        match self.main.get(key).await {
            Some(hit) => Some(hit),
            None => self.hot.get(key).await,
        }
    }

    /// When an entry for `key` should expire: its own TTL, else the keyspace's
    /// `expires_at(key)`, else `default_ttl`, else never.
    fn deadline(&self, key: &str, own_ttl: Option<Duration>, now: Instant) -> Deadline {
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
                len: entry.value.as_ref().map_or(0, Bytes::len),
                max: usize::try_from(self.main.capacity())
                    .unwrap_or(usize::MAX)
                    .saturating_sub(key.len()),
            });
        }
        self.flights.invalidate(key);
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
        self.flights.invalidate(key);
        Ok(())
    }

    /// Removes `key` from both caches (and stops loads in flight from storing it again);
    /// returns whether anything was removed.
    pub async fn remove(&self, key: &str) -> bool {
        self.flights.invalidate(key);
        let main = self.main.remove(key).await;
        let hot = self.hot.remove(key).await;
        self.flights.invalidate(key);
        main || hot
    }

    /// Loads `keys` (owned by this node, not cached) through single-flight: joins loads in
    /// flight, starts one task for the rest. Returns one pending outcome per key, in order.
    pub fn load_owned(self: &Arc<Self>, keys: &[&str]) -> Vec<Pending> {
        let mut pending = Vec::with_capacity(keys.len());
        let mut tickets = Vec::new();
        for key in keys {
            match self.flights.claim(key) {
                Claim::Joined(p) => pending.push(p),
                Claim::Leader(ticket, p) => {
                    tickets.push(ticket);
                    pending.push(p);
                }
            }
        }
        if !tickets.is_empty() {
            let space = Arc::clone(self);
            let span = tracing::debug_span!("distcache.load", distcache.keyspace = %self.name(), keys = tickets.len());
            self.tasks.spawn(space.run(tickets).instrument(span));
        }
        pending
    }

    /// The leader's work: re-check the cache (a put may have landed since the miss), fetch
    /// the rest in one call, store what may be stored, answer every ticket.
    async fn run(self: Arc<Self>, tickets: Vec<Ticket>) {
        let mut to_fetch = Vec::with_capacity(tickets.len());
        for ticket in tickets {
            match self.main.get(ticket.key()).await {
                Some(hit) => ticket.resolve(Ok(hit.value)),
                None => to_fetch.push(ticket),
            }
        }
        self.stats.loads_deduped.add(to_fetch.len() as u64);
        if to_fetch.len() > 1 {
            self.fetch_batch(to_fetch).await;
        } else if let Some(ticket) = to_fetch.pop() {
            let result = self
                .guard
                .call(
                    self.settings.read_timeout,
                    self.source.fetch(ticket.key()),
                    |_| false,
                )
                .await;
            self.settle(ticket, result).await;
        }
    }

    /// Fetches several keys in one `fetch_many` call under the guard.
    async fn fetch_batch(&self, tickets: Vec<Ticket>) {
        let keys: Vec<String> = tickets.iter().map(|t| t.key().to_owned()).collect();
        let batch = self
            .guard
            .call(
                self.settings.read_timeout,
                async { Ok(self.source.fetch_many(&keys).await) },
                |results: &Vec<FetchResult>| results.iter().all(Result::is_err),
            )
            .await;
        match batch {
            Ok(results) if results.len() == tickets.len() => {
                for (ticket, result) in tickets.into_iter().zip(results) {
                    self.settle(ticket, result.map_err(Error::DataSource)).await;
                }
            }
            Ok(results) => {
                let err = Error::DataSource(crate::error::SourceError::new(format!(
                    "fetch_many answered {} results for {} keys",
                    results.len(),
                    tickets.len()
                )));
                for ticket in tickets {
                    self.settle(ticket, Err(err.clone())).await;
                }
            }
            Err(err) => {
                for ticket in tickets {
                    self.settle(ticket, Err(err.clone())).await;
                }
            }
        }
    }

    /// Counts, stores (unless cancelled) and answers one fetched key.
    async fn settle(&self, ticket: Ticket, result: Result<Option<Fetched>>) {
        let key = ticket.key();
        let outcome: Outcome = match result {
            Ok(Some(fetched)) => {
                self.stats.local_loads.inc();
                if let Deadline::At(expires_at) = self.deadline(key, fetched.ttl, Instant::now()) {
                    let entry = Cached {
                        value: Some(fetched.value.clone()),
                        expires_at,
                    };
                    if !self
                        .main
                        .insert_unless(key, entry, ticket.cancelled())
                        .await
                        && !ticket.cancelled().load(Ordering::Acquire)
                    {
                        debug!(key, bytes = fetched.value.len(), "value too large to cache");
                    }
                }
                Ok(Some(fetched.value))
            }
            Ok(None) => {
                self.stats.local_loads.inc();
                self.stats.not_found.inc();
                if let Some(ttl) = self.settings.negative_ttl {
                    let entry = Cached {
                        value: None,
                        expires_at: Instant::now().checked_add(ttl),
                    };
                    self.main
                        .insert_unless(key, entry, ticket.cancelled())
                        .await;
                }
                Ok(None)
            }
            Err(err) => {
                match &err {
                    Error::DataSourceRateLimited(_) => self.stats.rate_limited.inc(),
                    Error::DataSourceCircuitOpen(_) => self.stats.circuit_open.inc(),
                    Error::Timeout { .. } => {
                        self.stats.timeouts.inc();
                        self.stats.local_load_errs.inc();
                    }
                    _ => self.stats.local_load_errs.inc(),
                }
                warn!(keyspace = %self.name(), key, error = %err, "load failed");
                Err(err)
            }
        };
        ticket.resolve(outcome);
    }

    /// Definition, sizes and counters, with cache maintenance run first so sizes are exact.
    pub async fn snapshot(&self) -> KeySpaceSnapshot {
        self.main.settle().await;
        self.hot.settle().await;
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
        }
    }
}
