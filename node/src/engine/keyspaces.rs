//! Keyspace management: changes go to the catalog; the engine follows the catalog's committed
//! states, creating, rebuilding and dropping keyspaces to match.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use tracing::Instrument;

use super::{Engine, Inner, Spaces};
use crate::catalog::{CatalogChange, CatalogState, WriteOptions};
use crate::error::{Error, Result};
use crate::source::DataSource;
use crate::space::Space;
use crate::space::hot_keys::HotKeys;
use crate::spec::KeySpaceSpec;
use crate::stats::{Counters, KeySpaceSnapshot};
use crate::telemetry::Op;

impl Engine {
    /// Creates a keyspace; fails with `KeySpaceExists` if the name is taken. Returns the
    /// catalog revision that contains it, once this node serves it.
    pub async fn create_keyspace(&self, spec: KeySpaceSpec) -> Result<u64> {
        self.create_keyspace_with(spec, WriteOptions::default())
            .await
    }

    /// [`create_keyspace`](Self::create_keyspace) once per `options.request_id`: a retry
    /// with the same id answers the first attempt's revision instead of `KeySpaceExists`.
    pub async fn create_keyspace_with(
        &self,
        spec: KeySpaceSpec,
        options: WriteOptions,
    ) -> Result<u64> {
        let started = Instant::now();
        let name = spec.name.clone();
        let result = self
            .inner
            .traced(Op::CreateKeyspace, &name, async {
                self.check_spec(&spec).await?;
                self.change_catalog(CatalogChange::Create { spec }, options)
                    .await
            })
            .await;
        self.count_keyspace_op(Op::CreateKeyspace, &name, started, &result);
        result
    }

    /// Creates or replaces a keyspace. A replaced keyspace starts with empty caches and fresh
    /// limiter and breaker state. Returns the revision that contains the change, once this
    /// node serves it.
    pub async fn update_keyspace(&self, spec: KeySpaceSpec) -> Result<u64> {
        let started = Instant::now();
        let name = spec.name.clone();
        let result = self
            .inner
            .traced(Op::UpdateKeyspace, &name, async {
                self.check_spec(&spec).await?;
                self.change_catalog(CatalogChange::Put { spec }, WriteOptions::default())
                    .await
            })
            .await;
        self.count_keyspace_op(Op::UpdateKeyspace, &name, started, &result);
        result
    }

    /// Deletes a keyspace and all of its entries.
    pub async fn delete_keyspace(&self, name: &str) -> Result<u64> {
        let started = Instant::now();
        // Looked up before: a deleted keyspace's name is a label only if it existed.
        let existed = self.inner.spaces.load().contains_key(name);
        let result = self
            .inner
            .traced(Op::DeleteKeyspace, name, self.delete_names(&[name]))
            .await;
        let label = if existed { name } else { "" };
        self.count_keyspace_op(Op::DeleteKeyspace, label, started, &result);
        result
    }

    /// Deletes several keyspaces, all or none: if one is missing, none is deleted.
    pub async fn delete_keyspaces<N: AsRef<str>>(&self, names: &[N]) -> Result<u64> {
        let started = Instant::now();
        let result = self
            .inner
            .traced(Op::DeleteKeyspaces, "", self.delete_names(names))
            .await;
        self.count_keyspace_op(Op::DeleteKeyspaces, "", started, &result);
        result
    }

    async fn delete_names<N: AsRef<str>>(&self, names: &[N]) -> Result<u64> {
        if names.is_empty() {
            return Err(Error::InvalidRequest("no keyspace named".into()));
        }
        let names = names.iter().map(|n| n.as_ref().to_owned()).collect();
        self.change_catalog(CatalogChange::Delete { names }, WriteOptions::default())
            .await
    }

    /// Counts a keyspace operation. Its keyspace is a label only when the keyspace exists or
    /// the call succeeded: made-up names in refused calls must not grow the label set.
    fn count_keyspace_op(&self, op: Op, name: &str, started: Instant, result: &Result<u64>) {
        let known = result.is_ok() || self.inner.spaces.load().contains_key(name);
        let label = if known { name } else { "" };
        self.inner
            .telemetry
            .ops
            .of(op, label)
            .finish(started, result);
    }

