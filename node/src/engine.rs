//! The `Engine`: the read-through cache API of one node.
//!
//! Data operations (`get`, `put`, `delete`; the `_many` forms are in `engine/batch.rs`)
//! validate their input, find the keyspace, and answer from the caches or load through
//! single-flight. Which node loads or stores a key is decided in one place, the cluster's ring
//! (`Inner::route`); without a cluster every key is owned here. Writes, puts and deletes
//! alike, reach the owner and then invalidate copies on every other node
//! (`engine/writes.rs`), so that after a put or a delete no node serves the old value. Keyspace operations go through the
//! [`Catalog`](crate::Catalog) and return once this node applied the change
//! (`engine/keyspaces.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::{Mutex, broadcast, watch};
use tracing::Instrument;

use crate::catalog::Catalog;
use crate::cluster::{Cluster, Route};
use crate::config::EngineConfig;
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::flight::Pending;
use crate::keyspace::KeySpace;
use crate::registry::SourceRegistry;
use crate::space::Space;
use crate::spec::KeySpaceSpec;
use crate::telemetry::{EngineTelemetry, Op, Spans, end_span, span_name, within};
use crate::warmup::WarmupLog;

mod batch;
mod builder;
mod handoff;
mod keyspaces;
mod peer;
mod read;
mod scrape;
mod warming;
mod writes;

pub use builder::EngineBuilder;
pub(crate) use read::ReadMode;
pub(crate) use warming::Ownership;

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
    pub(crate) inner: Arc<Inner>,
}

const CREATED: u8 = 0;
const RUNNING: u8 = 1;
const STOPPED: u8 = 2;

pub(crate) struct Inner {
    pub(crate) config: EngineConfig,
    lifecycle: AtomicU8,
    spaces: ArcSwap<Spaces>,
    catalog: Arc<dyn Catalog>,
    registry: SourceRegistry,
    expiries: HashMap<String, Arc<dyn KeySpace>>,
    seeds: Vec<KeySpaceSpec>,
    /// Serialises catalog application; holds the applied revision.
    applied: Mutex<u64>,
    applied_tx: watch::Sender<u64>,
    /// Loads, on the runtime the engine was built in, so that `stop` can wait for them.
    tasks: crate::space::LoadTasks,
    follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// Warmup runs of this node.
    pub(crate) warmups: WarmupLog,
    /// Prefetches in flight on this node, all runs together, at most `warmup.concurrency`.
    pub(crate) warm_slots: Arc<tokio::sync::Semaphore>,
    /// Hot keys peers shared, by peer.
    shared_hot: std::sync::Mutex<SharedHot>,
    /// Names of keyspaces created or rebuilt by catalog changes (for update warmups).
    applied_keyspaces: broadcast::Sender<String>,
    /// The warmup manager, stopped with the engine.
    manager: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Held shared by writes this node forwards while it joins, exclusively by its takeover
    /// (`engine/handoff.rs`).
    join_gate: tokio::sync::RwLock<()>,
    /// Held shared by writes this node applies as the key's owner, exclusively while it
    /// collects entries to hand to a joining peer (`engine/writes.rs`).
    owner_gate: tokio::sync::RwLock<()>,
    /// Instruments that are not per keyspace (see `telemetry`).
    pub(crate) telemetry: EngineTelemetry,
}

/// The live keyspaces by name. Looked up on every get: a fast hasher (names are short and
/// chosen by operators, not attackers).
pub(crate) type Spaces = HashMap<String, Arc<Space>, rustc_hash::FxBuildHasher>;

/// Hot keys shared by peers: peer → what it last sent.
pub(crate) type SharedHot = HashMap<String, crate::warmup::PeerHotKeys>;

impl Inner {
    fn new(
        config: EngineConfig,
        catalog: Arc<dyn Catalog>,
        registry: SourceRegistry,
        expiries: HashMap<String, Arc<dyn KeySpace>>,
        seeds: Vec<KeySpaceSpec>,
        cluster: Option<Arc<Cluster>>,
        spans: Spans,
    ) -> Self {
        let warm_slots = Arc::new(tokio::sync::Semaphore::new(
            config.warmup.concurrency.max(1),
        ));
        let telemetry = EngineTelemetry::new(config.hit_timing_every, spans);
        Inner {
            config,
            lifecycle: AtomicU8::new(CREATED),
            spaces: ArcSwap::from_pointee(Spaces::default()),
            catalog,
            registry,
            expiries,
            seeds,
            applied: Mutex::new(0),
            applied_tx: watch::Sender::new(0),
            tasks: crate::space::LoadTasks::on_current_runtime(),
            follower: std::sync::Mutex::new(None),
            cluster,
            warmups: WarmupLog::default(),
            warm_slots,
            shared_hot: std::sync::Mutex::new(HashMap::new()),
            applied_keyspaces: broadcast::channel(64).0,
            manager: std::sync::Mutex::new(None),
            join_gate: tokio::sync::RwLock::new(()),
            owner_gate: tokio::sync::RwLock::new(()),
            telemetry,
        }
    }

