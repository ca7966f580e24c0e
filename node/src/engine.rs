//! The `Engine`: the read-through cache API of one node.
//!
//! Data operations (`get`, `put`, `delete` and their `_many` forms) validate their input, find
//! the keyspace, and answer from the caches or load through single-flight. Keyspace operations
//! go through the [`Catalog`](crate::Catalog) and return once this node applied the change (see
//! `engine/keyspaces.rs`). Which node loads a key is decided in one place, `Inner::route`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::{Mutex, watch};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::catalog::Catalog;
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::flight::Pending;
use crate::keyspace::KeySpace;
use crate::registry::SourceRegistry;
use crate::space::Space;
use crate::spec::KeySpaceSpec;

mod builder;
mod keyspaces;

pub use builder::EngineBuilder;

/// A distributed read-through cache engine. Cheap to clone: clones share one engine.
///
/// ```
/// # async fn demo() -> distcache::Result<()> {
/// use distcache::{Engine, EngineConfig, KeySpaceSpec, SourceSpec, source_fn, Fetched};
///
/// let engine = Engine::builder(EngineConfig::default())
///     .register_source("upper", source_fn(|key: String| async move {
///         Ok(Some(Fetched::new(key.to_uppercase())))
///     }))
///     .keyspace_spec(KeySpaceSpec::new("words", SourceSpec::Registered { name: "upper".into() }))
///     .build()?;
/// engine.start().await?;
/// assert_eq!(engine.get("words", "hi").await?.as_deref(), Some(&b"HI"[..]));
/// engine.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// One key/value to put, with an optional time to live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Bytes,
    /// How long the entry lives; `None` uses the keyspace's expiry rules.
    pub ttl: Option<Duration>,
}

impl Entry {
    /// An entry without a TTL of its own.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Entry {
            key: key.into(),
            value: value.into(),
            ttl: None,
        }
    }

    /// An entry that lives for `ttl`.
    pub fn with_ttl(key: impl Into<String>, value: impl Into<Bytes>, ttl: Duration) -> Self {
        Entry {
            ttl: Some(ttl),
            ..Entry::new(key, value)
        }
    }
}

/// The result of one key of a `_many` operation.
#[derive(Debug, Clone)]
pub struct KeyResult<T> {
    /// The key, as given.
    pub key: String,
    /// What happened to it.
    pub result: Result<T>,
}

const CREATED: u8 = 0;
const RUNNING: u8 = 1;
const STOPPED: u8 = 2;

pub(crate) struct Inner {
    config: EngineConfig,
    lifecycle: AtomicU8,
    spaces: ArcSwap<HashMap<String, Arc<Space>>>,
    catalog: Arc<dyn Catalog>,
    registry: SourceRegistry,
    expiries: HashMap<String, Arc<dyn KeySpace>>,
    seeds: Vec<KeySpaceSpec>,
    /// Serialises catalog application; holds the applied revision.
    applied: Mutex<u64>,
    applied_tx: watch::Sender<u64>,
    tasks: TaskTracker,
    follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    fn new(
        config: EngineConfig,
        catalog: Arc<dyn Catalog>,
        registry: SourceRegistry,
        expiries: HashMap<String, Arc<dyn KeySpace>>,
        seeds: Vec<KeySpaceSpec>,
    ) -> Self {
        Inner {
            config,
            lifecycle: AtomicU8::new(CREATED),
            spaces: ArcSwap::from_pointee(HashMap::new()),
            catalog,
            registry,
            expiries,
            seeds,
            applied: Mutex::new(0),
            applied_tx: watch::Sender::new(0),
            tasks: TaskTracker::new(),
            follower: std::sync::Mutex::new(None),
        }
    }

    fn ensure_running(&self) -> Result<()> {
        if self.lifecycle.load(Ordering::Acquire) == RUNNING {
            Ok(())
        } else {
            Err(Error::NotRunning)
        }
    }

    /// The live keyspace `name`.
    #[inline]
    fn space(&self, name: &str) -> Result<Arc<Space>> {
        self.ensure_running()?;
        self.spaces
            .load()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::KeySpaceNotFound(name.to_owned()))
    }

    /// Loads keys that missed the caches. The ownership seam: on a single node every key is
    /// owned here; a cluster asks the ring and sends the rest to their owners.
    fn route(&self, space: &Arc<Space>, keys: &[&str]) -> Vec<Pending> {
        space.load_owned(keys)
    }
}