    /// Commits any catalog change, optionally only at an expected revision (compare-and-set)
    /// and once per request id (see [`WriteOptions`]), and waits until this node applied it.
    /// Specs are not checked here: prefer the dedicated methods, which check them first.
    pub async fn change_catalog(
        &self,
        change: CatalogChange,
        options: WriteOptions,
    ) -> Result<u64> {
        self.inner.ensure_running()?;
        let span = tracing::info_span!(
            "distcache.catalog_change",
            expected_revision = ?options.expected_revision,
            request_id = ?options.request_id
        );
        async {
            let started = Instant::now();
            let revision = self.inner.catalog.change(change, options).await?;
            self.inner
                .telemetry
                .catalog_commit
                .record(started.elapsed());
            self.wait_applied(revision).await?;
            Ok(revision)
        }
        .instrument(span)
        .await
    }

    /// Checks a spec fully before it reaches the catalog: every field, the engine's limits,
    /// and that its data source opens here.
    pub async fn check_spec(&self, spec: &KeySpaceSpec) -> Result<()> {
        let mut problems = spec.problems(&self.inner.config.limits);
        let source_problems = self.inner.registry.problems(&spec.source);
        let source_ok = source_problems.is_empty();
        problems.0.extend(source_problems.0);
        if source_ok {
            match self.inner.registry.open(&spec.source).await {
                Ok(_) => {}
                Err(Error::InvalidSpec(p)) => problems.0.extend(p.0),
                Err(e) => problems.push("source", format!("cannot be opened: {e}")),
            }
        }
        problems.into_result(Error::InvalidSpec)
    }

    /// The keyspaces given at build (code and files), as catalog entries for seeding.
    pub(crate) fn seed_entries(&self) -> Result<Vec<(String, serde_json::Value)>> {
        self.inner
            .seeds
            .iter()
            .map(|spec| {
                serde_json::to_value(spec)
                    .map(|v| (spec.name.clone(), v))
                    .map_err(|e| Error::Internal(format!("cannot encode spec: {e}")))
            })
            .collect()
    }

    /// The definitions of every keyspace this node serves, by name.
    pub fn keyspaces(&self) -> Vec<KeySpaceSpec> {
        let spaces = self.inner.spaces.load();
        let mut specs: Vec<KeySpaceSpec> = spaces.values().map(|s| s.spec.clone()).collect();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs
    }

    /// The definition of keyspace `name`, if this node serves it.
    pub fn keyspace(&self, name: &str) -> Option<KeySpaceSpec> {
        self.inner.spaces.load().get(name).map(|s| s.spec.clone())
    }

    /// The catalog revision this node has applied.
    pub fn revision(&self) -> u64 {
        *self.inner.applied_tx.borrow()
    }

    /// Follows the applied revision (for tests and admin endpoints).
    pub fn watch_revision(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.applied_tx.subscribe()
    }

    /// Definition, cache sizes and counters of every keyspace, by name.
    pub async fn stats(&self) -> Vec<KeySpaceSnapshot> {
        let spaces: Vec<Arc<Space>> = self.inner.spaces.load().values().cloned().collect();
        let mut out = Vec::with_capacity(spaces.len());
        for space in spaces {
            out.push(self.snapshot_of(&space).await);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Definition, cache sizes and counters of keyspace `name`.
    pub async fn keyspace_stats(&self, name: &str) -> Result<KeySpaceSnapshot> {
        let space = self
            .inner
            .spaces
            .load()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::KeySpaceNotFound(name.to_owned()))?;
        Ok(self.snapshot_of(&space).await)
    }

    async fn snapshot_of(&self, space: &Space) -> KeySpaceSnapshot {
        let mut snapshot = space.snapshot().await;
        snapshot.last_warmup = self.inner.warmups.last_of(space.name());
        let config = &self.inner.config.warmup;
        snapshot.hot_keys = space
            .hot_keys
            .top(10.min(config.max_hot_keys), config.min_hits)
            .into_iter()
            .map(|(key, count)| crate::stats::HotKey { key, count })
            .collect();
        snapshot
    }

    /// Waits (up to the write timeout) until this node applied `revision`.
    async fn wait_applied(&self, revision: u64) -> Result<()> {
        let timeout = self.inner.config.write_timeout;
        let wait = async {
            let mut changes = self.inner.catalog.subscribe();
            loop {
                self.sync_catalog().await;
                if self.revision() >= revision {
                    return Ok(());
                }
                if changes.changed().await.is_err() {
                    return Err(Error::Unavailable("the catalog stopped".into()));
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| {
                Err(Error::timeout(
                    format!("applying catalog revision {revision}"),
                    timeout,
                ))
            })
    }

    /// Brings the live keyspaces in line with the catalog's committed state.
    pub(super) async fn sync_catalog(&self) {
        sync(&self.inner).await;
    }

    /// Applies every later catalog state in a background task, until the engine stops or is
    /// dropped.
    pub(super) fn follow_catalog(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let mut changes = self.inner.catalog.subscribe();
        let task = tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                match weak.upgrade() {
                    Some(inner) => sync(&inner).await,
                    None => break,
                }
            }
        });
        *self
            .inner
            .follower
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(task);
    }
}