    /// The hot keys peers shared.
    pub(crate) fn shared_hot(&self) -> std::sync::MutexGuard<'_, SharedHot> {
        self.shared_hot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows keyspaces created or rebuilt by catalog changes.
    pub(crate) fn subscribe_applied(&self) -> broadcast::Receiver<String> {
        self.applied_keyspaces.subscribe()
    }

    /// The live keyspaces now.
    pub(crate) fn spaces_now(&self) -> Arc<Spaces> {
        self.spaces.load_full()
    }

    fn ensure_running(&self) -> Result<()> {
        if self.lifecycle.load(Ordering::Acquire) == RUNNING {
            Ok(())
        } else {
            Err(Error::NotRunning)
        }
    }

    /// The live keyspace `name` for operation `op`: a failure to find it is counted as a
    /// failed `op` with no keyspace label (names that do not exist must not grow the labels).
    #[inline]
    pub(crate) fn space_for(&self, op: Op, name: &str) -> Result<Arc<Space>> {
        self.space(name).map_err(|e| self.refused(op, e))
    }

    /// The live keyspaces, for an operation `op` that borrows its keyspace from them rather
    /// than holding a reference of its own: a single `get` does, because a reference count is
    /// a cache line that every reader of the keyspace writes. Fails (and counts) when the
    /// engine is not running; a keyspace not found in them goes through
    /// [`refused`](Self::refused).
    #[inline]
    pub(crate) fn live_spaces(&self, op: Op) -> Result<arc_swap::Guard<Arc<Spaces>>> {
        self.running_spaces().map_err(|e| self.refused(op, e))
    }

    /// The keyspaces, once the engine is running.
    #[inline]
    fn running_spaces(&self) -> Result<arc_swap::Guard<Arc<Spaces>>> {
        self.ensure_running().map(|()| self.spaces.load())
    }

    /// `e`, counted as a failed `op` with no keyspace label.
    #[cold]
    pub(crate) fn refused(&self, op: Op, e: Error) -> Error {
        self.telemetry
            .ops
            .of(op, "")
            .finish(Instant::now(), &Err::<(), _>(e.clone()));
        e
    }

    /// Runs `operation` on `keyspace` inside its `distcache.<operation>` span (when the engine
    /// makes spans).
    pub(crate) async fn traced<T>(
        &self,
        op: Op,
        keyspace: &str,
        operation: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let spans = &self.telemetry.spans;
        let cx = spans.operation(span_name(op), op.name(), keyspace, None);
        let result = within(cx.as_ref(), operation).await;
        end_span(cx.as_ref(), None, &result);
        result
    }

    /// The live keyspace `name`.
    #[inline]
    pub(crate) fn space(&self, name: &str) -> Result<Arc<Space>> {
        self.running_spaces()?
            .get(name)
            .cloned()
            .ok_or_else(|| Error::KeySpaceNotFound(name.to_owned()))
    }

    /// Who owns `key` of `space`. The ownership seam: without a cluster, this node.
    #[inline]
    pub(crate) fn owner(&self, space: &Space, key: &str) -> Route {
        match &self.cluster {
            Some(cluster) => cluster.route(space.name(), key),
            None => Route::Local,
        }
    }

    /// Loads keys that missed the caches: this node's own from its data source, the others'
    /// through their owners, one batch per owner. Answers one pending outcome per key, in
    /// order.
    fn route(&self, space: &Arc<Space>, keys: &[&str]) -> Vec<Pending> {
        let Some(cluster) = &self.cluster else {
            return space.load_owned(keys);
        };
        if let [key] = keys {
            return match cluster.route(space.name(), key) {
                Route::Local => space.load_owned(keys),
                Route::Remote(peer) => space.load_from_peer(cluster.transport(), peer, keys),
            };
        }
        let by_owner = cluster.split(space.name(), keys.iter().copied().enumerate(), |(_, k)| k);
        let mut out: Vec<Option<Pending>> = vec![None; keys.len()];
        let mut place = |group: &[(usize, &str)], pending: Vec<Pending>| {
            for ((slot, _), p) in group.iter().zip(pending) {
                out[*slot] = Some(p);
            }
        };
        if !by_owner.local.is_empty() {
            let group_keys: Vec<&str> = by_owner.local.iter().map(|(_, k)| *k).collect();
            place(&by_owner.local, space.load_owned(&group_keys));
        }
        for (peer, group) in by_owner.remote {
            let group_keys: Vec<&str> = group.iter().map(|(_, k)| *k).collect();
            place(
                &group,
                space.load_from_peer(cluster.transport(), peer, &group_keys),
            );
        }
        out.into_iter()
            .map(|p| p.unwrap_or_else(|| failed_pending("key was not routed")))
            .collect()
    }
}