impl Engine {
    /// A builder with `config`.
    pub fn builder(config: EngineConfig) -> EngineBuilder {
        EngineBuilder::new(config)
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// True between a successful `start` and `stop`.
    pub fn is_running(&self) -> bool {
        self.inner.lifecycle.load(Ordering::Acquire) == RUNNING
    }

    /// Starts the engine: seeds the catalog with the builder's keyspaces, applies it, and
    /// follows later changes. Calling it again while running does nothing; a stopped engine
    /// cannot be started again.
    pub async fn start(&self) -> Result<()> {
        match self.inner.lifecycle.load(Ordering::Acquire) {
            RUNNING => return Ok(()),
            STOPPED => return Err(Error::NotRunning),
            _ => {}
        }
        self.inner.catalog.seed(self.inner.seeds.clone()).await?;
        self.sync_catalog().await;
        self.follow_catalog();
        self.inner.lifecycle.store(RUNNING, Ordering::Release);
        tracing::info!(keyspaces = self.inner.spaces.load().len(), "engine started");
        Ok(())
    }

    /// Stops the engine: refuses new operations, waits up to `shutdown_timeout` for loads in
    /// flight, and drops every cache.
    pub async fn stop(&self) -> Result<()> {
        let previous = self.inner.lifecycle.swap(STOPPED, Ordering::AcqRel);
        if previous == STOPPED {
            return Ok(());
        }
        if let Some(follower) = self
            .inner
            .follower
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            follower.abort();
        }
        self.inner.tasks.close();
        if tokio::time::timeout(self.inner.config.shutdown_timeout, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                loads = self.inner.tasks.len(),
                "stopped with loads still in flight"
            );
        }
        self.inner.spaces.store(Arc::new(HashMap::new()));
        tracing::info!("engine stopped");
        Ok(())
    }

    /// Reads `key`: from the cache, else through the data source (once for all concurrent
    /// callers). `Ok(None)` means the source does not have the key.
    pub async fn get(&self, keyspace: &str, key: &str) -> Result<Option<Bytes>> {
        let space = self.inner.space(keyspace)?;
        self.inner.config.limits.check_key(key)?;
        space.stats.gets.inc();
        if let Some(hit) = space.cached(key).await {
            space.stats.cache_hits.inc();
            return Ok(hit.value);
        }
        space.stats.loads.inc();
        let span = tracing::debug_span!("distcache.get", distcache.keyspace = keyspace, key);
        let pending = self.inner.route(&space, &[key]);
        match pending.into_iter().next() {
            Some(p) => p.instrument(span).await,
            None => Err(Error::Internal("no load was started for the key".into())),
        }
    }

    /// Reads many keys of one keyspace, answering one result per key in order (a key listed
    /// twice is loaded once and answered twice). Misses are loaded in one batch per owner.
    pub async fn get_many<K: AsRef<str>>(
        &self,
        keyspace: &str,
        keys: &[K],
    ) -> Result<Vec<KeyResult<Option<Bytes>>>> {
        let space = self.inner.space(keyspace)?;
        let limits = &self.inner.config.limits;
        limits.check_batch(keys.len())?;
        let span = tracing::debug_span!(
            "distcache.get_many",
            distcache.keyspace = keyspace,
            keys = keys.len()
        );
        async {
            let mut results: Vec<Option<Result<Option<Bytes>>>> = Vec::with_capacity(keys.len());
            let mut misses: Vec<&str> = Vec::new();
            let mut miss_slots: HashMap<&str, Vec<usize>> = HashMap::new();
            space.stats.gets.add(keys.len() as u64);
            for (slot, key) in keys.iter().enumerate() {
                let key = key.as_ref();
                if let Err(e) = limits.check_key(key) {
                    results.push(Some(Err(e)));
                    continue;
                }
                if let Some(hit) = space.cached(key).await {
                    space.stats.cache_hits.inc();
                    results.push(Some(Ok(hit.value)));
                    continue;
                }
                results.push(None);
                space.stats.loads.inc();
                match miss_slots.get_mut(key) {
                    // Listed twice: answered by the same load.
                    Some(waiting) => waiting.push(slot),
                    None => {
                        misses.push(key);
                        miss_slots.insert(key, vec![slot]);
                    }
                }
            }
            let pending = self.inner.route(&space, &misses);
            let outcomes = futures::future::join_all(pending).await;
            for (key, outcome) in misses.iter().zip(outcomes) {
                for slot in miss_slots.get(key).into_iter().flatten() {
                    results[*slot] = Some(outcome.clone());
                }
            }
            Ok(keys
                .iter()
                .zip(results)
                .map(|(key, result)| KeyResult {
                    key: key.as_ref().to_owned(),
                    result: result
                        .unwrap_or_else(|| Err(Error::Internal("key was not answered".into()))),
                })
                .collect())
        }
        .instrument(span)
        .await
    }

    /// Stores `value` under `key` (expiry by the keyspace's rules). Loads of the key in flight
    /// will not overwrite it.
    pub async fn put(&self, keyspace: &str, key: &str, value: impl Into<Bytes>) -> Result<()> {
        self.put_entry(keyspace, key, value.into(), None).await
    }

    /// Stores `value` under `key` for `ttl` (which must be greater than zero).
    pub async fn put_with_ttl(
        &self,
        keyspace: &str,
        key: &str,
        value: impl Into<Bytes>,
        ttl: Duration,
    ) -> Result<()> {
        self.put_entry(keyspace, key, value.into(), Some(ttl)).await
    }

    async fn put_entry(
        &self,
        keyspace: &str,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let space = self.inner.space(keyspace)?;
        self.check_entry(key, &value, ttl)?;
        space
            .store_put(key, value, ttl)
            .instrument(tracing::debug_span!(
                "distcache.put",
                distcache.keyspace = keyspace,
                key
            ))
            .await
    }

    fn check_entry(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let limits = &self.inner.config.limits;
        limits.check_key(key)?;
        limits.check_value(value)?;
        if ttl.is_some_and(|t| t.is_zero()) {
            return Err(Error::InvalidRequest(
                "ttl must be greater than zero".into(),
            ));
        }
        Ok(())
    }

    /// Stores many entries of one keyspace, answering one result per entry in order. An
    /// invalid entry fails alone; the others are stored.
    pub async fn put_many(
        &self,
        keyspace: &str,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<Vec<KeyResult<()>>> {
        let space = self.inner.space(keyspace)?;
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.inner.config.limits.check_batch(entries.len())?;
        let span = tracing::debug_span!(
            "distcache.put_many",
            distcache.keyspace = keyspace,
            keys = entries.len()
        );
        async {
            let mut results = Vec::with_capacity(entries.len());
            for entry in entries {
                let result = match self.check_entry(&entry.key, &entry.value, entry.ttl) {
                    Ok(()) => space.store_put(&entry.key, entry.value, entry.ttl).await,
                    Err(e) => Err(e),
                };
                results.push(KeyResult {
                    key: entry.key,
                    result,
                });
            }
            Ok(results)
        }
        .instrument(span)
        .await
    }

    /// Removes `key` from the caches. A later get loads it again from the source.
    pub async fn delete(&self, keyspace: &str, key: &str) -> Result<()> {
        let space = self.inner.space(keyspace)?;
        self.inner.config.limits.check_key(key)?;
        space.stats.remove_keys_requests.inc();
        let span = tracing::debug_span!("distcache.delete", distcache.keyspace = keyspace, key);
        if space.remove(key).instrument(span).await {
            space.stats.removed_keys.inc();
        }
        Ok(())
    }

    /// Removes many keys, answering one result per key in order.
    pub async fn delete_many<K: AsRef<str>>(
        &self,
        keyspace: &str,
        keys: &[K],
    ) -> Result<Vec<KeyResult<()>>> {
        let space = self.inner.space(keyspace)?;
        let limits = &self.inner.config.limits;
        limits.check_batch(keys.len())?;
        let span = tracing::debug_span!(
            "distcache.delete_many",
            distcache.keyspace = keyspace,
            keys = keys.len()
        );
        async {
            let mut results = Vec::with_capacity(keys.len());
            for key in keys {
                let key = key.as_ref();
                let result = match limits.check_key(key) {
                    Ok(()) => {
                        space.stats.remove_keys_requests.inc();
                        if space.remove(key).await {
                            space.stats.removed_keys.inc();
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                results.push(KeyResult {
                    key: key.to_owned(),
                    result,
                });
            }
            Ok(results)
        }
        .instrument(span)
        .await
    }
}