async fn sync(inner: &Inner) {
    loop {
        let state: Arc<CatalogState> = inner.catalog.subscribe().borrow().clone();
        if state.revision <= *inner.applied.lock().await {
            return;
        }
        // Open the sources of new and changed keyspaces with no lock held: opening may read a
        // file or connect to a database.
        let prepared = inner.spaces.load_full();
        let mut opened: HashMap<String, Arc<dyn DataSource>> = HashMap::new();
        for (name, spec) in &state.entries {
            if prepared.get(name).is_none_or(|s| s.spec != *spec) {
                let source = inner.registry.open_or_failing(name, &spec.source).await;
                opened.insert(name.clone(), source);
            }
        }
        let mut applied = inner.applied.lock().await;
        if state.revision <= *applied {
            return;
        }
        let current = inner.spaces.load_full();
        if !Arc::ptr_eq(&prepared, &current) {
            // Another application got in between: prepare against what it left.
            continue;
        }
        apply(inner, &state, &current, opened, &mut applied);
        return;
    }
}

/// Replaces the live keyspaces with the catalog's `state`, keeping unchanged ones, building
/// the others over the sources `opened` for them; then publishes the applied revision.
fn apply(
    inner: &Inner,
    state: &CatalogState,
    current: &Spaces,
    mut opened: HashMap<String, Arc<dyn DataSource>>,
    applied: &mut u64,
) {
    let mut next: Spaces =
        HashMap::with_capacity_and_hasher(state.entries.len(), Default::default());
    let mut changed = Vec::new();
    for (name, spec) in &state.entries {
        let existing = current.get(name);
        if let Some(space) = existing
            && space.spec == *spec
        {
            next.insert(name.clone(), Arc::clone(space));
            continue;
        }
        let Some(source) = opened.remove(name) else {
            // Prepared against the same spaces and state: never happens.
            tracing::error!(keyspace = %name, "no source was opened for a changed keyspace");
            continue;
        };
        let stats = existing
            .map(|s| Arc::clone(&s.stats))
            .unwrap_or_else(|| Arc::new(Counters::default()));
        let hot = existing
            .map(|s| Arc::clone(&s.hot_keys))
            .unwrap_or_else(|| Arc::new(HotKeys::new(inner.config.warmup.max_hot_keys)));
        let mut space = Space::new(
            spec.clone(),
            &inner.config,
            source,
            inner.expiries.get(name).cloned(),
            stats,
            hot,
            inner.tasks.clone(),
        );
        space.spans = inner.telemetry.spans.clone();
        space.fence = inner.cluster.as_ref().map(|c| Arc::clone(c.fence()));
        space.cluster = inner.cluster.clone();
        tracing::info!(
            keyspace = %name,
            revision = state.revision,
            action = if existing.is_some() { "rebuilt" } else { "created" },
            "keyspace applied"
        );
        next.insert(name.clone(), Arc::new(space));
        changed.push(name.clone());
    }
    for name in current.keys().filter(|n| !next.contains_key(*n)) {
        tracing::info!(keyspace = %name, revision = state.revision, "keyspace dropped");
    }
    inner.spaces.store(Arc::new(next));
    *applied = state.revision;
    inner.applied_tx.send_replace(state.revision);
    for name in changed {
        // Nobody listening (no warmup manager yet) is fine.
        let _ = inner.applied_keyspaces.send(name);
    }
}