/// A pending outcome that is already an internal error (a broken invariant, never expected).
fn failed_pending(why: &'static str) -> Pending {
    use futures::FutureExt;
    futures::future::ready(Err(Error::Internal(why.into())))
        .boxed()
        .shared()
}

impl Engine {
    /// A builder with `config`.
    pub fn builder(config: EngineConfig) -> EngineBuilder {
        EngineBuilder::new(config)
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Engine { inner }
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The cluster this engine shares keys with, if any.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.inner.cluster.as_ref()
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
        // Subscribed before the catalog is followed and before the start warmup, so changes
        // and topology events meanwhile wait for the warmup manager instead of passing unseen.
        let applied = self.inner.subscribe_applied();
        let topology = self.inner.cluster.as_ref().map(|c| c.subscribe());
        self.follow_catalog();
        self.inner.lifecycle.store(RUNNING, Ordering::Release);
        tracing::info!(keyspaces = self.inner.spaces.load().len(), "engine started");
        if self.inner.cluster.is_none() {
            // A node warms once it owns its keys and the cluster agrees (`Node::start`).
            self.warm_at_start().await;
        }
        let manager = warming::spawn_manager(&self.inner, applied, topology);
        *self.inner.manager.lock().unwrap_or_else(|e| e.into_inner()) = Some(manager);
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
        if let Some(manager) = self
            .inner
            .manager
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            manager.abort();
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
        self.inner.spaces.store(Arc::new(Spaces::default()));
        tracing::info!("engine stopped");
        Ok(())
    }

    /// Reads `key`: from the cache, else through the data source (once for all concurrent
    /// callers). `Ok(None)` means the source does not have the key.
    pub async fn get(&self, keyspace: &str, key: &str) -> Result<Option<Bytes>> {
        let spaces = self.inner.live_spaces(Op::Get)?;
        let Some(space) = spaces.get(keyspace) else {
            let missing = Error::KeySpaceNotFound(keyspace.to_owned());
            return Err(self.inner.refused(Op::Get, missing));
        };
        self.inner
            .read_one(space, key, ReadMode::Client)
            .await
            .map(|c| c.value)
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
        let started = Instant::now();
        let space = self.inner.space_for(Op::Put, keyspace)?;
        let span = tracing::debug_span!("distcache.put", distcache.keyspace = keyspace, key);
        let result = self
            .inner
            .traced(
                Op::Put,
                keyspace,
                async {
                    self.check_entry(key, &value, ttl)?;
                    let _gate = self.inner.write_gate(space.settings.write_timeout).await?;
                    let entry = vec![Entry {
                        key: key.to_owned(),
                        value,
                        ttl,
                    }];
                    let mut results = match self.inner.owner(&space, key) {
                        Route::Local => self.inner.put_local(&space, entry).await,
                        Route::Remote(peer) => self.inner.put_remote(&space, &peer, entry).await,
                    };
                    results.pop().map(|r| r.result).unwrap_or_else(|| {
                        Err(Error::Internal("the owner answered no result".into()))
                    })
                }
                .instrument(span),
            )
            .await;
        space.stats.key_ops.of(Op::Put).finish(started, &result);
        result
    }

    fn check_entry(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let limits = &self.inner.config.limits;
        limits.check_key(key)?;
        limits.check_value(value)?;
        if let Some(ttl) = ttl {
            let mut problems = crate::error::Problems::new();
            problems.duration_within("ttl", ttl, crate::units::MAX_TTL);
            if let Some(problem) = problems.iter().next() {
                return Err(Error::InvalidRequest(format!("ttl {}", problem.message)));
            }
        }
        Ok(())
    }

    /// Removes `key` from the caches: its owner removes it and drops every other node's copy.
    /// A later get loads it again from the source.
    pub async fn delete(&self, keyspace: &str, key: &str) -> Result<()> {
        let started = Instant::now();
        let space = self.inner.space_for(Op::Delete, keyspace)?;
        let span = tracing::debug_span!("distcache.delete", distcache.keyspace = keyspace, key);
        let result = self
            .inner
            .traced(
                Op::Delete,
                keyspace,
                async {
                    self.inner.config.limits.check_key(key)?;
                    space.stats.remove_keys_requests.inc();
                    let _gate = self.inner.write_gate(space.settings.write_timeout).await?;
                    let mut results = self.inner.delete_routed(&space, vec![key.to_owned()]).await;
                    results.pop().map(|r| r.result).unwrap_or_else(|| {
                        Err(Error::Internal("the delete was not answered".into()))
                    })
                }
                .instrument(span),
            )
            .await;
        space.stats.key_ops.of(Op::Delete).finish(started, &result);
        result
    }
}
